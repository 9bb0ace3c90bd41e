"""Stem analysis for the mixers that need no training: audio features and role inference.

All features are computed on the stem as loaded (before any processing), from a mono
downmix except the stereo correlation. Levels are dBFS, frequencies Hz.

Speed and memory: a stem is read once, block by block (:func:`analyse_reader`), so the same
code analyses an array in memory or a file streamed from disk, with the same result. Every
sample is used for the level features (peak, loudness, frame powers, correlation: they decide
the trim, the compressor threshold and the roles, and a decimated copy would change them);
the spectra use at most :data:`MAX_SPECTRUM_FRAMES` evenly spaced ~0.2 s windows (enough to
characterise a stem; time stays flat for long songs). Compiled kernels accumulate in float64
straight from the float32 audio, without float64 copies of the stem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
import scipy.fft

from automix.console.loudness import LoudnessAccumulator

LOW_FREQ_HZ = 150.0
"""Power below this frequency counts as low-frequency energy (kick and bass territory)."""

RESONANCE_BAND_HZ = (200.0, 5000.0)
"""Where the resonance finder looks: the band where ringing and masking are most audible."""

RESONANCE_AUDIBLE_DB = 30.0
"""A resonance candidate must be within this many dB of the spectrum's strongest bin."""

FRAME_S = 0.05
ACTIVE_RANGE_DB = 40.0
"""Frames more than this far below the loudest frame are rests, not signal (for RMS/crest)."""


@dataclass(frozen=True)
class StemFeatures:
    """What the rules need to know about one stem.

    Attributes:
        lufs: integrated loudness (BS.1770), −70 for (near) silence.
        peak_dbfs: sample peak.
        active_rms_dbfs: RMS over the frames that are playing (rests ignored).
        crest_db: ``peak_dbfs − active_rms_dbfs``: high for drums, ~3 dB for a sine.
        transient_db: envelope spikiness (see :func:`transient_db`): high for drums.
        centroid_hz: power-weighted mean frequency (brightness).
        low_ratio: fraction of power below :data:`LOW_FREQ_HZ` (0…1).
        low_edge_hz: frequency below which 5 % of the power lies (lowest important content).
        stereo_correlation: L/R correlation (1 for mono or dual-mono, ~0 for wide stereo).
        resonance_hz: strongest persistent narrow peak in :data:`RESONANCE_BAND_HZ`.
        resonance_db: how far that peak stands above the 1/3-octave-smoothed spectrum.
    """

    lufs: float
    peak_dbfs: float
    active_rms_dbfs: float
    crest_db: float
    transient_db: float
    centroid_hz: float
    low_ratio: float
    low_edge_hz: float
    stereo_correlation: float
    resonance_hz: float
    resonance_db: float


def _db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 1e-20 else -200.0


