"""Stems streamed from disk block by block, with the same samples and notes as :func:`load_stems`.

:func:`open_stems` checks every stem block by block with the loading rules of
:mod:`automix.io.stems`; a stem at the session rate is then read from its file as needed
(:class:`StemFile`), one at another rate is resampled once into a :class:`ScratchAudio`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Self

import numpy as np

from automix.io.decode import (
    _DECODE_ERRORS,
    DAMAGED_SAMPLE_LIMIT,
    Damage,
    _check_rate,
    _decode_error,
    _open_reader,
    _repair_note,
    _sample_limit,
    _SampleReader,
)
from automix.io.resampling import STREAM_BLOCK_SAMPLES, choose_sample_rate, resample_blocks
from automix.io.scratch import ScratchAudio
from automix.io.stems import Log, _read_audible, _scan_stems


class StemFile:
    """A stem streamed from disk: the same ``name``/``sample_rate``/``channels``/``frames``/``read``/
    ``notes`` API as :class:`Stem`, without holding the samples. ``read`` pads with silence past
    the end (stems are padded to the longest) and silences damaged samples beyond ``limit`` as
    :func:`load_stems` does. ``audio`` loads everything (for mixers that need it).
    """

    def __init__(self, name: str, path: Path, sample_rate: int, channels: int, frames: int,
                 source: ScratchAudio | None = None, *, limit: float = DAMAGED_SAMPLE_LIMIT,
                 notes: list[str] | None = None) -> None:
        self.name, self.path, self.sample_rate = name, path, int(sample_rate)
        self._channels, self.frames = int(channels), int(frames)
        self.notes = list(notes or [])
        self._scratch = source
        self._file = _SampleReader(path, limit) if source is None else None

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def is_stereo(self) -> bool:
        return self._channels == 2

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def audio(self) -> np.ndarray:
        return self.read(0, self.frames)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` as float32 ``(channels, n)``, silence outside the file."""
        if self._scratch is not None:
            return self._scratch.read(start, stop)
        out = np.zeros((self._channels, max(stop - start, 0)), dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self._file.frames)
        if hi > lo:
            self._file.read_into(lo, out[:, lo - start:hi - start])  # damage was reported by open_stems
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._scratch is not None:
            self._scratch.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scan_file(path: Path, strict: bool) -> tuple[int, int, int, float, str | None]:
    """``(sample_rate, channels, frames, peak, repair note or None)`` of one stem, checked block by
    block with the same rules as :func:`load_stems` (``strict``: as there)."""
    reader = _open_reader(path, _sample_limit(strict))
    try:
        _check_rate(path, reader.sample_rate)
        block = np.empty((reader.channels, STREAM_BLOCK_SAMPLES), dtype=np.float32)
        peak, damage = 0.0, Damage()
        for start in range(0, reader.frames, STREAM_BLOCK_SAMPLES):
            got, block_peak, block_damage = reader.read_into(start, block[:, :reader.frames - start])
            peak = max(peak, block_peak)
            damage = damage.plus(block_damage.count, block_damage.first_frame)
            if got < min(STREAM_BLOCK_SAMPLES, reader.frames - start):
                break
    except _DECODE_ERRORS as e:
        raise _decode_error(path, e) from None
    finally:
        reader.close()
    repaired = _repair_note(path, damage, reader.channels * reader.frames, reader.sample_rate, strict)
    return reader.sample_rate, reader.channels, reader.frames, peak, repaired


def open_stems(
    folder: str | Path,
    sample_rate: int | None = None,
    log: Log | None = None,
    *,
    exclude: Iterable[Path] = (),
    strict: bool = False,
) -> tuple[list[StemFile], int, list[str]]:
    """Like :func:`load_stems` (the same samples, notes and errors), but the stems stay on disk
    and are read block by block.

    Stems at another rate are resampled block by block into a temporary float32 file
    (:func:`resample_blocks`, same filter as :func:`resample`). Close the stems when done.
    """
    files, notes, note = _scan_stems(folder, sample_rate, log, exclude)
    scanned = [(path, rate, channels, frames, [repaired] if repaired else [])
               for path, (rate, channels, frames, _, repaired) in
               _read_audible(folder, files, lambda path: _scan_file(path, strict), lambda r: (r[2], r[3], r[4]),
                             note)]
    rate = int(sample_rate) if sample_rate is not None else choose_sample_rate(r for _, r, _, _, _ in scanned)
    limit = _sample_limit(strict)
    stems: list[StemFile] = []
    try:
        for path, file_rate, channels, frames, stem_notes in scanned:
            if file_rate == rate:
                stems.append(StemFile(path.name, path, rate, channels, frames, limit=limit, notes=stem_notes))
                continue
            note(f"resampled {path.name} from {file_rate} Hz to {rate} Hz")
            with StemFile(path.name, path, file_rate, channels, frames, limit=limit) as original:
                scratch = ScratchAudio(channels, -(-frames * rate // file_rate))
                resample_blocks(original.read, frames, file_rate, rate, scratch.write)
            stems.append(StemFile(path.name, path, rate, channels, scratch.frames, scratch, notes=stem_notes))
        length = max(s.frames for s in stems)
        for stem in stems:
            if length - stem.frames > rate // 100:
                note(f"padded {stem.name} with {(length - stem.frames) / rate:.2f} s of silence")
            stem.frames = length
    except BaseException:
        for stem in stems:
            stem.close()
        raise
    return stems, rate, notes
