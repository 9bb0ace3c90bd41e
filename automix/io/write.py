"""Outputs written atomically: checked before any work, written to a temporary file, moved into place.

Writing rules: an output goes to a temporary file in the target folder and is moved into place
with ``os.replace`` (a crash never leaves half a file); an existing output is refused unless
``force``, and a path that is one of the inputs (``protect``) is never written. Every check that
can be made up front is made by :func:`check_output`, before any work is done.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Self

import numpy as np
import soundfile as sf

from automix.errors import AutomixError, OutputExistsError
from automix.io.paths import _resolved, name_too_long, short_name
from automix.io.scratch import ScratchAudio

BIT_DEPTHS: dict[str, str] = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
"""``--bit-depth`` choices → libsndfile subtypes."""

QUANTISATION_STEPS: dict[str, float] = {"16": 2.0**-15, "24": 2.0**-23}
"""One step of the integer ``BIT_DEPTHS`` in full-scale units (float output is not quantised)."""

_OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


def check_output(path: str | Path, force: bool = False, protect: Iterable[Path] = ()) -> Path:
    """Refuse an output path before any work is done; returns it as a Path.

    Raises:
        OutputExistsError: it exists and ``force`` is False.
        AutomixError: it is one of the ``protect``-ed inputs, a folder, a name in it is longer
            than the file system allows (:func:`name_too_long`), or its folder cannot be
            created or written.
    """
    path = Path(path)
    target = _resolved(path)
    if target in {_resolved(p) for p in protect}:
        raise AutomixError(f"{path}: refusing to write over an input file")
    too_long = name_too_long(path)
    if too_long is not None:
        name, size, limit = too_long
        raise AutomixError(f"{path}: cannot write (File name too long: {short_name(name)} is {size} bytes, "
                           f"more than the {limit} the file system allows); choose a shorter name")
    try:
        is_dir, exists = path.is_dir(), path.exists()
    except OSError as e:  # e.g. a file name longer than the file system allows
        raise AutomixError(f"{path}: cannot write ({e.strerror or e})") from None
    if is_dir:
        raise AutomixError(f"{path}: is a folder; give a file name")
    if exists and not force:
        raise OutputExistsError(f"{path}: exists (use --force to overwrite)")
    _check_folder_writable(path.parent)
    return path


def _check_folder_writable(folder: Path) -> None:
    probe = folder if str(folder) else Path(".")
    while not probe.exists():  # the nearest existing ancestor decides whether we can create it
        probe = probe.parent
    if not probe.is_dir():
        raise AutomixError(f"{folder}: cannot create output folder ({probe} is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise AutomixError(f"{folder}: output folder is not writable")


def _prepare_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AutomixError(f"{folder}: cannot create output folder ({e.strerror or e})") from None


def write_atomic(path: str | Path, write: Callable[[Path], None], *, force: bool = False,
                 protect: Iterable[Path] = ()) -> Path:
    """Write a file atomically: ``write(tmp)`` fills a temporary file beside ``path``, which then
    replaces ``path`` (refused if it exists without ``force`` or is one of ``protect``; the folder
    is created). No half-written file is ever left at ``path``."""
    return _atomic_write(Path(path), force, protect, write)


def _atomic_write(path: Path, force: bool, protect: Iterable[Path], write: Callable[[Path], None]) -> Path:
    path = check_output(path, force, protect)
    folder = path.parent if str(path.parent) else Path(".")
    _prepare_folder(folder)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{path.stem[:40]}-", suffix=path.suffix, dir=folder)
    except OSError as e:
        raise AutomixError(f"{path}: cannot write ({e.strerror or e})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get normal permissions
        if not force and path.exists():  # appeared while we were working
            raise OutputExistsError(f"{path}: exists (use --force to overwrite)")
        os.replace(tmp, path)
    except OSError as e:
        raise AutomixError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_format(path: str | Path) -> str:
    """libsndfile format for an output path (``.wav`` or ``.flac``)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _OUTPUT_FORMATS:
        raise AutomixError(f"{path}: output must end in .wav or .flac")
    return _OUTPUT_FORMATS[suffix]


def check_bit_depth(bit_depth: str, path: str | Path | None = None) -> str:
    """Validate ``--bit-depth`` (16, 24, 32f) for an output path; returns the libsndfile subtype."""
    if bit_depth not in BIT_DEPTHS:
        raise AutomixError(f"--bit-depth {bit_depth!r}: choose one of {', '.join(BIT_DEPTHS)}")
    if path is not None and output_format(path) == "FLAC" and bit_depth == "32f":
        raise AutomixError(f"{path}: FLAC cannot hold 32-bit float; use .wav or --bit-depth 24")
    return BIT_DEPTHS[bit_depth]


