"""The Bark scale of the Diff-MST audio features: band edges, centres and the STFT filterbank (NumPy).

Traunmüller's Hz↔Bark formulas, applied to both ends of the scale (see
:mod:`automix.measure.features` for the spectrum built on them). Torch-free, so evaluation
tables and plots can label Bark bands without importing torch.
"""

from __future__ import annotations

import math

import numpy as np

BARK_BANDS = 24
BARK_F_MIN_HZ = 20.0
BARK_F_MAX_HZ = 20000.0


def hz_to_bark(freq_hz: np.ndarray) -> np.ndarray:
    """Traunmüller (1990) Bark scale with its low (< 2 Bark) and high (> 20.1 Bark) corrections."""
    f = np.asarray(freq_hz, dtype=np.float64)
    z = 26.81 * f / (1960.0 + f) - 0.53
    z = np.where(z < 2.0, z + 0.15 * (2.0 - z), z)
    return np.where(z > 20.1, z + 0.22 * (z - 20.1), z)


def bark_to_hz(bark: np.ndarray) -> np.ndarray:
    """Exact inverse of :func:`hz_to_bark` (both corrections undone)."""
    z = np.asarray(bark, dtype=np.float64)
    z = np.where(z < 2.0, (z - 0.3) / 0.85, z)
    z = np.where(z > 20.1, (z + 4.422) / 1.22, z)
    return 1960.0 * (z + 0.53) / (26.28 - z)


def bark_band_edges_hz() -> np.ndarray:
    """``(BARK_BANDS + 2,)`` triangle corner frequencies, equally spaced in Bark, 20 Hz – 20 kHz.

    Band ``k`` rises from edge ``k`` to its centre ``k + 1`` and falls to edge ``k + 2``.
    """
    lo, hi = hz_to_bark(np.array([BARK_F_MIN_HZ, BARK_F_MAX_HZ]))
    return bark_to_hz(np.linspace(lo, hi, BARK_BANDS + 2))


def bark_band_centres_hz() -> np.ndarray:
    """``(BARK_BANDS,)`` centre frequencies of the Bark bands, Hz."""
    return bark_band_edges_hz()[1:-1]


def bark_filterbank(n_fft: int, sample_rate: int) -> np.ndarray:
    """``(n_fft // 2 + 1, BARK_BANDS)`` triangular weights (peak 1, no area normalisation).

    Bands above the Nyquist frequency (e.g. at 22.05 kHz) are all-zero columns: they read
    ``log(LOG_EPS)`` for every signal and add nothing to a loss.
    """
    freqs = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    edges = bark_band_edges_hz()
    lo, centre, hi = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs[:, None] - lo) / (centre - lo)
    falling = (hi - freqs[:, None]) / (hi - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)


def bark_fft_size(sample_rate: int) -> int:
    """Power-of-two FFT size closest to 0.743 s (32768 at 44.1/48 kHz, 16384 at 22.05 kHz).

    Diff-MST uses 32768 samples at 44.1 kHz; scaling with the rate keeps the same frequency
    resolution (≈ 1.35 Hz) so the lowest Bark band (20–209 Hz) stays well resolved.
    """
    return 2 ** round(math.log2(0.743 * sample_rate))