@numba.njit(cache=True, nogil=True)
def _frame_sums(x: np.ndarray, n: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[f] += Σ x[c, f·n : (f+1)·n]²`` over channels ``c``, float64, for ``out.size`` frames."""
    for c in range(x.shape[0]):
        for f in range(out.shape[0]):
            acc = 0.0
            for i in range(f * n, (f + 1) * n):
                v = np.float64(x[c, i])
                acc += v * v
            out[f] += acc


@numba.njit(cache=True, nogil=True)
def _peak_and_products(x: np.ndarray, sums: np.ndarray) -> None:  # pragma: no cover - compiled
    """Update ``sums = [peak, L·L, R·R, L·R]`` with a ``(channels, n)`` block (float64 sums)."""
    peak = sums[0]
    ll = 0.0
    rr = 0.0
    lr = 0.0
    stereo = x.shape[0] == 2
    for i in range(x.shape[1]):
        left = np.float64(x[0, i])
        peak = max(peak, abs(left))
        if stereo:
            right = np.float64(x[1, i])
            peak = max(peak, abs(right))
            ll += left * left
            rr += right * right
            lr += left * right
    sums[0] = peak
    sums[1] += ll
    sums[2] += rr
    sums[3] += lr


def frame_power(audio: np.ndarray, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """Mean power (averaged over channels) of consecutive non-overlapping frames, ``(frames,)``.

    Args:
        audio: ``(channels, samples)`` or ``(samples,)``.
    """
    x = np.atleast_2d(audio)
    n = max(1, round(frame_s * sample_rate))
    frames = x.shape[-1] // n
    if frames == 0:  # shorter than one frame: one zero-padded frame
        x = np.pad(x.astype(np.float64), ((0, 0), (0, n - x.shape[-1])))
        frames = 1
    sums = np.zeros(frames)
    _frame_sums(np.ascontiguousarray(x[:, : frames * n]), n, sums)
    return sums / (x.shape[0] * n)


def _active(power: np.ndarray) -> np.ndarray:
    """The frames within :data:`ACTIVE_RANGE_DB` of the loudest one (rests dropped)."""
    loudest = float(power.max())
    if loudest <= 0:
        return power[:0]
    return power[power >= loudest * 10 ** (-ACTIVE_RANGE_DB / 10)]


def _active_rms_db(power: np.ndarray) -> float:
    active = _active(power)
    return _db(float(active.mean())) if active.size else -200.0


def _transient_db(power: np.ndarray) -> float:
    active = _active(power)
    if active.size < 2:
        return 0.0
    return _db(float(np.percentile(active, 90))) - _db(float(np.percentile(active, 50)))


def active_rms_dbfs(audio: np.ndarray, sample_rate: int) -> float:
    """RMS level (dBFS) over the frames that are playing, rests ignored."""
    return _active_rms_db(frame_power(audio, sample_rate))


def transient_db(audio: np.ndarray, sample_rate: int) -> float:
    """How spiky the 10 ms envelope is: 90th over 50th percentile of active frame power, dB.

    About 0–3 dB for sustained sources (pads, bass notes), 10+ dB for drum hits.
    """
    return _transient_db(frame_power(audio, sample_rate, 0.01))


MAX_SPECTRUM_FRAMES = 256
"""Spectra average at most this many evenly spaced frames (~95 s at 44.1 kHz): plenty to
characterise a stem, and analysis time stays flat for long songs."""


def _spectrum_layout(samples: int, sample_rate: int) -> tuple[int, np.ndarray]:
    """``(nperseg, frame starts)`` of :func:`spectra` for a signal of ``samples``."""
    nperseg = int(2 ** math.ceil(math.log2(sample_rate / 5.0)))
    nperseg = min(nperseg, 1 << int(math.log2(max(256, samples))))
    starts = np.arange(0, max(samples, nperseg) - nperseg + 1, nperseg // 2)
    if starts.size > MAX_SPECTRUM_FRAMES:
        starts = starts[np.linspace(0, starts.size - 1, MAX_SPECTRUM_FRAMES).round().astype(int)]
    return nperseg, starts


def _spectra_from_frames(frames: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # float32 FFTs: the spectra steer EQ decisions at a dB scale, 1e-6 relative error is irrelevant.
    nperseg = frames.shape[-1]
    spectrum = scipy.fft.rfft(frames.astype(np.float32) * np.hanning(nperseg).astype(np.float32), axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    freqs = np.fft.rfftfreq(nperseg, 1.0 / sample_rate)
    return freqs, power.mean(axis=0, dtype=np.float64), np.median(power.T, axis=1).astype(np.float64)


def spectra(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(freqs_hz, mean_power, median_power)`` over Hann-windowed frames (50 % overlap).

    Frames are ~0.2 s (about 5 Hz resolution, so a resonance a few Hz wide stands out). The
    median over time keeps only what is present most of the time (resonances, not passing notes).
    """
    nperseg, starts = _spectrum_layout(mono.size, sample_rate)
    x = mono if mono.size >= nperseg else np.pad(mono, (0, nperseg - mono.size))
    frames = np.stack([x[s : s + nperseg] for s in starts])
    return _spectra_from_frames(frames, sample_rate)


@numba.njit(cache=True)
def _window_medians(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:  # pragma: no cover
    """``out[k] = median(values[lo[k]:hi[k]])`` (compiled: thousands of windows per stem)."""
    out = np.empty(lo.size)
    for k in range(lo.size):
        out[k] = np.median(values[lo[k]:hi[k]])
    return out


def find_resonance(freqs: np.ndarray, psd: np.ndarray) -> tuple[float, float]:
    """Strongest narrow peak in :data:`RESONANCE_BAND_HZ` relative to a 1/3-octave median.

    Args:
        freqs, psd: a power spectrum, ``freqs`` ascending (use a median-over-time one so only
            persistent peaks, not passing melody notes, show up).

    Returns:
        ``(frequency_hz, prominence_db)``; prominence 0 when the band is flat or empty.
    """
    psd_db = 10.0 * np.log10(np.maximum(np.asarray(psd, dtype=np.float64), 1e-20))
    freqs = np.asarray(freqs, dtype=np.float64)
    lo, hi = RESONANCE_BAND_HZ
    third = 2.0 ** (1.0 / 6.0)  # half of a third of an octave each side
    audible = psd_db >= psd_db.max() - RESONANCE_AUDIBLE_DB  # ignore "peaks" in the noise floor
    candidates = np.flatnonzero((freqs >= lo) & (freqs <= hi) & audible)
    if candidates.size == 0:
        return 0.0, 0.0
    # Each candidate's window is the bins within 1/6 octave of it (inclusive), as index bounds.
    first = np.searchsorted(freqs, freqs[candidates] / third, side="left")
    last = np.searchsorted(freqs, freqs[candidates] * third, side="right")
    prominence = psd_db[candidates] - _window_medians(psd_db, first, last)
    best = int(np.argmax(prominence))  # the first of equal maxima, like a strict scan
    if not prominence[best] > 0.0:
        return 0.0, 0.0
    return float(freqs[candidates[best]]), float(prominence[best])


Reader = Callable[[int, int], np.ndarray]
"""``read(start, stop)`` → float32 ``(channels, stop - start)``: a stem's samples, from memory or disk."""

ANALYSIS_BLOCK_SAMPLES = 1 << 20
"""Samples per block of :func:`analyse_reader` (rounded to whole analysis frames)."""


def analyse_reader(read: Reader, channels: int, samples: int, sample_rate: int) -> StemFeatures:
    """Measure one stem given as a block reader (see :data:`Reader`), in one pass plus the
    spectrum windows. Same result for a file on disk and the same samples in memory."""
    n10, n50 = max(1, round(0.01 * sample_rate)), max(1, round(FRAME_S * sample_rate))
    frame_lcm = n10 * n50 // math.gcd(n10, n50)
    block = frame_lcm * max(1, ANALYSIS_BLOCK_SAMPLES // frame_lcm)  # blocks hold whole frames of both sizes
    power10 = np.zeros(max(1, samples // n10))
    power50 = np.zeros(max(1, samples // n50))
    sums = np.zeros(4)  # peak, L·L, R·R, L·R
    meter = LoudnessAccumulator(sample_rate, channels)
    for start in range(0, samples, block):
        x = np.ascontiguousarray(read(start, min(start + block, samples)), dtype=np.float32)
        _peak_and_products(x, sums)
        meter.push(x)
        for n, power in ((n10, power10), (n50, power50)):
            count = min(x.shape[1] // n, samples // n - start // n)
            if count > 0:
                _frame_sums(x, n, power[start // n : start // n + count])
        if samples < n50:  # shorter than one 50 ms frame: one zero-padded frame (and 10 ms likewise)
            for n, power in ((n10, power10), (n50, power50)):
                if samples < n:
                    _frame_sums(np.pad(x, ((0, 0), (0, n - samples))), n, power[:1])
    power10 /= channels * n10
    power50 /= channels * n50

    peak = float(sums[0])
    peak_db = 20.0 * math.log10(peak) if peak > 0 else -200.0
    rms_db = _active_rms_db(power50)

    nperseg, starts = _spectrum_layout(samples, sample_rate)
    frames = np.zeros((starts.size, nperseg), dtype=np.float32)
    for k, s in enumerate(starts):
        piece = read(int(s), min(int(s) + nperseg, samples))
        frames[k, : piece.shape[1]] = piece.mean(axis=0) if channels > 1 else piece[0]
    freqs, psd, median_psd = _spectra_from_frames(frames, sample_rate)
    audible = freqs >= 20.0
    total = float(psd[audible].sum())
    if total > 0:
        centroid = float((freqs[audible] * psd[audible]).sum() / total)
        low_ratio = float(psd[audible & (freqs < LOW_FREQ_HZ)].sum() / total)
        cumulative = np.cumsum(psd[audible]) / total
        low_edge = float(freqs[audible][np.searchsorted(cumulative, 0.05)])
    else:
        centroid, low_ratio, low_edge = 0.0, 0.0, 20.0

    resonance_hz, resonance_db = find_resonance(freqs, median_psd)

    correlation = 1.0
    if channels == 2:
        denom = math.sqrt(float(sums[1]) * float(sums[2]))
        correlation = float(sums[3]) / denom if denom > 0 else 0.0

    return StemFeatures(
        lufs=float(meter.lufs()),
        peak_dbfs=peak_db,
        active_rms_dbfs=rms_db,
        crest_db=peak_db - rms_db,
        transient_db=_transient_db(power10),
        centroid_hz=centroid,
        low_ratio=low_ratio,
        low_edge_hz=low_edge,
        stereo_correlation=correlation,
        resonance_hz=resonance_hz,
        resonance_db=resonance_db,
    )


def analyse_stem(audio: np.ndarray, sample_rate: int) -> StemFeatures:
    """Measure one stem, float32 ``(channels, samples)``."""
    audio = np.asarray(audio, dtype=np.float32)
    return analyse_reader(lambda a, b: audio[:, a:b], audio.shape[0], audio.shape[1], sample_rate)


# --------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------

PERCUSSIVE_TRANSIENT_DB = 9.0
"""Envelope spikiness (:func:`transient_db`) from which a source counts as percussive."""

SUSTAINED_TRANSIENT_DB = 5.0
"""Envelope spikiness below which a source counts as sustained (pads, drones)."""

ROLES: tuple[str, ...] = (
    "kick", "snare", "hats", "drums", "bass", "lead_vocal", "backing_vocal",
    "lead", "guitar", "keys", "pad", "fx", "melodic",
)
"""Every role a stem can get. ``melodic`` is a pitched source the rules could not name."""

# Checked in this order, so "bass drum" is a kick and "lead vocal" a vocal, not a lead.
# Keywords of 4+ letters match anywhere in the name; shorter ones only as a whole word.
_NAME_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("backing_vocal", ("backing", "bgv", "bv", "bvs", "bvox", "harmony", "harmonies", "choir", "adlib", "dbl")),
    ("lead_vocal", ("vocal", "vox", "voc", "voice", "singer", "lv", "leadvox")),
    ("kick", ("kick", "kik", "bd", "bassdrum")),
    ("snare", ("snare", "snr", "sd", "clap", "rimshot", "rim")),
    ("hats", ("hihat", "hat", "hats", "hh", "cymbal", "ride", "crash", "shaker", "tamb", "tambourine",
              "overhead", "oh")),
    ("drums", ("drum", "drums", "tom", "toms", "perc", "room", "kit", "conga", "bongo", "cowbell")),
    ("bass", ("bass", "sub", "808", "bs")),
    ("fx", ("fx", "sfx", "riser", "sweep", "impact", "noise", "efx")),
    ("pad", ("pad", "pads", "strings", "string", "str", "atmos", "ambient", "drone")),
    ("lead", ("lead", "solo", "melody", "mel", "sax", "trumpet", "flute", "violin", "whistle")),
    ("guitar", ("guitar", "gtr", "gtrs", "git", "acoustic", "strum")),
    ("keys", ("keys", "key", "piano", "pno", "organ", "rhodes", "epiano", "synth", "arp", "pluck", "bell")),
)


def _name_tokens(name: str) -> tuple[list[str], str]:
    base = name.rsplit(".", 1)[0] if "." in name else name
    base = re.sub(r"([a-z])([A-Z])", r"\1 \2", base).casefold()  # "LeadVox" → "lead vox"
    tokens = [t for t in re.split(r"[^a-z0-9]+", base) if t]
    words = [re.sub(r"\d+$", "", t) or t for t in tokens]  # "kick01" → "kick", "808" stays
    return words, "".join(words)


def role_from_name(name: str) -> tuple[str | None, str | None]:
    """The role a file name announces, and the keyword that decided it (or ``(None, None)``)."""
    words, joined = _name_tokens(name)
    for role, keywords in _NAME_KEYWORDS:
        for keyword in keywords:
            if keyword in words or (len(keyword) >= 4 and keyword in joined):
                return role, keyword
    return None, None


def role_from_audio(f: StemFeatures) -> tuple[str, str]:
    """Guess a role from features alone; returns ``(role, reason)``.

    The tree follows how engineers listen: low-frequency weight first (kick vs bass:
    percussive vs sustained envelope), then brightness (cymbals), then transients (other
    drums), then stereo-ness with a steady envelope (pads), else melodic.
    """
    percussive = f.transient_db >= PERCUSSIVE_TRANSIENT_DB
    if f.low_ratio >= 0.5:
        low = f"{f.low_ratio:.0%} of power below {LOW_FREQ_HZ:g} Hz"
        if percussive:
            return "kick", f"{low}, percussive (transients {f.transient_db:.0f} dB)"
        return "bass", f"{low}, sustained (transients {f.transient_db:.0f} dB)"
    if f.centroid_hz >= 4000.0:
        return "hats", f"bright (centroid {f.centroid_hz:.0f} Hz)"
    if percussive:
        return "drums", f"percussive (transients {f.transient_db:.0f} dB)"
    if f.stereo_correlation < 0.7 and f.transient_db < SUSTAINED_TRANSIENT_DB:
        wide = f"L/R correlation {f.stereo_correlation:.2f}"
        return "pad", f"wide ({wide}) and sustained (transients {f.transient_db:.0f} dB)"
    return "melodic", f"pitched, centroid {f.centroid_hz:.0f} Hz"


def infer_role(name: str, features: StemFeatures) -> tuple[str, str]:
    """Role of a stem from its file name, else from its audio; returns ``(role, why)``."""
    role, keyword = role_from_name(name)
    if role is not None:
        return role, f"role {role} from name ({keyword!r})"
    role, reason = role_from_audio(features)
    return role, f"role {role} from audio: {reason}"
