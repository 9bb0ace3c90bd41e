"""A folder of stems loaded into memory at one rate and one length (:class:`Stem`, :func:`load_stems`).

Loading rules (what a user can rely on), beside :mod:`automix.io.scan`'s choice of files and
:mod:`automix.io.decode`'s decoding and repair rules:

* stems are resampled to one rate (``sample_rate``, else the most common input rate) with
  :mod:`automix.io.resampling`'s filter, and padded with silence to the longest stem;
* silent stems (peak below :data:`SILENCE_PEAK_DBFS`) are reported and skipped;
* :data:`LOAD_WORKERS` files are decoded at a time, and the first bad file by name is the one
  reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from automix.errors import AutomixError
from automix.io.decode import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, _read_stem
from automix.io.resampling import choose_sample_rate, resample
from automix.io.scan import scan_folder
from automix.io.wav import _prepare_decoders

SILENCE_PEAK_DBFS = -80.0
"""A stem whose sample peak is below this level carries nothing audible and is skipped."""

LOAD_WORKERS = 2
"""Stems decoded in parallel by :func:`load_stems` (file reads and the decoders release the GIL)."""

Log = Callable[[str], None]


@dataclass
class Stem:
    """One input track.

    Attributes:
        name: the file name (``"kick.wav"``); it keys the track in ``mix.json``.
        audio: float32 ``(channels, samples)``, channels 1 or 2.
        sample_rate: Hz.
        path: where it was read from, or None for generated audio.
        notes: what loading changed in this stem's samples (damaged samples silenced); the
            engine adds them to the track's notes in ``mix.json``.
    """

    name: str
    audio: np.ndarray
    sample_rate: int
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return int(self.audio.shape[0])

    @property
    def is_stereo(self) -> bool:
        return self.channels == 2

    @property
    def duration_s(self) -> float:
        return self.audio.shape[1] / self.sample_rate

    @property
    def frames(self) -> int:
        return int(self.audio.shape[1])

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` as float32 ``(channels, n)`` (a view; same API as :class:`StemFile`)."""
        return self.audio[:, start:stop]


def peak_dbfs(audio: np.ndarray) -> float:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _scan_stems(folder: str | Path, sample_rate: int | None, log: Log | None, exclude: Iterable[Path]
                ) -> tuple[list[Path], list[str], Callable[[str], None]]:
    """The audio files of ``folder``, the notes so far (already logged) and a ``note`` function
    that records and logs the next ones; a requested rate out of range is an error."""
    if sample_rate is not None and not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise AutomixError(f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz")
    files, notes = scan_folder(folder, exclude)

    def note(text: str) -> None:
        notes.append(text)
        if log is not None:
            log(text)

    if log is not None:
        for text in notes:
            log(text)
    return files, notes, note


R = TypeVar("R")


def _read_audible(
    folder: str | Path, files: list[Path], read: Callable[[Path], R],
    describe: Callable[[R], tuple[int, float, str | None]], note: Callable[[str], None],
) -> list[tuple[Path, R]]:
    """``read`` every file on :data:`LOAD_WORKERS` threads and keep the audible ones, in name order.

    Largest files go first (the workers finish together); results are taken in name order, so the
    first bad file by name is the one reported. ``describe`` gives a result's ``(frames, peak,
    repair note or None)``; a repair note is logged (``"kick.wav: …"``), silent files are skipped
    with a note.

    Raises:
        AutomixError: every file is silent (and whatever ``read`` raises).
    """
    kept: list[tuple[Path, R]] = []
    _prepare_decoders()
    pool = ThreadPoolExecutor(max_workers=LOAD_WORKERS)
    try:
        jobs = {path: pool.submit(read, path) for path in sorted(files, key=_file_size, reverse=True)}
        for path in files:
            result = jobs[path].result()
            frames, peak, repaired = describe(result)
            if repaired is not None:
                note(f"{path.name}: {repaired}")
            if frames == 0 or not peak > 0 or 20.0 * math.log10(peak) < SILENCE_PEAK_DBFS:
                note(f"skipped {path.name} (silent)")
                continue
            kept.append((path, result))
    finally:
        pool.shutdown(cancel_futures=True)  # after an error, files not yet started are not decoded
    if not kept:
        raise AutomixError(f"{folder}: every audio file is silent; nothing to mix")
    return kept


def load_stems(
    folder: str | Path,
    sample_rate: int | None = None,
    log: Log | None = None,
    *,
    exclude: Iterable[Path] = (),
    strict: bool = False,
) -> tuple[list[Stem], int, list[str]]:
    """Load every stem in ``folder`` at one rate, padded to one length.

    Args:
        folder: the stems folder.
        sample_rate: target rate in Hz; None uses the most common input rate.
        log: called with each note as it happens (e.g. the CLI's stderr printer).
        exclude: paths never treated as stems.
        strict: refuse a stem with NaN/Inf samples and keep every finite sample as it is,
            instead of silencing damaged samples (see :mod:`automix.io.decode`).

    Returns:
        ``(stems, sample_rate, notes)``; stems are float32 ``(channels, samples)``, all the
        same length, each with its own repair note in ``Stem.notes``; notes say what was
        repaired, skipped, resampled or padded.

    Raises:
        AutomixError / AudioLoadError: see this module's docstring and those it points to.
    """
    files, notes, note = _scan_stems(folder, sample_rate, log, exclude)
    loaded = [Stem(path.name, audio, rate, path, [repaired] if repaired else [])
              for path, (audio, rate, _, repaired) in
              _read_audible(folder, files, lambda path: _read_stem(path, strict),
                            lambda r: (r[0].shape[1], r[2], r[3]), note)]

    rate = int(sample_rate) if sample_rate is not None else choose_sample_rate(s.sample_rate for s in loaded)
    for stem in loaded:
        if stem.sample_rate != rate:
            note(f"resampled {stem.name} from {stem.sample_rate} Hz to {rate} Hz")
            stem.audio = resample(stem.audio, stem.sample_rate, rate)
            stem.sample_rate = rate

    length = max(s.audio.shape[1] for s in loaded)
    for stem in loaded:
        missing = length - stem.audio.shape[1]
        if missing > 0:
            if missing > rate // 100:  # a few samples of resampling rounding are not worth a note
                note(f"padded {stem.name} with {missing / rate:.2f} s of silence")
            stem.audio = np.pad(stem.audio, ((0, 0), (0, missing)))
        stem.audio = np.ascontiguousarray(stem.audio, dtype=np.float32)
    return loaded, rate, notes
