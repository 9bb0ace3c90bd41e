"""One audio file decoded block by block into float32 ``(channels, samples)``, damaged samples silenced.

Decoding: plain PCM/float WAV data goes through :mod:`automix.io.wav`'s compiled loops, every other
format through libsndfile. Either way a file is decoded block by block straight into its
``(channels, samples)`` array, with damaged samples silenced and counted and the peak taken on the
way (so a stem loaded in memory and one streamed from disk read the same samples). The files are
only ever read.

Errors: a file that cannot be decoded is an error naming the file; so is a file with more than two
channels (automix does not guess a surround layout) or a rate outside
:data:`MIN_SAMPLE_RATE`–:data:`MAX_SAMPLE_RATE`. Mono stays mono, stereo stays stereo.

Repair: damaged samples (NaN, Inf, or a magnitude beyond :data:`DAMAGED_SAMPLE_LIMIT`, +60 dBFS:
what a broken render leaves, and what a DAW plays as a click at worst) are replaced with silence,
with one note per stem saying how many and where the first one is; a stem with more than
:data:`MAX_DAMAGED_FRACTION` of its samples damaged is refused. ``strict=True`` keeps the older
rule: a NaN/Inf sample is an error and finite samples are kept whatever their level. A reference
file read with :func:`load_audio` is never repaired: any NaN/Inf sample is an error.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.errors import AudioLoadError
from automix.io.wav import _PCM_SCALES, _deinterleave, _deinterleave_24, _find_wav_data

DAMAGED_SAMPLE_LIMIT = 1e3
"""Sample magnitude (full scale = 1; 1e3 = +60 dBFS) beyond which a finite sample is damage,
not audio: float renders that go wrong leave isolated values like 1e6 or 1e30 beside normal
samples, while real audio, even badly clipped float audio, stays within a few dB of 0 dBFS."""

MAX_DAMAGED_FRACTION = 0.01
"""A stem with more than this fraction of its samples damaged is refused: silencing that much
would change the music rather than repair a few broken samples."""

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384000
"""Sample rates (Hz) a file may have, and a session may ask for."""

DECODE_BLOCK_FRAMES = 1 << 16
"""Frames decoded per step (the raw block stays in the CPU cache on its way to the output)."""

_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError)
"""What libsndfile (through soundfile) or reading a file raises for a file it cannot decode."""


def _decode_error(path: Path, e: Exception) -> AudioLoadError:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    return AudioLoadError(f"{path.name}: cannot decode audio ({_short_reason(reason, path)})")


@dataclass(frozen=True)
class Damage:
    """Damaged samples found while decoding (they were decoded as silence).

    Attributes:
        count: damaged samples, counted per channel.
        first_frame: frame of the first one in the file, -1 when there is none.
    """

    count: int = 0
    first_frame: int = -1

    def plus(self, count: int, first_frame: int) -> Damage:
        """This damage and ``count`` more samples, the first of them at ``first_frame``."""
        if count == 0:
            return self
        return Damage(self.count + count, self.first_frame if self.count else first_frame)


_DAMAGE_WORDS = f"NaN/Inf or beyond +{20.0 * math.log10(DAMAGED_SAMPLE_LIMIT):.0f} dBFS"


def _repair_note(path: Path, damage: Damage, samples: int, sample_rate: int, strict: bool) -> str | None:
    """What silencing a stem's damaged samples did, for the stem's notes; None when it had none.

    Args:
        path: the stem's file (its name starts the errors).
        damage: what decoding found (``samples``: channels × frames of the file).
        sample_rate: the file's rate, Hz (for the time of the first damaged sample).
        strict: refuse any damaged sample instead (the file was decoded with no level limit,
            so only NaN/Inf samples count).

    Raises:
        AudioLoadError: ``strict`` and damage, or more than :data:`MAX_DAMAGED_FRACTION` of
            the samples damaged.
    """
    if damage.count == 0:
        return None
    if strict:
        raise AudioLoadError(f"{path.name}: {damage.count} NaN/Inf samples; the file is damaged "
                             "(without --strict they are silenced)")
    if damage.count > MAX_DAMAGED_FRACTION * samples:
        share = 100.0 * damage.count / max(samples, 1)
        raise AudioLoadError(f"{path.name}: {damage.count} of its {samples} samples ({share:.3g}%) are "
                             f"{_DAMAGE_WORDS}; the file is too damaged to repair")
    plural = "" if damage.count == 1 else "s"
    return (f"{damage.count} damaged sample{plural} ({_DAMAGE_WORDS}) silenced, "
            f"first at {damage.first_frame / sample_rate:.3f} s")


def _sample_limit(strict: bool) -> float:
    """The decoders' damaged-sample limit: none with ``strict`` (finite samples are kept as they are)."""
    return math.inf if strict else DAMAGED_SAMPLE_LIMIT


