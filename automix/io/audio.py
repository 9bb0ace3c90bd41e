"""Audio in and out: load a folder of stems, resample, write outputs atomically.

Loading rules (what a user can rely on):

* every audio file in the folder (wav, flac, aiff, ogg, mp3 where libsndfile reads it) is a
  stem, in name order; hidden files, sub-folders and other files are skipped with a note;
* stems are resampled to one rate (``sample_rate``, else the most common input rate) with a
  polyphase Kaiser-windowed resampler, and padded with silence to the longest stem;
* mono stays mono, stereo stays stereo; more than two channels is refused (automix does not
  guess a surround layout);
* a file that cannot be decoded, or that holds NaN/Inf samples, is an error naming the file;
* silent stems (peak below :data:`SILENCE_PEAK_DBFS`) are reported and skipped.

Writing rules: outputs go to a temporary file in the target folder and are moved into
place with ``os.replace`` (a crash never leaves half a file), an existing output is refused
unless ``force``, and a path that is one of the inputs is never written.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from automix.errors import AudioLoadError, AutomixError, OutputExistsError

AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".oga", ".mp3"})
"""File name endings loaded as stems (case-insensitive)."""

SILENCE_PEAK_DBFS = -80.0
"""A stem whose sample peak is below this level carries nothing audible and is skipped."""

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384000

RESAMPLER_KAISER_BETA = 8.6
"""Kaiser window shape for ``resample_poly``: about 90 dB stop-band rejection (scipy's
default of 5 gives about 55 dB, audible as aliasing on bright material)."""

BIT_DEPTHS: dict[str, str] = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
"""``--bit-depth`` choices → libsndfile subtypes."""

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
    """

    name: str
    audio: np.ndarray
    sample_rate: int
    path: Path | None = None

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


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read one file as float32 ``(channels, samples)`` and its rate in Hz.

    Raises:
        AudioLoadError: unreadable/corrupt/empty file, more than 2 channels, NaN or Inf samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioLoadError(f"{path.name}: empty file (0 bytes)")
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioLoadError(f"{path.name}: cannot decode audio ({_short_reason(reason, path)})") from None
    channels = data.shape[1]
    if channels > 2:
        raise AudioLoadError(
            f"{path.name}: {channels} channels; automix mixes mono or stereo stems, "
            "so split or downmix this file first"
        )
    if not np.isfinite(data).all():
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise AudioLoadError(f"{path.name}: {bad} NaN/Inf samples; the file is damaged")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioLoadError(
            f"{path.name}: sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz"
        )
    return np.ascontiguousarray(data.T), int(sample_rate)


