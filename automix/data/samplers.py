"""Training samplers: cached excerpts → batches for Method 1, Method 2 and supervised training.

Cache
    Decoding FLAC, resampling and measuring loudness is far slower than a training step, so
    each song is prepared once: stems are resampled to the training rate, trimmed to
    :data:`NORMALISED_STEM_LUFS` (measured on the *whole* stem, exactly as the model mixer
    does at inference), and the ``excerpts_per_song`` most active windows are stored as
    float16 ``.npy`` under ``cache_dir`` with a small JSON of names, stereo flags, trims and
    per-half stem levels. Reference songs are cached the same way (loudest windows,
    normalised to :data:`REFERENCE_LUFS`).

Samples
    Item ``i`` of a dataset draws everything from ``numpy.random.default_rng([seed, i])``, so
    a sample depends only on the seed and its index: training resumed at step ``k`` sees the
    same data as an uninterrupted run, whatever the number of DataLoader workers.

    * :class:`Method1Dataset` (Diff-MST self-supervised): an excerpt whose halves A and B both
      carry 2–16 active stems, plausible random console settings, the whole excerpt rendered
      once and split: reference = mix of A, target = mix of B, inputs = stems of B.
    * :class:`Method2Dataset`: stems of a song + an excerpt of a real reference song.
    * :class:`SupervisedDataset`: stems + the arranger (or real) mix of the same excerpt.

Tensors follow the console convention: stems ``(tracks, 2, samples)`` with ``is_stereo``; a
batch is padded to its largest track count with ``track_mask`` False on the padding.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from automix.analysis_windows import multitrack_windows, signal_windows
from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs
from automix.console.render import render_console
from automix.console.schema import TRACK
from automix.console.settings import MixSettings
from automix.data.random_params import (
    random_fx_params,
    random_master_params,
    random_track_params,
)
from automix.errors import AutomixError
from automix.io import load_audio, resample
from automix.models.inputs import reference_gain_db, scaled_for_model, stem_trim_db

ACTIVE_BELOW_NORMALISED_DB = 30.0
"""A stem is active in an excerpt when its mean power is within this many dB of the
normalised stem level; quieter stems are left out of a sample (no silent inputs)."""

MIN_TRACKS = 2
MAX_TRACKS = 16


# --------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------

@dataclass
class CachedSong:
    """One song's cached excerpts.

    Attributes:
        name: song name.
        stems_path: ``.npy`` of ``(excerpts, tracks, 2, samples)`` float16, trimmed to the normalised level.
        mix_path: ``.npy`` of ``(excerpts, 2, samples)`` float16 (the song's own mix), or None.
        is_stereo: ``(tracks,)`` bool.
        half_power_db: ``(excerpts, tracks, 2)`` mean power of each stem in each excerpt half, dB.
        stem_names: file names, in track order.
    """

    name: str
    stems_path: Path
    mix_path: Path | None
    is_stereo: np.ndarray
    half_power_db: np.ndarray
    stem_names: list[str]

    def stems(self) -> np.ndarray:
        return np.load(self.stems_path, mmap_mode="r")

    def mix(self) -> np.ndarray:
        if self.mix_path is None:
            raise AutomixError(f"{self.name}: no mix cached")
        return np.load(self.mix_path, mmap_mode="r")


def _power_db(x: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def _key(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:10]


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _to_stereo_rows(audio: np.ndarray) -> np.ndarray:
    out = np.zeros((2, audio.shape[-1]), dtype=np.float32)
    out[: audio.shape[0]] = audio
    return out


T = TypeVar("T")
R = TypeVar("R")


class TooShortError(AutomixError):
    """A song or reference shorter than one training excerpt (it would be padded with silence)."""

    def __init__(self, name: str, seconds: float, excerpt_s: float) -> None:
        super().__init__(f"{name}: {seconds:.1f} s, shorter than one {excerpt_s:g} s excerpt")
        self.seconds = seconds


def skip_too_short(prepare: Callable[[T], R], items: Iterable[T]) -> tuple[list[R], list[TooShortError]]:
    """``prepare(item)`` for every item (e.g. :func:`cache_song`, :func:`cache_reference`), leaving out
    the songs or references shorter than one excerpt. Returns ``(prepared, their errors)``."""
    prepared, too_short = [], []
    for item in items:
        try:
            prepared.append(prepare(item))
        except TooShortError as e:
            too_short.append(e)
    return prepared, too_short


def _check_length(name: str, samples: int, sample_rate: int, excerpt_s: float) -> None:
    if samples < round(excerpt_s * sample_rate):
        raise TooShortError(name, samples / sample_rate, excerpt_s)


def cache_song(
    name: str, stem_paths: list[Path], mix_path: Path | None, cache_dir: Path,
    sample_rate: int, excerpt_s: float, excerpts_per_song: int,
) -> CachedSong:
    """Prepare (or reuse) the cache of one song; see the module docstring.

    Raises:
        TooShortError: the song is shorter than one excerpt (training on its padding would teach
            the model silence).
    """
    if not stem_paths:
        raise AutomixError(f"{name}: no stems")
    folder = Path(cache_dir) / f"{sample_rate}hz_{excerpt_s:g}s_{excerpts_per_song}x"
    folder.mkdir(parents=True, exist_ok=True)
    key = _key(name, *sorted(str(p) for p in stem_paths), mix_path)
    meta_path = folder / f"{name}-{key}.json"
    stems_path = folder / f"{name}-{key}.stems.npy"
    mix_cache = folder / f"{name}-{key}.mix.npy" if mix_path is not None else None
    if not meta_path.is_file():
        audio: list[np.ndarray] = []
        is_stereo: list[bool] = []
        for p in stem_paths:
            x, sr = load_audio(p)
            x = resample(x, sr, sample_rate)
            lufs = float(integrated_lufs(x, sample_rate))
            audio.append(scaled_for_model(x, stem_trim_db(lufs)))
            is_stereo.append(x.shape[0] == 2)
        _check_length(name, max(x.shape[1] for x in audio), sample_rate, excerpt_s)
        windows, starts = multitrack_windows(audio, sample_rate, excerpt_s, excerpts_per_song)
        stems = np.stack([np.stack([_to_stereo_rows(s) for s in w]) for w in windows])
        half = stems.shape[-1] // 2
        half_db = np.array([[[_power_db(st[: 1 + int(is_stereo[k]), :half]),
                              _power_db(st[: 1 + int(is_stereo[k]), half:])]
                             for k, st in enumerate(w)] for w in stems])
        _save_npy(stems_path, stems.astype(np.float16))
        if mix_path is not None and mix_cache is not None:
            m, sr = load_audio(mix_path)
            m = _to_stereo_rows(resample(m, sr, sample_rate)) if m.shape[0] == 2 else np.repeat(
                resample(m, sr, sample_rate), 2, axis=0)
            length = stems.shape[-1]
            mixes = np.zeros((len(starts), 2, length), dtype=np.float32)
            for j, st in enumerate(starts):
                piece = m[:, st: st + length]
                mixes[j, :, : piece.shape[1]] = piece
            _save_npy(mix_cache, mixes.astype(np.float16))
        meta = {"name": name, "is_stereo": is_stereo, "half_power_db": half_db.tolist(),
                "stem_names": [Path(p).name for p in stem_paths], "starts": starts}
        tmp = meta_path.with_name(meta_path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp, meta_path)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return CachedSong(name, stems_path, mix_cache, np.array(meta["is_stereo"], dtype=bool),
                      np.array(meta["half_power_db"], dtype=np.float64), list(meta["stem_names"]))


def cache_reference(path: Path, cache_dir: Path, sample_rate: int, excerpt_s: float, count: int) -> Path:
    """The ``count`` loudest excerpts of a reference song, ``(count, 2, samples)`` float16 ``.npy``,
    normalised to :data:`REFERENCE_LUFS` (measured on the whole song).

    Raises:
        TooShortError: the reference is shorter than one excerpt.
    """
    folder = Path(cache_dir) / f"refs_{sample_rate}hz_{excerpt_s:g}s_{count}x"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{Path(path).stem}-{_key(path)}.npy"
    if not out.is_file():
        x, sr = load_audio(path)
        x = resample(x, sr, sample_rate)
        x = _to_stereo_rows(x) if x.shape[0] == 2 else np.repeat(x, 2, axis=0)
        _check_length(Path(path).name, x.shape[1], sample_rate, excerpt_s)
        gain_db = reference_gain_db(integrated_lufs(x, sample_rate))
        windows, _ = signal_windows(scaled_for_model(x, gain_db), sample_rate, excerpt_s, count)
        _save_npy(out, np.stack(windows).astype(np.float16))
    return out


def find_training_songs(root: Path, split: str) -> list[tuple[str, list[Path], Path | None]]:
    """``(name, stem_paths, mix_path)`` for every song of ``split`` under ``root``."""
    from automix.data.loaders import find_songs

    songs = [s for s in find_songs(Path(root)) if s.split == split]
    if not songs:
        raise AutomixError(f"{root}: no songs in split {split!r}")
    return [(s.name, list(s.stem_paths), s.mix_path) for s in songs]


def find_references(root: Path, split: str) -> list[Path]:
    """Reference audio files under ``root/split``."""
    paths = sorted(p for p in (Path(root) / split).glob("*") if p.suffix.lower() in (".flac", ".wav"))
    if not paths:
        raise AutomixError(f"{Path(root) / split}: no reference songs")
    return paths


# --------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------

def _active(song: CachedSong, excerpt: int, both_halves: bool) -> np.ndarray:
    floor = NORMALISED_STEM_LUFS - ACTIVE_BELOW_NORMALISED_DB
    levels = song.half_power_db[excerpt]
    return (levels.min(axis=1) if both_halves else levels.max(axis=1)) > floor


def _pick(rng: np.random.Generator, songs: list[CachedSong], both_halves: bool, max_tracks: int
          ) -> tuple[CachedSong, int, np.ndarray]:
    """A random song/excerpt with ≥ 2 active stems, and a random subset of 2…max_tracks of them."""
    for _ in range(100):
        song = songs[int(rng.integers(len(songs)))]
        excerpt = int(rng.integers(song.half_power_db.shape[0]))
        active = np.flatnonzero(_active(song, excerpt, both_halves))
        if len(active) >= MIN_TRACKS:
            count = int(rng.integers(MIN_TRACKS, min(max_tracks, len(active)) + 1))
            return song, excerpt, np.sort(rng.choice(active, size=count, replace=False))
    floor = NORMALISED_STEM_LUFS - ACTIVE_BELOW_NORMALISED_DB
    if all((song.half_power_db[..., 1] <= floor).all() for song in songs) and \
            any((song.half_power_db[..., 0] > floor).any() for song in songs):
        # Sound in the first halves only: the excerpts run past the ends of the songs (zero-padded).
        raise AutomixError("no cached excerpt has two active stems: the second half of every excerpt is silent; "
                           "is data.excerpt_s longer than the songs?")
    raise AutomixError("no cached excerpt has two active stems; is the data silent?")


class _Base(Dataset):
    def __init__(self, songs: list[CachedSong], sample_rate: int, seed: int, length: int,
                 max_tracks: int = MAX_TRACKS):
        if not songs:
            raise AutomixError("no songs to sample from")
        self.songs, self.sample_rate, self.seed, self.length = songs, sample_rate, seed, length
        self.max_tracks = max_tracks

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, index])

    def _stems(self, rng: np.random.Generator, both_halves: bool) -> tuple[CachedSong, int, dict]:
        song, excerpt, tracks = _pick(rng, self.songs, both_halves, self.max_tracks)
        stems = np.asarray(song.stems()[excerpt][tracks], dtype=np.float32)
        return song, excerpt, {"stems": torch.from_numpy(stems),
                               "is_stereo": torch.from_numpy(song.is_stereo[tracks].copy())}


class Method1Dataset(_Base):
    """Halves A/B of an excerpt mixed with random plausible settings (physical units).

    The whole excerpt is rendered once with the block renderer (exact IIR EQ, numba
    compressor: far cheaper than the differentiable console, same coefficients), so B starts
    with the compressor and reverb states a continuous song would have. Items hold
    ``reference`` (mix of A), ``target`` (mix of B), ``stems`` (stems of B) and the settings.
    """

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng(index)
        _, _, item = self._stems(rng, both_halves=True)
        stereo = item["is_stereo"].numpy()
        track = random_track_params(rng, stereo)
        fx, master = random_fx_params(rng), random_master_params(rng)
        stems = item["stems"].numpy()
        settings = MixSettings([str(k) for k in range(len(stems))], track, fx, master)
        mix = render_console([s[: 1 + int(st)] for s, st in zip(stems, stereo)], self.sample_rate, settings,
                             block_size=stems.shape[-1], workers=1)
        half = stems.shape[-1] // 2
        item["stems"] = item["stems"][..., half: 2 * half].contiguous()
        item["reference"] = torch.from_numpy(mix[:, :half].copy())
        item["target"] = torch.from_numpy(mix[:, half: 2 * half].copy())
        item["track_params"] = torch.from_numpy(track).float()
        item["fx_params"] = torch.from_numpy(fx).float()
        item["master_params"] = torch.from_numpy(master).float()
        return item


class Method2Dataset(_Base):
    """Stems of song X (second half of an excerpt) + an excerpt of real reference song Y."""

    def __init__(self, songs: list[CachedSong], references: list[Path], sample_rate: int, seed: int,
                 length: int, max_tracks: int = MAX_TRACKS):
        super().__init__(songs, sample_rate, seed, length, max_tracks)
        if not references:
            raise AutomixError("no reference songs to sample from")
        self.references = references

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng(index)
        _, _, item = self._stems(rng, both_halves=False)
        half = item["stems"].shape[-1] // 2
        item["stems"] = item["stems"][..., half:].contiguous()
        refs = np.load(self.references[int(rng.integers(len(self.references)))], mmap_mode="r")
        ref = np.asarray(refs[int(rng.integers(refs.shape[0]))], dtype=np.float32)
        start = int(rng.integers(0, ref.shape[-1] - half + 1))
        item["reference"] = torch.from_numpy(np.ascontiguousarray(ref[:, start: start + half]))
        return item


def _track_groups(song: CachedSong, tracks: np.ndarray) -> torch.Tensor:
    """``(tracks,)`` int64: each stem's instrument group from its file name (the DAE's routing)."""
    from automix.models.dae import groups_of  # torch is loaded already; the model module is not needed before

    return torch.tensor(groups_of([song.stem_names[int(k)] for k in tracks]), dtype=torch.long)


class SupervisedDataset(_Base):
    """Stems + the song's own mix of the same excerpt (``target``), and each stem's group id
    (``track_groups``, :func:`automix.models.dae.group_of` of its file name)."""

    def example(self, index: int) -> tuple[CachedSong, np.ndarray, dict[str, torch.Tensor]]:
        """The item with the song it came from and the stems' indices in that song (what a
        subclass needs to add per-stem data in the item's track order)."""
        song, excerpt, _ = _pick(self._rng(index), self.songs, False, self.max_tracks)
        # The target mixes *all* stems, so the input must hold all of them (up to the cap).
        tracks = np.flatnonzero(_active(song, excerpt, both_halves=False))[: self.max_tracks]
        item = {"stems": torch.from_numpy(np.asarray(song.stems()[excerpt][tracks], dtype=np.float32)),
                "is_stereo": torch.from_numpy(song.is_stereo[tracks].copy()),
                "track_groups": _track_groups(song, tracks),
                "target": torch.from_numpy(np.asarray(song.mix()[excerpt], dtype=np.float32))}
        return song, tracks, item

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.example(index)[2]


