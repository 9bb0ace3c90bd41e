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


def write_audio(
    path: str | Path,
    audio: np.ndarray,
    sample_rate: int,
    bit_depth: str = "24",
    force: bool = False,
    protect: Iterable[Path] = (),
) -> Path:
    """Write float ``(channels, samples)`` audio atomically as WAV (or FLAC by extension).

    Integer formats are clipped to [-1, 1] first (libsndfile would otherwise wrap around).
    """
    subtype = check_bit_depth(bit_depth, path)
    fmt = output_format(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise ValueError(f"audio must be (channels, samples) with 1 or 2 channels, got {audio.shape}")
    if subtype != "FLOAT":
        audio = np.clip(audio, -1.0, 1.0)
    frames = np.ascontiguousarray(audio.T)
    return _atomic_write(
        Path(path), force, protect, lambda tmp: sf.write(str(tmp), frames, int(sample_rate), subtype, format=fmt)
    )


def write_text_atomic(path: str | Path, text: str, force: bool = False, protect: Iterable[Path] = ()) -> Path:
    """Write UTF-8 text atomically (same rules as :func:`write_audio`)."""
    return _atomic_write(Path(path), force, protect, lambda tmp: tmp.write_text(text, encoding="utf-8"))
