"""Load audio for evaluation: a file at a given rate, or a dataset song's stems and mix at one rate and length."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from automix.analysis_windows import multitrack_activity, window_starts_samples
from automix.data.loaders import Song
from automix.errors import AudioLoadError, AutomixError
from automix.io import SILENCE_PEAK_DBFS, Stem, choose_sample_rate, load_audio, peak_dbfs, resample


def load_at_rate(path: Path, sample_rate: int, what: str) -> np.ndarray:
    """A file's audio ``(C, N)`` resampled to ``sample_rate`` Hz; ``what`` names it in errors.

    Raises:
        AudioLoadError: missing, unreadable, NaNs or more than two channels.
    """
    try:
        audio, rate = load_audio(path)
    except AudioLoadError as e:
        raise AudioLoadError(f"{what} {e}") from None
    return resample(audio, rate, sample_rate)


def stereo(audio: np.ndarray) -> np.ndarray:
    """``(2, N)``: a mono ``(1, N)`` signal in both channels, stereo unchanged."""
    return np.concatenate([audio, audio]) if audio.shape[0] == 1 else audio


@dataclass
class SongAudio:
    """A dataset song loaded for evaluation.

    Attributes:
        name: the song's name in the dataset.
        stems: stems at one rate, equal length, names unique.
        sample_rate: Hz.
        target: the song's own mix ``(2, N)`` aligned with the stems, or None.
        start_s: where the evaluated excerpt starts in the song (``--seconds``), seconds.
    """

    name: str
    stems: list[Stem]
    sample_rate: int
    target: np.ndarray | None
    start_s: float = 0.0


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """File names, prefixed with their folder where two stems share a name (e.g. ENST takes)."""
    names = [p.name for p in paths]
    return [f"{p.parent.name}_{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    if audio.shape[1] >= n:
        return audio[:, :n]
    return np.pad(audio, ((0, 0), (0, n - audio.shape[1])))


def load_song(song: Song, seconds: float | None = None) -> SongAudio:
    """Load a song's stems (and mix) for evaluation, optionally cropped to ``seconds``.

    Stems follow the engine's loading rules (silent stems skipped, resampled to the most
    common rate, padded to the longest). The crop is the song's most active ``seconds``-long
    excerpt (:mod:`automix.analysis_windows`), the same for stems and mix.

    Raises:
        AutomixError: unreadable files, or every stem silent.
    """
    stems: list[Stem] = []
    for path, name in zip(song.stem_paths, _unique_names(song.stem_paths)):
        audio, rate = load_audio(path)
        if audio.shape[1] and peak_dbfs(audio) >= SILENCE_PEAK_DBFS:
            stems.append(Stem(name, audio, rate, path))
    if not stems:
        raise AutomixError(f"song {song.name}: every stem is silent")
    rate = choose_sample_rate(s.sample_rate for s in stems)
    for stem in stems:
        stem.audio = resample(stem.audio, stem.sample_rate, rate)
        stem.sample_rate = rate
    n = max(s.audio.shape[1] for s in stems)
    for stem in stems:
        stem.audio = np.ascontiguousarray(_fit_length(stem.audio, n), dtype=np.float32)
    target = None
    if song.mix_path is not None:
        target = _fit_length(stereo(load_at_rate(song.mix_path, rate, "mix")), n).astype(np.float32)

    start = 0
    if seconds is not None and n > int(seconds * rate):
        length = int(seconds * rate)
        activity = multitrack_activity([s.audio for s in stems], rate)
        start = window_starts_samples(activity, rate, seconds, 1, n)[0]
        for stem in stems:
            stem.audio = np.ascontiguousarray(stem.audio[:, start:start + length])
        if target is not None:
            target = np.ascontiguousarray(target[:, start:start + length])
    return SongAudio(song.name, stems, rate, target, start / rate)
