"""Audio in and out: load a folder of stems, resample, write outputs atomically.

Loading rules (what a user can rely on):

* every audio file in the folder (wav, flac, aiff, ogg, mp3 where libsndfile reads it) is a
  stem, in name order; hidden files, sub-folders and other files are skipped with a note;
* stems are resampled to one rate (``sample_rate``, else the most common input rate) with a
  polyphase Kaiser-windowed resampler, and padded with silence to the longest stem;
* mono stays mono, stereo stays stereo; more than two channels is refused (automix does not
  guess a surround layout);
* a file that cannot be decoded is an error naming the file;
* damaged samples (NaN, Inf, or a magnitude beyond :data:`DAMAGED_SAMPLE_LIMIT`, +60 dBFS: what
  a broken render leaves, and what a DAW plays as a click at worst) are replaced with silence,
  with one note per stem saying how many and where the first one is; a stem with more than
  :data:`MAX_DAMAGED_FRACTION` of its samples damaged is refused. ``strict=True`` keeps the
  older rule: a NaN/Inf sample is an error and finite samples are kept whatever their level;
* silent stems (peak below :data:`SILENCE_PEAK_DBFS`) are reported and skipped.

Decoding: plain PCM/float WAV data (16, 24, 32-bit integer, 32-bit float: what DAWs export)
is converted here by a compiled loop, to the same float32 values libsndfile gives but several
times faster; every other format goes through libsndfile. Either way a file is decoded block
by block straight into its ``(channels, samples)`` array, with damaged samples silenced and
counted and the peak taken on the way (so a stem loaded in memory and one streamed from disk
read the same samples), and :func:`load_stems` decodes two files at a time. The files are only
ever read.

Writing rules: outputs go to a temporary file in the target folder and are moved into
place with ``os.replace`` (a crash never leaves half a file), an existing output is refused
unless ``force``, and a path that is one of the inputs is never written.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self, TypeVar

import numba
import numpy as np
import soundfile as sf

from automix.errors import AudioLoadError, AutomixError, OutputExistsError

AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".oga", ".mp3"})
"""File name endings loaded as stems (case-insensitive)."""

SILENCE_PEAK_DBFS = -80.0
"""A stem whose sample peak is below this level carries nothing audible and is skipped."""

DAMAGED_SAMPLE_LIMIT = 1e3
"""Sample magnitude (full scale = 1; 1e3 = +60 dBFS) beyond which a finite sample is damage,
not audio: float renders that go wrong leave isolated values like 1e6 or 1e30 beside normal
samples, while real audio, even badly clipped float audio, stays within a few dB of 0 dBFS."""

MAX_DAMAGED_FRACTION = 0.01
"""A stem with more than this fraction of its samples damaged is refused: silencing that much
would change the music rather than repair a few broken samples."""

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384000

RESAMPLER_KAISER_BETA = 8.6
"""Kaiser window shape for ``resample_poly``: about 90 dB stop-band rejection (scipy's
default of 5 gives about 55 dB, audible as aliasing on bright material)."""

BIT_DEPTHS: dict[str, str] = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
"""``--bit-depth`` choices → libsndfile subtypes."""

QUANTISATION_STEPS: dict[str, float] = {"16": 2.0**-15, "24": 2.0**-23}
"""One step of the integer ``BIT_DEPTHS`` in full-scale units (float output is not quantised)."""

_OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC"}

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


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------

def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


DECODE_BLOCK_FRAMES = 1 << 16
"""Frames decoded per step (the raw block stays in the CPU cache on its way to the output)."""

LOAD_WORKERS = 2
"""Stems decoded in parallel by :func:`load_stems` (file reads and the decoders release the GIL)."""

_PCM_SCALES = {16: 2.0**-15, 24: 2.0**-23, 32: 2.0**-31}
"""Integer PCM → float: the sample divided by 2^(bits−1), exactly as libsndfile reads it."""


@numba.njit(cache=True, nogil=True)
def _deinterleave(src: np.ndarray, scale: float, limit: float, out: np.ndarray
                  ) -> tuple[float, int, int]:  # pragma: no cover
    """``out[c, i] = float32(src[i·channels + c]) · scale`` for interleaved int16/int32/float32
    ``src``, with damaged samples (NaN/Inf, or magnitude above ``limit``) written as 0.

    Returns ``(peak magnitude of the kept samples, count of damaged samples, frame of the first
    damaged one or -1)``.
    """
    channels, n = out.shape
    factor = np.float32(scale)
    peak = np.float32(0.0)
    bad, first = 0, -1
    for i in range(n):
        for c in range(channels):
            v = np.float32(src[i * channels + c]) * factor
            if np.isfinite(v) and abs(v) <= limit:
                out[c, i] = v
                peak = max(peak, abs(v))
            else:
                out[c, i] = np.float32(0.0)
                if bad == 0:
                    first = i
                bad += 1
    return float(peak), bad, first


@numba.njit(cache=True, nogil=True)
def _deinterleave_24(raw: np.ndarray, out: np.ndarray) -> tuple[float, int, int]:  # pragma: no cover
    """:func:`_deinterleave` for packed little-endian 24-bit samples (``raw``: bytes as uint8);
    integers are never damaged (their magnitude is at most 1)."""
    channels, n = out.shape
    factor = np.float32(2.0**-23)
    peak = np.float32(0.0)
    for i in range(n):
        for c in range(channels):
            p = 3 * (i * channels + c)
            u = np.int32(raw[p]) | (np.int32(raw[p + 1]) << 8) | (np.int32(raw[p + 2]) << 16)
            v = np.float32(u - ((u & 0x800000) << 1)) * factor  # sign-extend from 24 bits
            out[c, i] = v
            peak = max(peak, abs(v))
    return float(peak), 0, -1


@dataclass(frozen=True)
class _WavData:
    """Where a plain little-endian PCM/float WAV file keeps its interleaved samples."""

    offset: int  # byte offset of frame 0
    bits: int  # per sample: 16, 24 or 32
    is_float: bool


_WAV_SUBTYPES = {"PCM_16": (16, False), "PCM_24": (24, False), "PCM_32": (32, False), "FLOAT": (32, True)}
_WAV_FORMAT_PCM, _WAV_FORMAT_FLOAT, _WAV_FORMAT_EXTENSIBLE = 1, 3, 0xFFFE


def _find_wav_data(path: Path, info: sf.SoundFile) -> _WavData | None:
    """The sample layout of a WAV file whose samples automix decodes itself (several times faster
    than libsndfile's conversion loops), or None to let libsndfile decode it.

    Only what can be checked is accepted: a RIFF/WAVE file whose ``fmt`` chunk agrees with what
    libsndfile reported (channels, bits, integer or float), with all of libsndfile's frames
    inside the file. The samples are then the same bits libsndfile would convert, and the
    conversion (÷ 2^(bits−1) in float32, or a float copy) gives the same values.
    """
    if info.format not in ("WAV", "WAVEX") or info.subtype not in _WAV_SUBTYPES:
        return None
    bits, is_float = _WAV_SUBTYPES[info.subtype]
    try:
        with open(path, "rb") as f:
            header = f.read(12)
            if header[:4] != b"RIFF" or header[8:] != b"WAVE":
                return None
            layout, position = None, 12
            for _ in range(64):  # chunks before the samples: fmt, fact, LIST, bext, JUNK, ...
                head = f.read(8)
                if len(head) < 8:
                    return None
                chunk, size = head[:4], int.from_bytes(head[4:], "little")
                if chunk == b"fmt ":
                    body = f.read(min(size, 40))
                    if len(body) < 16:
                        return None
                    tag, channels, _, _, align, chunk_bits = struct.unpack("<HHIIHH", body[:16])
                    if tag == _WAV_FORMAT_EXTENSIBLE and len(body) >= 26:
                        tag = int.from_bytes(body[24:26], "little")  # the sub-format GUID starts with the tag
                    layout = (tag, channels, align, chunk_bits)
                elif chunk == b"data":
                    if layout != (_WAV_FORMAT_FLOAT if is_float else _WAV_FORMAT_PCM, info.channels,
                                  info.channels * bits // 8, bits):
                        return None
                    offset = position + 8
                    end = offset + info.frames * info.channels * bits // 8
                    return _WavData(offset, bits, is_float) if end <= os.fstat(f.fileno()).st_size else None
                position += 8 + size + (size & 1)  # chunks are padded to an even size
                f.seek(position)
    except OSError:
        return None
    return None


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


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample float32 ``(channels, samples)`` from ``from_hz`` to ``to_hz`` (polyphase, Kaiser).

    The output length is ``ceil(samples * to_hz / from_hz)``.
    """
    if from_hz == to_hz:
        return audio
    g = math.gcd(int(from_hz), int(to_hz))
    up, down = int(to_hz) // g, int(from_hz) // g
    from scipy.signal import resample_poly  # a second to import; only sessions that resample pay it

    out = resample_poly(audio.astype(np.float64), up, down, axis=-1, window=("kaiser", RESAMPLER_KAISER_BETA))
    return out.astype(np.float32)


def peak_dbfs(audio: np.ndarray) -> float:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def scan_folder(folder: str | Path, exclude: Iterable[Path] = ()) -> tuple[list[Path], list[str]]:
    """List the audio files of a stems folder in name order, with notes about what was skipped
    (hidden files, sub-folders, non-audio files, and a symbolic link to another stem of the
    folder, which would otherwise be mixed twice).

    Args:
        folder: the stems folder.
        exclude: paths never treated as stems (e.g. this run's own output inside the folder).

    Raises:
        AutomixError: the folder does not exist, is not a folder, or holds no audio files.
    """
    folder = Path(folder)
    try:
        exists = folder.exists()
    except OSError as e:  # e.g. a name longer than the file system allows
        raise AutomixError(f"{folder}: cannot read the stems folder ({e.strerror or e})") from None
    if not exists:
        raise AutomixError(f"{folder}: stems folder not found")
    if not folder.is_dir():
        raise AutomixError(f"{folder}: not a folder (give the folder that holds the stems)")
    excluded = {_resolved(p) for p in exclude}
    files: list[Path] = []
    notes: list[str] = []
    try:
        entries = sorted(folder.iterdir(), key=lambda p: (p.name.casefold(), p.name))
    except OSError as e:
        raise AutomixError(f"{folder}: cannot read the stems folder ({e.strerror or e})") from None
    for entry in entries:
        if entry.name.startswith("."):
            notes.append(f"skipped hidden file {entry.name}")
        elif entry.is_dir():
            notes.append(f"skipped sub-folder {entry.name}/")
        elif entry.exists() and not entry.is_file():  # a named pipe would block every read forever
            notes.append(f"skipped {entry.name} (not a regular file)")
        elif _resolved(entry) in excluded:
            notes.append(f"skipped {entry.name} (an output of this run)")
        elif not is_audio_file(entry):
            notes.append(f"skipped {entry.name} (not an audio file)")
        else:
            files.append(entry)
    files = _without_duplicates(files, notes)
    if not files:
        what = "is empty" if not notes else f"holds no audio files ({notes[0]}{', …' if len(notes) > 1 else ''})"
        raise AutomixError(f"{folder}: stems folder {what}; expected wav, flac, aiff, ogg or mp3 files")
    return files, notes


def _file_identity(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of the file a path leads to (through links), None if it cannot be read."""
    try:
        st = path.stat()
    except OSError:  # a dangling link or an unreadable entry: the loader reports it
        return None
    return st.st_dev, st.st_ino


def _without_duplicates(files: list[Path], notes: list[str]) -> list[Path]:
    """``files`` (name order) without symbolic links that lead to another listed stem: an alias
    of a stem would mix the same audio twice. Appends a note per file skipped.

    Only symbolic links are dropped: a copy, or a hard link (which the file system presents as
    an ordinary file), is a stem the user put there, so it is kept like any other.
    """
    by_identity: dict[tuple[int, int], list[Path]] = {}
    for path in files:
        identity = _file_identity(path)
        if identity is not None:
            by_identity.setdefault(identity, []).append(path)
    skipped: dict[Path, Path] = {}
    for paths in by_identity.values():
        keep = next((p for p in paths if not p.is_symlink()), paths[0])
        skipped.update({p: keep for p in paths if p != keep and p.is_symlink()})
    for path in files:
        if path in skipped:
            notes.append(f"skipped {path.name} (the same file as {skipped[path].name})")
    return [p for p in files if p not in skipped]


def choose_sample_rate(rates: Iterable[int]) -> int:
    """The most common rate; ties go to the higher rate (never throw detail away)."""
    counts = Counter(rates)
    return max(counts, key=lambda r: (counts[r], r))


def _prepare_decoders() -> None:
    """Compile (or load from numba's cache) the decoders for the usual layouts on this thread,
    so numba's one-time set-up never runs in two worker threads at once."""
    raw = np.zeros(12, dtype=np.uint8)
    for out in (np.empty((1, 2), np.float32), np.empty((2, 4), np.float32)[:, :2]):  # mono, stereo
        _deinterleave_24(raw[:3 * out.size], out)
        _deinterleave(raw[:4 * out.size].view(np.float32), 1.0, DAMAGED_SAMPLE_LIMIT, out)


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
            instead of silencing damaged samples (see the module docstring).

    Returns:
        ``(stems, sample_rate, notes)``; stems are float32 ``(channels, samples)``, all the
        same length, each with its own repair note in ``Stem.notes``; notes say what was
        repaired, skipped, resampled or padded.

    Raises:
        AutomixError / AudioLoadError: see the module docstring.
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


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

def _resolved(path: Path) -> Path:
    try:
        return Path(path).resolve()
    except OSError:
        return Path(os.path.abspath(path))


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


NAME_MAX_FALLBACK = 255
"""Longest file name in bytes when the file system does not say (most Linux and macOS ones)."""


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. the name itself is too long: it is not there
        return False


def name_too_long(path: str | Path) -> tuple[str, int, int] | None:
    """The first name in ``path`` that does not exist yet and is longer than the file system
    of its nearest existing ancestor allows, as ``(name, bytes, limit)``; None if all fit.

    Checked up front because the system only refuses such a name when the file or folder is
    created, after the folders before it have been made. Bytes are counted in the file
    system encoding (``os.fsencode``); the limit is ``PC_NAME_MAX`` (255 when unknown).
    """
    path = Path(path)
    new: list[str] = []
    probe = path
    while str(probe) not in ("", ".", probe.anchor) and not _exists(probe):
        new.append(probe.name)
        probe = probe.parent
    if not new:
        return None
    try:
        limit = os.pathconf(probe if str(probe) else ".", "PC_NAME_MAX")
    except (OSError, ValueError):  # no such setting on this platform or file system
        limit = NAME_MAX_FALLBACK
    if limit is None or limit <= 0:
        limit = NAME_MAX_FALLBACK
    for name in reversed(new):
        size = len(os.fsencode(name))
        if size > limit:
            return name, size, int(limit)
    return None


def short_name(name: str, keep: int = 48) -> str:
    """``name`` for a message: names longer than ``keep`` characters are cut in the middle."""
    return name if len(name) <= keep else f"{name[: keep - 16]}…{name[-15:]}"


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


# --------------------------------------------------------------------------------------
# Streaming: stems read block by block from disk, scratch audio on disk
# --------------------------------------------------------------------------------------

class ScratchAudio:
    """Float32 ``(channels, frames)`` audio in an anonymous temporary file (deleted on close).

    Blocks go through ``os.pread``/``os.pwrite`` (interleaved frames), so only the blocks in
    use are in memory; the page cache holds the rest and is not counted in the process's RSS.
    Reads outside ``[0, frames)`` return zeros, so callers can read with context margins.
    """

    def __init__(self, channels: int, frames: int, folder: str | Path | None = None) -> None:
        self.channels, self.frames = int(channels), int(frames)
        self._file = tempfile.TemporaryFile(prefix="automix-scratch-", dir=folder)  # noqa: SIM115 - closed by close()
        self._fd = self._file.fileno()
        os.ftruncate(self._fd, self.frames * self.channels * 4)

    @property
    def shape(self) -> tuple[int, int]:
        return self.channels, self.frames

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` as float32 ``(channels, stop - start)``, zeros outside the audio."""
        out = np.zeros((self.channels, max(stop - start, 0)), dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.frames)
        if hi > lo:
            width = self.channels * 4
            data = os.pread(self._fd, (hi - lo) * width, lo * width)
            out[:, lo - start:hi - start] = np.frombuffer(data, dtype=np.float32).reshape(hi - lo, self.channels).T
        return out

    def write(self, start: int, block: np.ndarray) -> None:
        """Store float ``(channels, n)`` samples at ``[start, start + n)``."""
        if block.shape[0] != self.channels or start < 0 or start + block.shape[1] > self.frames:
            raise ValueError(f"block {block.shape} at {start} does not fit {self.shape}")
        data = np.ascontiguousarray(block.T, dtype=np.float32).tobytes()
        written = os.pwrite(self._fd, data, start * self.channels * 4)
        if written != len(data):
            raise AutomixError(f"scratch file: short write ({written} of {len(data)} bytes); is the disk full?")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


STREAM_BLOCK_SAMPLES = 1 << 18
"""Samples per block when validating, resampling or reading stems from disk."""


def resample_blocks(read: Callable[[int, int], np.ndarray], frames: int, from_hz: int, to_hz: int,
                    write: Callable[[int, np.ndarray], None], block: int = STREAM_BLOCK_SAMPLES) -> int:
    """Resample a long signal block by block with :func:`resample`'s filter; returns the output length.

    Each block is resampled with enough input context on both sides (a whole number of
    ``down`` steps, beyond the filter's half-length) that its interior equals the same part of
    a whole-signal :func:`resample`. ``read(start, stop)`` must return zeros outside the signal;
    ``write(start, block)`` receives consecutive output blocks.
    """
    g = math.gcd(int(from_hz), int(to_hz))
    up, down = int(to_hz) // g, int(from_hz) // g
    from scipy.signal import resample_poly

    margin = down * math.ceil((10 * max(up, down) / up + 2) / down)  # resample_poly's half-length, rounded up
    step = down * max(1, block // down)
    total = -(-frames * up // down)
    for start in range(0, frames, step):
        chunk = read(start - margin, start + step + margin)
        y = resample_poly(chunk.astype(np.float64), up, down, axis=-1, window=("kaiser", RESAMPLER_KAISER_BETA))
        first = start * up // down
        last = min(total, (start + step) * up // down)
        offset = margin * up // down
        write(first, y[:, offset:offset + last - first].astype(np.float32))
    return total


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
