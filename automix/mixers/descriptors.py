"""Level and spectral descriptors of one stem, and the :class:`StemFeatures` record that holds them.

Levels are dBFS, frequencies Hz, computed on the stem as loaded (before any processing), from
a mono downmix except the stereo correlation. Level descriptors use every sample (they decide
the trim, the compressor threshold and the roles, and a decimated copy would change them); the
spectra use at most :data:`MAX_SPECTRUM_FRAMES` evenly spaced ~0.2 s windows (enough to
characterise a stem; time stays flat for long songs). :mod:`automix.mixers.stem_analysis`
measures them all in one pass over a stem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
import scipy.fft

LOW_FREQ_HZ = 150.0
"""Power below this frequency counts as low-frequency energy (kick and bass territory)."""

RESONANCE_BAND_HZ = (200.0, 5000.0)
"""Where the resonance finder looks: the band where ringing and masking are most audible."""

RESONANCE_AUDIBLE_DB = 30.0
"""A resonance candidate must be within this many dB of the spectrum's strongest bin."""

FRAME_S = 0.05
"""Frame length (s) of the frame powers behind the active RMS and the crest factor."""

ACTIVE_RANGE_DB = 40.0
"""Frames more than this far below the loudest frame are rests, not signal (for RMS/crest)."""

DC_ONLY_SHARE = 0.9999
"""A stem with at least this share of its power in its DC offset holds nothing audible: what
is left is ≥ 40 dB below the offset, and the console's high-pass (its DC blocker) removes the
offset itself."""


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
        dc_share: fraction of the power that is a constant (DC) offset, 0…1 (0 for silence).
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
    dc_share: float = 0.0

    @property
    def only_dc(self) -> bool:
        """Nothing audible besides a DC offset (see :data:`DC_ONLY_SHARE`)."""
        return self.dc_share >= DC_ONLY_SHARE


def _db(power: float) -> float:
    """``power`` in dB (−200 for ≤ 1e-20, i.e. silence)."""
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


def active_rms_db_from_power(power: np.ndarray) -> float:
    """RMS level (dBFS) of the active frames of frame powers ``(frames,)`` (:func:`frame_power`)."""
    active = _active(power)
    return _db(float(active.mean())) if active.size else -200.0


def transient_db_from_power(power: np.ndarray) -> float:
    """:func:`transient_db` of 10 ms frame powers ``(frames,)`` (:func:`frame_power`), dB."""
    active = _active(power)
    if active.size < 2:
        return 0.0
    return _db(float(np.percentile(active, 90))) - _db(float(np.percentile(active, 50)))


def active_rms_dbfs(audio: np.ndarray, sample_rate: int) -> float:
    """RMS level (dBFS) over the frames that are playing, rests ignored."""
    return active_rms_db_from_power(frame_power(audio, sample_rate))


def transient_db(audio: np.ndarray, sample_rate: int) -> float:
    """How spiky the 10 ms envelope is: 90th over 50th percentile of active frame power, dB.

    About 0–3 dB for sustained sources (pads, bass notes), 10+ dB for drum hits.
    """
    return transient_db_from_power(frame_power(audio, sample_rate, 0.01))


MAX_SPECTRUM_FRAMES = 256
"""Spectra average at most this many evenly spaced frames (~95 s at 44.1 kHz): plenty to
characterise a stem, and analysis time stays flat for long songs."""


def spectrum_layout(samples: int, sample_rate: int) -> tuple[int, np.ndarray]:
    """``(nperseg, frame starts)`` of :func:`spectra` for a signal of ``samples``."""
    nperseg = int(2 ** math.ceil(math.log2(sample_rate / 5.0)))
    nperseg = min(nperseg, 1 << int(math.log2(max(256, samples))))
    starts = np.arange(0, max(samples, nperseg) - nperseg + 1, nperseg // 2)
    if starts.size > MAX_SPECTRUM_FRAMES:
        starts = starts[np.linspace(0, starts.size - 1, MAX_SPECTRUM_FRAMES).round().astype(int)]
    return nperseg, starts


@lru_cache(maxsize=4)
def _hann(nperseg: int) -> np.ndarray:
    """float32 Hann window ``(nperseg,)``, cached: every stem of a song uses the same length."""
    return np.hanning(nperseg).astype(np.float32)


def _medians_over_frames(power: np.ndarray) -> np.ndarray:
    """``np.median(power, axis=0)`` of float32 ``(frames, bins)``, bit for bit, as float64.

    numpy's median partitions each column separately (slow across thousands of bins); sorting
    the transposed copy row by row uses numpy's vectorised sort and gives the same values (the
    mean of the two middle values is taken in float32, as numpy does).
    """
    ordered = np.ascontiguousarray(power.T)
    ordered.sort(axis=1)
    m = ordered.shape[1]
    if m % 2:
        return ordered[:, m // 2].astype(np.float64)
    return ((ordered[:, m // 2 - 1] + ordered[:, m // 2]) * np.float32(0.5)).astype(np.float64)


FLOAT32_SPECTRUM_LIMIT = 1e18
"""Bound on ``peak sample × frame length`` (≥ any bin's magnitude) below which a float32 FFT's
power cannot overflow (float32 holds magnitudes to 1.8e19 squared)."""


def spectra_from_frames(frames: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(freqs_hz, mean_power, median_power)`` of float32 ``(frames, nperseg)`` (overwritten)."""
    # float32 FFTs: the spectra steer EQ decisions at a dB scale, 1e-6 relative error is irrelevant.
    nperseg = frames.shape[-1]
    if float(np.abs(frames).max(initial=0.0)) * nperseg > FLOAT32_SPECTRUM_LIMIT:
        # Samples this large (a broken render kept with --strict) overflow float32 powers to inf,
        # and inf/inf makes every spectral feature NaN: such frames are analysed in float64.
        frames = frames.astype(np.float64)
    frames *= _hann(nperseg)
    spectrum = scipy.fft.rfft(frames, axis=-1, overwrite_x=True)
    power = spectrum.real**2 + spectrum.imag**2
    freqs = np.fft.rfftfreq(nperseg, 1.0 / sample_rate)
    return freqs, power.mean(axis=0, dtype=np.float64), _medians_over_frames(power)


def spectra(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(freqs_hz, mean_power, median_power)`` over Hann-windowed frames (50 % overlap).

    Frames are ~0.2 s (about 5 Hz resolution, so a resonance a few Hz wide stands out). The
    median over time keeps only what is present most of the time (resonances, not passing notes).
    """
    nperseg, starts = spectrum_layout(mono.size, sample_rate)
    x = mono if mono.size >= nperseg else np.pad(mono, (0, nperseg - mono.size))
    frames = np.stack([x[s : s + nperseg] for s in starts]).astype(np.float32)
    return spectra_from_frames(frames, sample_rate)


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