class _SampleReader:
    """Decodes blocks of one audio file to float32 ``(channels, n)``: plain WAV data here
    (:func:`_find_wav_data`), anything else through libsndfile. Samples that are NaN/Inf or
    beyond ``limit`` in magnitude are decoded as 0 (and counted). Raises libsndfile's errors.
    """

    def __init__(self, path: Path, limit: float = DAMAGED_SAMPLE_LIMIT) -> None:
        self.limit = float(limit)
        self._file: sf.SoundFile | None = sf.SoundFile(str(path))
        self._fd = -1
        try:
            self.sample_rate, self.channels = int(self._file.samplerate), int(self._file.channels)
            self.frames = int(self._file.frames)
            self._wav = _find_wav_data(path, self._file) if self.channels <= 2 else None
            if self._wav is not None:
                # Plain WAV is read through our own descriptor: libsndfile's handle is not needed,
                # and a streamed session holds one reader per stem (file-descriptor limits).
                self._fd = os.open(path, os.O_RDONLY)
                self._file.close()
                self._file = None
        except BaseException:
            self.close()
            raise
        width = self.channels * (self._wav.bits // 8 if self._wav is not None else 4)
        self._buffer = np.empty(DECODE_BLOCK_FRAMES * width, dtype=np.uint8)  # one interleaved block
        self._position = 0  # libsndfile's read position

    def read_into(self, start: int, out: np.ndarray) -> tuple[int, float, Damage]:
        """Decode frames ``[start, start + out.shape[1])`` into float32 ``out`` ``(channels, n)``.

        Returns ``(frames decoded, peak magnitude of the kept samples, the damaged samples
        silenced)``; fewer frames than asked only at the end of the file.
        """
        done, peak, damage = 0, 0.0, Damage()
        while done < out.shape[1]:
            n = min(DECODE_BLOCK_FRAMES, out.shape[1] - done)
            got, block_peak, block_bad, block_first = self._decode(start + done, out[:, done:done + n])
            damage = damage.plus(block_bad, start + done + block_first)
            done, peak = done + got, max(peak, block_peak)
            if got < n:
                break
        return done, peak, damage

    def _decode(self, start: int, out: np.ndarray) -> tuple[int, float, int, int]:
        n = min(out.shape[1], max(self.frames - start, 0))
        if n == 0:
            return 0, 0.0, 0, -1
        out = out[:, :n]
        if self._wav is not None:
            bits = self._wav.bits
            size = n * self.channels * bits // 8
            raw = self._buffer[:size]
            got = os.preadv(self._fd, [raw], self._wav.offset + start * self.channels * bits // 8)
            if got != size:
                raise RuntimeError("the file is shorter than its header says")
            if bits == 24:
                peak, bad, first = _deinterleave_24(raw, out)
            else:
                dtype = np.float32 if self._wav.is_float else np.int16 if bits == 16 else np.int32
                scale = 1.0 if self._wav.is_float else _PCM_SCALES[bits]
                peak, bad, first = _deinterleave(raw.view(dtype), scale, self.limit, out)
            return n, peak, bad, first
        assert self._file is not None  # for the type checker: only plain WAV closes it, and it returned above
        if start != self._position:
            self._file.seek(start)
        block = self._buffer.view(np.float32)[: n * self.channels].reshape(n, self.channels)
        got = self._file.buffer_read_into(block, dtype="float32")
        self._position = start + got
        peak, bad, first = _deinterleave(block[:got].reshape(-1), 1.0, self.limit, out[:, :got])
        return got, peak, bad, first

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _open_reader(path: Path, limit: float = DAMAGED_SAMPLE_LIMIT) -> _SampleReader:
    """:class:`_SampleReader` for ``path`` (``limit``: as there), with the loader's one-line
    errors (empty file, cannot decode, more than two channels)."""
    if path.stat().st_size == 0:
        raise AudioLoadError(f"{path.name}: empty file (0 bytes)")
    try:  # libsndfile reports a file it may not open as "System error."
        with open(path, "rb"):
            pass
    except OSError as e:
        raise AudioLoadError(f"{path.name}: cannot read ({e.strerror or e})") from None
    try:
        reader = _SampleReader(path, limit)
    except _DECODE_ERRORS as e:
        raise _decode_error(path, e) from None
    if reader.channels > 2:
        reader.close()
        raise AudioLoadError(
            f"{path.name}: {reader.channels} channels; automix mixes mono or stereo stems, "
            "so split or downmix this file first"
        )
    return reader


def _check_rate(path: Path, sample_rate: int) -> None:
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioLoadError(
            f"{path.name}: sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz"
        )


def _read_file(path: Path, limit: float) -> tuple[np.ndarray, int, float, Damage]:
    """``(audio, sample rate, peak magnitude, damage)`` of one file, samples beyond ``limit`` (and
    NaN/Inf) silenced; see :func:`load_audio`."""
    try:
        is_dir, exists, is_file = path.is_dir(), path.exists(), path.is_file()
    except OSError as e:  # e.g. a name longer than the file system allows
        raise AudioLoadError(f"{path}: cannot read ({e.strerror or e})") from None
    if is_dir:
        raise AudioLoadError(f"{path}: is a folder, not an audio file")
    if exists and not is_file:
        raise AudioLoadError(f"{path}: not a regular file (a pipe or device)")
    if not is_file:
        raise AudioLoadError(f"{path}: file not found")
    reader = _open_reader(path, limit)
    try:
        audio = np.empty((reader.channels, reader.frames), dtype=np.float32)
        frames, peak, damage = reader.read_into(0, audio)
    except _DECODE_ERRORS as e:
        raise _decode_error(path, e) from None
    finally:
        reader.close()
    _check_rate(path, reader.sample_rate)
    if frames < audio.shape[1]:  # libsndfile announced more frames than the file holds
        audio = np.ascontiguousarray(audio[:, :frames])
    return audio, reader.sample_rate, peak, damage


def _read_stem(path: Path, strict: bool) -> tuple[np.ndarray, int, float, str | None]:
    """``(audio, sample rate, peak magnitude, repair note or None)`` of one stem (see :func:`load_stems`)."""
    audio, sample_rate, peak, damage = _read_file(path, _sample_limit(strict))
    return audio, sample_rate, peak, _repair_note(path, damage, audio.size, sample_rate, strict)


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read one file as float32 ``(channels, samples)`` and its rate in Hz (e.g. a reference
    mix): every finite sample as it is; stems go through :func:`load_stems`, which repairs them.

    Raises:
        AudioLoadError: unreadable/corrupt/empty file, more than 2 channels, NaN or Inf samples.
    """
    path = Path(path)
    audio, sample_rate, _, damage = _read_file(path, math.inf)
    if damage.count:
        raise AudioLoadError(f"{path.name}: {damage.count} NaN/Inf samples; the file is damaged")
    return audio, sample_rate


def _short_reason(reason: str, path: Path) -> str:
    # libsndfile repeats the path in its message; the user already sees the file name.
    reason = reason.replace(f"Error opening {str(path)!r}: ", "").replace(str(path), "").strip(" :")
    if "does not exist or is not a regular file" in reason and path.is_file():
        return "corrupt or not audio"  # what libsndfile says about a damaged MP3, misleadingly
    return reason or "unknown format"