TRACK_KEYS = ("stems", "is_stereo", "track_params", "track_groups", "track_gain_db", "track_pan")
"""Item keys with a leading track axis, padded by :func:`collate` (``track_gain_db``/``track_pan``:
:mod:`automix.train.stem_targets`)."""


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack samples, padding the track axis (padding: zeros, group 0); adds ``track_mask`` ``(B, T)``."""
    t_max = max(it["stems"].shape[0] for it in items)
    out: dict[str, torch.Tensor] = {}
    mask = torch.zeros(len(items), t_max, dtype=torch.bool)
    for b, it in enumerate(items):
        mask[b, : it["stems"].shape[0]] = True
    out["track_mask"] = mask
    for key in items[0]:
        values = [it[key] for it in items]
        if key in TRACK_KEYS:
            padded = []
            for v in values:
                pad = torch.zeros((t_max - v.shape[0], *v.shape[1:]), dtype=v.dtype)
                padded.append(torch.cat([v, pad]) if len(pad) else v)
            values = padded
        out[key] = torch.stack(values)
    if "track_params" in out:  # padding rows get neutral (valid) settings
        neutral = torch.as_tensor(TRACK.defaults(), dtype=out["track_params"].dtype)
        out["track_params"] = torch.where(mask[..., None], out["track_params"], neutral)
    return out