WRITE_BLOCK_SAMPLES = 1 << 18
"""Samples per block when writing audio (clip and interleave one block at a time)."""


class AudioWriter:
    """Write an audio file block by block, atomically: a temp file in the target folder that
    :meth:`commit` moves into place (same rules as :func:`write_audio`); :meth:`abort`, or
    leaving a ``with`` block without committing, deletes it.

    Integer formats are clipped to [-1, 1] block by block (libsndfile would otherwise wrap around).
    """

    def __init__(self, path: str | Path, channels: int, sample_rate: int, bit_depth: str = "24",
                 force: bool = False, protect: Iterable[Path] = ()) -> None:
        self.subtype = check_bit_depth(bit_depth, path)
        fmt = output_format(path)
        if channels not in (1, 2):
            raise ValueError(f"audio must have 1 or 2 channels, got {channels}")
        self.path = check_output(Path(path), force, protect)
        self.channels, self.force, self.protect = channels, force, list(protect)
        folder = self.path.parent if str(self.path.parent) else Path(".")
        _prepare_folder(folder)
        self._file: sf.SoundFile | None = None
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{self.path.stem[:40]}-", suffix=self.path.suffix, dir=folder)
        except OSError as e:
            raise AutomixError(f"{path}: cannot write ({e.strerror or e})") from None
        os.close(fd)
        self.tmp = Path(tmp_name)
        try:
            self._file = sf.SoundFile(str(self.tmp), "w", int(sample_rate), channels, self.subtype, format=fmt)
        except (OSError, sf.LibsndfileError, RuntimeError) as e:
            self.tmp.unlink(missing_ok=True)
            raise AutomixError(f"{path}: cannot write ({getattr(e, 'strerror', None) or e})") from None

    def write(self, block: np.ndarray) -> None:
        """Append float ``(channels, n)`` samples."""
        if self._file is None:
            raise RuntimeError("write after commit/abort")
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected a ({self.channels}, n) block, got {block.shape}")
        block = np.asarray(block, dtype=np.float32)
        if self.subtype != "FLOAT":
            block = np.clip(block, -1.0, 1.0)
        try:
            self._file.write(np.ascontiguousarray(block.T))
        except (OSError, sf.LibsndfileError, RuntimeError) as e:
            self.abort()
            raise AutomixError(f"{self.path}: cannot write ({getattr(e, 'strerror', None) or e})") from None

    def commit(self) -> Path:
        """Close the file and move it into place; returns the final path."""
        if self._file is None:
            raise RuntimeError("commit after commit/abort")
        try:
            self._file.close()
            self._file = None
            os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get normal permissions
            if not self.force and self.path.exists():  # appeared while we were working
                raise OutputExistsError(f"{self.path}: exists (use --force to overwrite)")
            os.replace(self.tmp, self.path)
        except OSError as e:
            raise AutomixError(f"{self.path}: cannot write ({e.strerror or e})") from None
        finally:
            self.tmp.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        """Drop the temp file (nothing is written at the target path)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self.abort()


def write_audio(
    path: str | Path,
    audio: np.ndarray | ScratchAudio,
    sample_rate: int,
    bit_depth: str = "24",
    force: bool = False,
    protect: Iterable[Path] = (),
    gain: float = 1.0,
) -> Path:
    """Write float ``(channels, samples)`` audio atomically as WAV (or FLAC by extension).

    ``audio`` is an array or a :class:`ScratchAudio`; it is written block by block (no full
    copies), times ``gain`` (linear). Integer formats are clipped to [-1, 1] first (libsndfile
    would otherwise wrap around).
    """
    check_bit_depth(bit_depth, path)
    output_format(path)
    if not isinstance(audio, ScratchAudio):
        audio = np.asarray(audio)
        if audio.ndim != 2 or audio.shape[0] not in (1, 2):
            raise ValueError(f"audio must be (channels, samples) with 1 or 2 channels, got {audio.shape}")
    channels, frames = audio.shape
    with AudioWriter(path, channels, sample_rate, bit_depth, force, protect) as writer:
        for start in range(0, frames, WRITE_BLOCK_SAMPLES):
            stop = min(start + WRITE_BLOCK_SAMPLES, frames)
            block = audio.read(start, stop) if isinstance(audio, ScratchAudio) else audio[:, start:stop]
            writer.write(block if gain == 1.0 else block * np.float32(gain))
        return writer.commit()


def write_text_atomic(path: str | Path, text: str, force: bool = False, protect: Iterable[Path] = ()) -> Path:
    """Write UTF-8 text atomically (same rules as :func:`write_audio`)."""
    return _atomic_write(Path(path), force, protect, lambda tmp: tmp.write_text(text, encoding="utf-8"))
