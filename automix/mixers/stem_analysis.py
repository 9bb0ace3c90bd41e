"""One pass over a stem, block by block from memory or disk, measuring every :class:`StemFeatures` field.

Speed and memory: a stem is read once, block by block (:func:`analyse_reader`), so the same
code analyses an array in memory or a file streamed from disk, with the same result. One
compiled loop measures every level feature (K-weighting, 10/50 ms frame energies, 100 ms
loudness hops, peak, stereo products), accumulating in float64 straight from the float32
audio; the spectrum windows are copied out of the same blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np

from automix.console.loudness import k_weight_step, k_weighting_coefficients, lufs_from_hops
from automix.mixers.descriptors import (
    FRAME_S,
    LOW_FREQ_HZ,
    StemFeatures,
    active_rms_db_from_power,
    find_resonance,
    spectra_from_frames,
    spectrum_layout,
    transient_db_from_power,
)

Reader = Callable[[int, int], np.ndarray]
"""``read(start, stop)`` → float32 ``(channels, stop - start)``: a stem's samples, from memory or disk."""

ANALYSIS_BLOCK_SAMPLES = 1 << 20
"""Samples per block of :func:`analyse_reader` (how much of a streamed stem is in memory)."""


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _measure_block(
    left: np.ndarray, right: np.ndarray, stereo: bool, start: int, sample_rate: int, k: tuple[float, ...],
    state: np.ndarray, n10: int, n50: int, power10: np.ndarray, power50: np.ndarray, hops: np.ndarray,
    stats: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Measure samples ``[start, start + n)`` of a stem (``left``/``right``: float32 ``(n,)``
    rows; ``right`` is ignored unless ``stereo``), adding into stem-wide float64 accumulators:

    * ``power10[f]``, ``power50[f]``: Σ x² over channels of 10/50 ms frame ``f`` (``f·n``…);
      a partial last frame is dropped (there is no slot for it) unless it is the only one;
    * ``hops[j]``: Σ K-weighted² over channels of 100 ms hop ``j`` (``[j·fs // 10, (j+1)·fs // 10)``),
      the last entry collecting what follows the last complete hop;
    * ``stats``: ``[peak, L·L, R·R, L·R, L, R]`` (peak is a maximum, the others sums);
    * ``state``: ``(channels, 6)`` K-weighting filter state, carried from block to block.

    The block is cut where any frame or hop ends, so each run needs only plain sums.
    """
    n = left.size
    sl = (state[0, 0], state[0, 1], state[0, 2], state[0, 3], state[0, 4], state[0, 5])
    sr = (state[-1, 0], state[-1, 1], state[-1, 2], state[-1, 3], state[-1, 4], state[-1, 5])
    peak, ll_total, rr_total, lr_total, l_total, r_total = stats[0], 0.0, 0.0, 0.0, 0.0, 0.0
    i = 0
    while i < n:
        t = start + i
        f10, f50 = t // n10, t // n50
        hop = (10 * (t + 1) - 1) // sample_rate  # the hop holding sample t
        stop = min(n, (f10 + 1) * n10 - start, (f50 + 1) * n50 - start, (hop + 1) * sample_rate // 10 - start)
        ll = rr = lr = kk = ls = rs = 0.0
        if stereo:
            for j in range(i, stop):
                a, b = np.float64(left[j]), np.float64(right[j])
                za, sl = k_weight_step(a, k, sl)
                zb, sr = k_weight_step(b, k, sr)
                ll += a * a
                rr += b * b
                lr += a * b
                ls += a
                rs += b
                kk += za * za + zb * zb
                peak = max(peak, abs(a), abs(b))
        else:
            for j in range(i, stop):
                a = np.float64(left[j])
                za, sl = k_weight_step(a, k, sl)
                ll += a * a
                ls += a
                kk += za * za
                peak = max(peak, abs(a))
        if f10 < power10.size:
            power10[f10] += ll + rr
        if f50 < power50.size:
            power50[f50] += ll + rr
        hops[min(hop, hops.size - 1)] += kk
        ll_total += ll
        rr_total += rr
        lr_total += lr
        l_total += ls
        r_total += rs
        i = stop
    stats[0] = peak
    stats[1] += ll_total
    stats[2] += rr_total
    stats[3] += lr_total
    stats[4] += l_total
    stats[5] += r_total
    for c in range(6):
        state[0, c] = sl[c]
        if stereo:
            state[1, c] = sr[c]


def _copy_windows(x: np.ndarray, start: int, starts: np.ndarray, frames: np.ndarray) -> None:
    """Copy the mono downmix of block ``x`` (samples ``start…``) into the spectrum windows
    (``frames[k]`` holds samples ``starts[k]…``) that overlap it."""
    nperseg = frames.shape[1]
    stop = start + x.shape[1]
    first = int(np.searchsorted(starts, start - nperseg, side="right"))
    for k in range(first, starts.size):
        s = int(starts[k])
        if s >= stop:
            break
        lo, hi = max(s, start), min(s + nperseg, stop)
        out = frames[k, lo - s : hi - s]
        if x.shape[0] == 1:
            out[:] = x[0, lo - start : hi - start]
        else:  # the float32 mean of the channels, as ndarray.mean(axis=0)
            np.add(x[0, lo - start : hi - start], x[1, lo - start : hi - start], out=out)
            out *= np.float32(0.5)


def analyse_reader(read: Reader, channels: int, samples: int, sample_rate: int) -> StemFeatures:
    """Measure one stem given as a block reader (see :data:`Reader`), reading each sample once.
    Same result for a file on disk and the same samples in memory."""
    if channels not in (1, 2):
        raise ValueError(f"a stem has 1 or 2 channels, got {channels}")
    n10, n50 = max(1, round(0.01 * sample_rate)), max(1, round(FRAME_S * sample_rate))
    power10 = np.zeros(max(1, samples // n10))  # a stem shorter than a frame: one zero-padded frame
    power50 = np.zeros(max(1, samples // n50))
    hops = np.zeros((10 * (samples + 1) - 1) // sample_rate + 1)  # complete 100 ms hops, then the rest
    stats = np.zeros(6)  # peak, L·L, R·R, L·R, L, R
    state = np.zeros((channels, 6))
    k = k_weighting_coefficients(sample_rate)
    nperseg, starts = spectrum_layout(samples, sample_rate)
    frames = np.zeros((starts.size, nperseg), dtype=np.float32)
    for start in range(0, samples, ANALYSIS_BLOCK_SAMPLES):
        x = np.asarray(read(start, min(start + ANALYSIS_BLOCK_SAMPLES, samples)), dtype=np.float32)
        rows = [np.ascontiguousarray(row) for row in x]  # views for stems in memory
        _measure_block(rows[0], rows[-1], channels == 2, start, sample_rate, k, state, n10, n50,
                       power10, power50, hops, stats)
        _copy_windows(x, start, starts, frames)
    power10 /= channels * n10
    power50 /= channels * n50

    peak = float(stats[0])
    peak_db = 20.0 * math.log10(peak) if peak > 0 else -200.0
    rms_db = active_rms_db_from_power(power50)

    freqs, psd, median_psd = spectra_from_frames(frames, sample_rate)
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

    # The DC offset's power is the mean of each channel squared; the total power Σx²/n.
    sums, squares = stats[4:4 + channels], stats[1:1 + channels]
    total_power = float(squares.sum())
    dc_share = min(1.0, float(np.square(sums).sum()) / (samples * total_power)) if total_power > 0 else 0.0

    correlation = 1.0
    if channels == 2:
        denom = math.sqrt(float(stats[1]) * float(stats[2]))
        correlation = float(stats[3]) / denom if denom > 0 else 0.0

    return StemFeatures(
        lufs=lufs_from_hops(hops[:-1], samples, sample_rate, float(hops[-1])),
        peak_dbfs=peak_db,
        active_rms_dbfs=rms_db,
        crest_db=peak_db - rms_db,
        transient_db=transient_db_from_power(power10),
        centroid_hz=centroid,
        low_ratio=low_ratio,
        low_edge_hz=low_edge,
        stereo_correlation=correlation,
        resonance_hz=resonance_hz,
        resonance_db=resonance_db,
        dc_share=dc_share,
    )


def analyse_stem(audio: np.ndarray, sample_rate: int) -> StemFeatures:
    """Measure one stem, float32 ``(channels, samples)``."""
    audio = np.asarray(audio, dtype=np.float32)
    return analyse_reader(lambda a, b: audio[:, a:b], audio.shape[0], audio.shape[1], sample_rate)