def _short_reason(reason: str, path: Path) -> str:
    # libsndfile repeats the path in its message; the user already sees the file name.
    reason = reason.replace(f"Error opening {str(path)!r}: ", "").replace(str(path), "").strip(" :")
    return reason or "unknown format"


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample float32 ``(channels, samples)`` from ``from_hz`` to ``to_hz`` (polyphase, Kaiser).

    The output length is ``ceil(samples * to_hz / from_hz)``.
    """
    if from_hz == to_hz:
        return audio
    g = math.gcd(int(from_hz), int(to_hz))
    up, down = int(to_hz) // g, int(from_hz) // g
    out = resample_poly(audio.astype(np.float64), up, down, axis=-1, window=("kaiser", RESAMPLER_KAISER_BETA))
    return out.astype(np.float32)


def peak_dbfs(audio: np.ndarray) -> float:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def scan_folder(folder: str | Path, exclude: Iterable[Path] = ()) -> tuple[list[Path], list[str]]:
    """List the audio files of a stems folder in name order, with notes about what was skipped.

    Args:
        folder: the stems folder.
        exclude: paths never treated as stems (e.g. this run's own output inside the folder).

    Raises:
        AutomixError: the folder does not exist, is not a folder, or holds no audio files.
    """
    folder = Path(folder)
    if not folder.exists():
        raise AutomixError(f"{folder}: stems folder not found")
    if not folder.is_dir():
        raise AutomixError(f"{folder}: not a folder (give the folder that holds the stems)")
    excluded = {_resolved(p) for p in exclude}
    files: list[Path] = []
    notes: list[str] = []
    for entry in sorted(folder.iterdir(), key=lambda p: (p.name.casefold(), p.name)):
        if entry.name.startswith("."):
            notes.append(f"skipped hidden file {entry.name}")
        elif entry.is_dir():
            notes.append(f"skipped sub-folder {entry.name}/")
        elif _resolved(entry) in excluded:
            notes.append(f"skipped {entry.name} (an output of this run)")
        elif not is_audio_file(entry):
            notes.append(f"skipped {entry.name} (not an audio file)")
        else:
            files.append(entry)
    if not files:
        what = "is empty" if not notes else f"holds no audio files ({notes[0]}{', …' if len(notes) > 1 else ''})"
        raise AutomixError(f"{folder}: stems folder {what}; expected wav, flac, aiff, ogg or mp3 files")
    return files, notes


def choose_sample_rate(rates: Iterable[int]) -> int:
    """The most common rate; ties go to the higher rate (never throw detail away)."""
    counts = Counter(rates)
    return max(counts, key=lambda r: (counts[r], r))


def load_stems(
    folder: str | Path,
    sample_rate: int | None = None,
    log: Log | None = None,
    *,
    exclude: Iterable[Path] = (),
) -> tuple[list[Stem], int, list[str]]:
    """Load every stem in ``folder`` at one rate, padded to one length.

    Args:
        folder: the stems folder.
        sample_rate: target rate in Hz; None uses the most common input rate.
        log: called with each note as it happens (e.g. the CLI's stderr printer).
        exclude: paths never treated as stems.

    Returns:
        ``(stems, sample_rate, notes)``; stems are float32 ``(channels, samples)``, all the
        same length; notes say what was skipped, resampled or padded.

    Raises:
        AutomixError / AudioLoadError: see the module docstring.
    """
    if sample_rate is not None and not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise AutomixError(
            f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz"
        )
    files, notes = scan_folder(folder, exclude)

    def note(text: str) -> None:
        notes.append(text)
        if log is not None:
            log(text)

    if log is not None:
        for text in notes:
            log(text)

    loaded: list[Stem] = []
    for path in files:
        audio, rate = load_audio(path)
        if audio.shape[1] == 0 or peak_dbfs(audio) < SILENCE_PEAK_DBFS:
            note(f"skipped {path.name} (silent)")
            continue
        loaded.append(Stem(path.name, audio, rate, path))
    if not loaded:
        raise AutomixError(f"{folder}: every audio file is silent; nothing to mix")

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
        AutomixError: it is one of the ``protect``-ed inputs, a folder, or its folder
            cannot be created or written.
    """
    path = Path(path)
    target = _resolved(path)
    if target in {_resolved(p) for p in protect}:
        raise AutomixError(f"{path}: refusing to write over an input file")
    if path.is_dir():
        raise AutomixError(f"{path}: is a folder; give a file name")
    if path.exists() and not force:
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
) -> Path:
    """Write float ``(channels, samples)`` audio atomically as WAV (or FLAC by extension).

    ``audio`` is an array or a :class:`ScratchAudio`; it is written block by block (no full
    copies). Integer formats are clipped to [-1, 1] first (libsndfile would otherwise wrap around).
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
            writer.write(audio.read(start, stop) if isinstance(audio, ScratchAudio) else audio[:, start:stop])
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
    """A stem streamed from disk: the same ``name``/``sample_rate``/``channels``/``frames``/``read``
    API as :class:`Stem`, without holding the samples. ``read`` pads with silence past the end
    (stems are padded to the longest). ``audio`` loads everything (for mixers that need it).
    """

    def __init__(self, name: str, path: Path, sample_rate: int, channels: int, frames: int,
                 source: ScratchAudio | None = None) -> None:
        self.name, self.path, self.sample_rate = name, path, int(sample_rate)
        self._channels, self.frames = int(channels), int(frames)
        self._scratch = source
        self._file = sf.SoundFile(str(path)) if source is None else None

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
            self._file.seek(lo)
            out[:, lo - start:hi - start] = self._file.read(hi - lo, dtype="float32", always_2d=True).T
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


def _scan_file(path: Path) -> tuple[int, int, int, float]:
    """``(sample_rate, channels, frames, peak)`` of one file, checked block by block like :func:`load_audio`."""
    if path.stat().st_size == 0:
        raise AudioLoadError(f"{path.name}: empty file (0 bytes)")
    try:
        with sf.SoundFile(str(path)) as f:
            rate, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
            if channels > 2:
                raise AudioLoadError(f"{path.name}: {channels} channels; automix mixes mono or stereo stems, "
                                     "so split or downmix this file first")
            if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
                raise AudioLoadError(
                    f"{path.name}: sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz")
            peak, bad = 0.0, 0
            for block in f.blocks(STREAM_BLOCK_SAMPLES, dtype="float32", always_2d=True):
                finite = np.isfinite(block)
                if not finite.all():
                    bad += int(np.count_nonzero(~finite))
                elif block.size:
                    peak = max(peak, float(block.max()), -float(block.min()))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioLoadError(f"{path.name}: cannot decode audio ({_short_reason(reason, path)})") from None
    if bad:
        raise AudioLoadError(f"{path.name}: {bad} NaN/Inf samples; the file is damaged")
    return rate, channels, frames, peak


def open_stems(
    folder: str | Path,
    sample_rate: int | None = None,
    log: Log | None = None,
    *,
    exclude: Iterable[Path] = (),
) -> tuple[list[StemFile], int, list[str]]:
    """Like :func:`load_stems`, but the stems stay on disk and are read block by block.

    Stems at another rate are resampled block by block into a temporary float32 file
    (:func:`resample_blocks`, same filter as :func:`resample`). Close the stems when done.
    """
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
    scanned = []
    for path in files:
        rate, channels, frames, peak = _scan_file(path)
        if frames == 0 or peak <= 0 or 20.0 * math.log10(peak) < SILENCE_PEAK_DBFS:
            note(f"skipped {path.name} (silent)")
            continue
        scanned.append((path, rate, channels, frames))
    if not scanned:
        raise AutomixError(f"{folder}: every audio file is silent; nothing to mix")
    rate = int(sample_rate) if sample_rate is not None else choose_sample_rate(r for _, r, _, _ in scanned)
    stems: list[StemFile] = []
    try:
        for path, file_rate, channels, frames in scanned:
            if file_rate == rate:
                stems.append(StemFile(path.name, path, rate, channels, frames))
                continue
            note(f"resampled {path.name} from {file_rate} Hz to {rate} Hz")
            with StemFile(path.name, path, file_rate, channels, frames) as original:
                scratch = ScratchAudio(channels, -(-frames * rate // file_rate))
                resample_blocks(original.read, frames, file_rate, rate, scratch.write)
            stems.append(StemFile(path.name, path, rate, channels, scratch.frames, scratch))
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
