"""Per-stem targets for end-to-end models that output each processed stem (``loss.per_stem``).

The real corpus (``data/real/SPLIT/SONG/song.json``) records, per track, the gain that takes
its stored stem to the author's level (``gain_db``, from a stem stored at ``stem_lufs``) and the
author's constant-power pan. The training cache trims every stem to
:data:`~automix.console.loudness.NORMALISED_STEM_LUFS` and stores the mix as written (scaled by
``mix.gain_db`` ≤ 0 when it would clip), so the cached stem's truth gain, in dB, is::

    gain_db + stem_lufs − NORMALISED_STEM_LUFS + mix.gain_db

and the truth-processed stem is the cached stem through the console's fader + pan stage
(:func:`automix.console.design.fader_pan_matrix`, width 1) at that gain and pan. The processed
stems then sum to the cached mix (up to the stems left out of an example: silent ones and
those past ``data.max_tracks``).

* :func:`load_truth` reads the truth of a split; :class:`StemTargetDataset` adds it to the
  supervised examples (``track_gain_db``, ``track_pan``, each ``(tracks,)`` float32; padded by
  :func:`automix.data.samplers.collate` like every track-axis key);
* :func:`stem_targets` renders the truth-processed stems; :func:`relative_l1` is the loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from automix.console.design import fader_pan_matrix
from automix.console.loudness import NORMALISED_STEM_LUFS
from automix.data import samplers
from automix.errors import AutomixError


@dataclass(frozen=True)
class StemTruth:
    """One stem's truth: ``gain_db`` for the cached (normalised) stem, in dB; ``pan`` −1 (left) … +1 (right)."""

    gain_db: float
    pan: float


def song_truth(song_json: Path) -> dict[str, StemTruth]:
    """Stem file name → :class:`StemTruth` from one ``song.json`` of the real corpus.

    Raises:
        AutomixError: the file is missing or holds no per-track truth.
    """
    try:
        meta = json.loads(Path(song_json).read_text(encoding="utf-8"))
        mix_gain = float(meta.get("mix", {}).get("gain_db", 0.0))
        return {Path(t["file"]).name: StemTruth(
                    float(t["gain_db"]) + float(t.get("stem_lufs", NORMALISED_STEM_LUFS)) - NORMALISED_STEM_LUFS
                    + mix_gain, float(t["pan"]))
                for t in meta["tracks"]}
    except FileNotFoundError:
        raise AutomixError(f"{song_json}: not found; loss.per_stem needs the real corpus's per-track truth "
                           "(data.songs_root built by `automix data real`)") from None
    except (KeyError, TypeError, ValueError) as e:
        raise AutomixError(f"{song_json}: no per-track gain_db/pan truth ({e}); loss.per_stem needs the real "
                           "corpus") from None


def load_truth(songs_root: Path, split: str, songs: list[samplers.CachedSong]) -> dict[str, dict[str, StemTruth]]:
    """Song name → (stem file name → :class:`StemTruth`) for the cached ``songs`` of ``split``.

    Raises:
        AutomixError: a song without ``song.json`` truth, or a cached stem it does not list.
    """
    truth = {}
    for song in songs:
        path = Path(songs_root) / split / song.name / "song.json"
        stems = song_truth(path)
        missing = [n for n in song.stem_names if n not in stems]
        if missing:
            raise AutomixError(f"{path}: no truth for stem {missing[0]!r}")
        truth[song.name] = stems
    return truth


class StemTargetDataset(samplers.SupervisedDataset):
    """:class:`~automix.data.samplers.SupervisedDataset` examples plus each stem's truth
    ``track_gain_db`` and ``track_pan`` (``(tracks,)`` float32, in the example's track order)."""

    def __init__(self, songs: list[samplers.CachedSong], truth: dict[str, dict[str, StemTruth]], sample_rate: int,
                 seed: int, length: int, max_tracks: int = samplers.MAX_TRACKS):
        super().__init__(songs, sample_rate, seed, length, max_tracks)
        missing = [s.name for s in songs if s.name not in truth]
        if missing:
            raise AutomixError(f"{missing[0]}: no per-stem truth")
        self.truth = truth

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        song, tracks, item = self.example(index)
        stems = self.truth[song.name]
        names = [song.stem_names[int(k)] for k in tracks]
        item["track_gain_db"] = torch.tensor([stems[n].gain_db for n in names], dtype=torch.float32)
        item["track_pan"] = torch.tensor([stems[n].pan for n in names], dtype=torch.float32)
        return item


def stem_targets(stems: Tensor, is_stereo: Tensor, gain_db: Tensor, pan: Tensor) -> Tensor:
    """The truth-processed stems ``(B, T, 2, N)``: ``stems (B, T, 2, N)`` (console convention: a mono
    stem on channel 0, ``is_stereo (B, T)``) through the fader + pan stage at ``gain_db (B, T)`` (dB)
    and ``pan (B, T)`` (−1…1), width 1."""
    matrix = fader_pan_matrix(gain_db, pan, torch.ones_like(pan), is_stereo.bool()).to(stems.dtype)
    return torch.einsum("btij,btjn->btin", matrix, stems)


def relative_l1(pred: Tensor, target: Tensor, track_mask: Tensor) -> Tensor:
    """Mean over the active stems of ``Σ|pred − target| / Σ|target|`` (sums over both channels and
    all samples): 0 when equal, 1 for a silent prediction or one 6.02 dB too loud, and the same
    for a quiet stem as for a loud one. ``pred``, ``target`` ``(B, T, 2, N)``, ``track_mask (B, T)``."""
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"pred and target must be (batch, tracks, 2, samples) of one shape, "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    error = (pred - target).abs().sum(dim=(-2, -1))
    scale = target.abs().sum(dim=(-2, -1)).clamp_min(1e-8 * target.shape[-1])
    mask = track_mask.to(pred.dtype)
    return (error / scale * mask).sum() / mask.sum().clamp_min(1.0)
