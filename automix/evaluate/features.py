"""Mix metrics for ``automix eval``: loudness, dynamics, stereo image, spectrum, balance.

NumPy in, Python floats out. Audio is float ``(channels, samples)`` with 1 or 2 channels; a
mono signal is treated as the same signal in both channels wherever a stereo feature is
needed (width 0, imbalance 0, Bark mid spectrum = the signal).

One definition per feature: crest factor, RMS, stereo width/imbalance, the Bark spectrum, the
AF loss and the MRSTFT losses are the torch functions of :mod:`automix.measure`, run
here without gradients; integrated loudness and true peak come from
:mod:`automix.console.loudness`. Only the loudness range (EBU Tech 3342) and the gain/pan
estimation are defined in this module.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import scipy.signal
import torch

from automix.console import loudness
from automix.console.loudness import integrated_lufs, true_peak_dbtp
from automix.errors import AutomixError
from automix.measure.distances import MRSTFT_FFT_SIZES, AudioFeatureLoss, MRSTFTLoss, SumDiffSTFTLoss
from automix.measure.features import BarkSpectrum, crest_factor_db, rms, stereo_imbalance, stereo_width

_LN_TO_DB = 20.0 / math.log(10.0)

# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------


def _check_audio(audio: np.ndarray, what: str = "audio") -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] not in (1, 2) or audio.shape[1] == 0:
        raise AutomixError(f"{what} must be (1 or 2 channels, samples), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise AutomixError(f"{what} contains NaN or infinite samples")
    return audio


def _stereo_tensor(audio: np.ndarray) -> torch.Tensor:
    """``(1|2, N)`` NumPy → ``(1, 2, N)`` float32 tensor (mono duplicated)."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    if x.shape[0] == 1:
        x = x.expand(2, -1)
    return x[None].contiguous()


@lru_cache(maxsize=8)
def _bark(sample_rate: int) -> BarkSpectrum:
    return BarkSpectrum(sample_rate)


@lru_cache(maxsize=8)
def _af_loss(sample_rate: int) -> AudioFeatureLoss:
    return AudioFeatureLoss(sample_rate)


# --------------------------------------------------------------------------------------
# Loudness range (EBU Tech 3342)
# --------------------------------------------------------------------------------------

SHORT_TERM_S = 3.0
_HOPS_PER_SECOND = 10  # short-term loudness every 100 ms, as Tech 3342 asks (≥ 10 Hz)
_LRA_ABSOLUTE_GATE_LUFS = -70.0
_LRA_RELATIVE_GATE_LU = -20.0
_LRA_PERCENTILES = (10.0, 95.0)
_LOUDNESS_OFFSET_DB = -0.691
_CHUNK_SAMPLES = 1 << 20


def _k_weighted_hop_energy(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """K-weighted channel-summed energy of consecutive 100 ms hops.

    Hop ``j`` spans samples ``[j·fs // 10, (j+1)·fs // 10)``; a trailing partial hop is dropped.
    Channel weights are 1 (L, R / mono), as in BS.1770. Filtered in chunks with carried state.

    Returns:
        ``(energy, samples)`` per hop, float64.
    """
    # The console's K-weighting: one definition for integrated loudness and loudness range.
    sos = loudness.k_weighting_sos(sample_rate)
    channels, n = audio.shape
    zi = np.zeros((sos.shape[0], channels, 2))
    power = np.empty(n, dtype=np.float64)
    for start in range(0, n, _CHUNK_SAMPLES):
        chunk = np.asarray(audio[:, start:start + _CHUNK_SAMPLES], dtype=np.float64)
        filtered, zi = scipy.signal.sosfilt(sos, chunk, axis=-1, zi=zi)
        power[start:start + chunk.shape[1]] = np.square(filtered).sum(axis=0)
    hops = n * _HOPS_PER_SECOND // sample_rate
    bounds = np.arange(hops + 1) * sample_rate // _HOPS_PER_SECOND
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    return np.diff(cumulative[bounds]), np.diff(bounds).astype(np.float64)


def short_term_lufs(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """EBU R128 short-term loudness (3 s window, K-weighted) every 100 ms, in LUFS.

    Block ``j`` covers hops ``j … j+29``. A signal shorter than 3 s has no complete block and
    gives an empty array. Silence reads −inf.
    """
    audio = _check_audio(audio)
    energy, samples = _k_weighted_hop_energy(audio, sample_rate)
    hops = int(SHORT_TERM_S * _HOPS_PER_SECOND)
    if energy.size < hops:
        return np.zeros(0)
    window_energy = np.convolve(energy, np.ones(hops), mode="valid")
    window_samples = np.convolve(samples, np.ones(hops), mode="valid")
    with np.errstate(divide="ignore"):
        return _LOUDNESS_OFFSET_DB + 10.0 * np.log10(window_energy / window_samples)


def loudness_range_lu(audio: np.ndarray, sample_rate: int) -> float:
    """Loudness range (LRA, EBU Tech 3342) in LU.

    Short-term loudness every 100 ms (:func:`short_term_lufs`); blocks below −70 LUFS are
    dropped; then blocks more than 20 LU below the power mean of the remaining blocks; LRA is
    the 95th minus the 10th percentile (linear interpolation) of what is left. Returns 0.0
    when fewer than two blocks survive (silence, or audio shorter than 3 s): no range is
    measurable.
    """
    blocks = short_term_lufs(audio, sample_rate)
    blocks = blocks[blocks > _LRA_ABSOLUTE_GATE_LUFS]
    if blocks.size < 2:
        return 0.0
    power_mean_lufs = 10.0 * math.log10(np.mean(np.power(10.0, blocks / 10.0)))
    blocks = blocks[blocks > power_mean_lufs + _LRA_RELATIVE_GATE_LU]
    low, high = np.percentile(blocks, _LRA_PERCENTILES)
    return float(high - low)


# --------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------


def bark_spectrum_db(audio: np.ndarray, sample_rate: int) -> list[float]:
    """Mid-channel Bark spectrum in dB (24 values, low to high; see ``BarkSpectrum``).

    A full-scale sine at a band's centre reads ≈ 0 dB in that band. Bands above the Nyquist
    frequency read −160 dB (the log floor).
    """
    audio = _check_audio(audio)
    with torch.no_grad():
        spectrum = _bark(sample_rate)(_stereo_tensor(audio))[0, 0]
    return [float(v) * _LN_TO_DB for v in spectrum]


def mix_report(audio: np.ndarray, sample_rate: int) -> dict[str, float | list[float]]:
    """Loudness, dynamics, stereo image and spectral balance of one mix.

    Args:
        audio: ``(1 or 2, N)`` float.
        sample_rate: Hz.

    Returns:
        ``integrated_lufs`` (BS.1770-4, mono measured as one channel), ``loudness_range_lu``
        (EBU Tech 3342), ``true_peak_dbtp``, ``rms_dbfs`` (power mean of the channels' RMS),
        ``crest_factor_db`` (sample peak over RMS of all channels together),
        ``stereo_width`` (side/mid energy ratio, 0 = mono), ``stereo_imbalance`` (−1 left
        … +1 right), ``bark_band_db`` (24 mid-channel Bark-band levels, dB).
    """
    audio = _check_audio(audio)
    x = _stereo_tensor(audio)
    with torch.no_grad():
        channel_rms = rms(x)[0]
        all_channels = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).reshape(1, -1)
        report: dict[str, float | list[float]] = {
            "integrated_lufs": float(integrated_lufs(audio, sample_rate)),
            "loudness_range_lu": loudness_range_lu(audio, sample_rate),
            "true_peak_dbtp": float(true_peak_dbtp(audio, sample_rate)),
            "rms_dbfs": 10.0 * math.log10(float(channel_rms.square().mean())),
            "crest_factor_db": float(crest_factor_db(all_channels)[0]),
            "stereo_width": float(stereo_width(x)[0]),
            "stereo_imbalance": float(stereo_imbalance(x)[0]),
        }
    report["bark_band_db"] = bark_spectrum_db(audio, sample_rate)
    return report


def compare_to_reference(mix: np.ndarray, ref: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Diff-MST AF loss of ``mix`` against a reference mix (lengths may differ).

    Returns:
        ``af_loss`` and the five weighted terms ``af_rms``, ``af_crest_factor``,
        ``af_stereo_width``, ``af_stereo_imbalance``, ``af_bark_spectrum`` (they sum to
        ``af_loss``).
    """
    mix, ref = _check_audio(mix, "mix"), _check_audio(ref, "reference")
    with torch.no_grad():
        terms = _af_loss(sample_rate).terms(_stereo_tensor(mix), _stereo_tensor(ref))
    result = {f"af_{name}": float(value) for name, value in terms.items()}
    return {"af_loss": sum(result.values()), **result}


TARGET_SEGMENT_S = 30.0
"""Audio longer than this is compared with a target segment by segment (bounded memory)."""


def compare_to_target(
    mix: np.ndarray, target: np.ndarray, sample_rate: int, segment_s: float = TARGET_SEGMENT_S
) -> dict[str, float]:
    """Sum/difference MRSTFT and plain MRSTFT of ``mix`` against a target mix of the same stems.

    If the lengths differ (e.g. a reverb tail), the common beginning (the shorter length) is
    compared. Audio longer than ``segment_s`` is cut into consecutive segments of that length
    and the result is the duration-weighted mean of the per-segment losses (this changes only
    the spectral-convergence part, a norm ratio, slightly). Measured for a 3-minute stereo song
    at 44.1 kHz: in one piece +0.8 GB peak memory, in 30 s segments +0.4 GB; 15–25 s of CPU
    either way (auraloss, three resolutions, sum/difference and plain).

    Returns:
        ``sum_diff_mrstft`` and ``mrstft`` (auraloss values; lower is better, 0 = identical).
    """
    mix, target = _check_audio(mix, "mix"), _check_audio(target, "target")
    n = min(mix.shape[1], target.shape[1])
    shortest = max(MRSTFT_FFT_SIZES) // 2 + 1  # the largest STFT pads by half its size on each side
    if n < shortest:
        raise AutomixError(f"the mix and the target overlap for only {n} samples; comparing them needs at least "
                           f"{shortest} ({1000.0 * shortest / sample_rate:.0f} ms)")
    segment = max(1, int(segment_s * sample_rate))
    sum_diff, plain = SumDiffSTFTLoss(), MRSTFTLoss()
    totals = {"sum_diff_mrstft": 0.0, "mrstft": 0.0}
    starts = list(range(0, n, segment))
    if len(starts) > 1 and n - starts[-1] < segment // 2:
        starts.pop()  # fold a short remainder into the previous segment (STFTs need some length)
    bounds = [*starts, n]
    with torch.no_grad():
        for start, stop in itertools.pairwise(bounds):
            x, y = _stereo_tensor(mix[:, start:stop]), _stereo_tensor(target[:, start:stop])
            weight = (stop - start) / n
            totals["sum_diff_mrstft"] += weight * float(sum_diff(x, y))
            totals["mrstft"] += weight * float(plain(x, y))
    return totals


# --------------------------------------------------------------------------------------
# Per-stem gain and pan in a mix (least squares)
# --------------------------------------------------------------------------------------

GAIN_FLOOR_DB = -120.0
"""Reported gain of a stem that does not appear in the mix at all (its pan is reported 0)."""


def _normal_equations(columns: list[np.ndarray], target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``AᵀA`` and ``Aᵀy`` for ``A = [columns]``, accumulated in chunks (float64)."""
    k = len(columns)
    gram, rhs = np.zeros((k, k)), np.zeros(k)
    for start in range(0, target.shape[0], _CHUNK_SAMPLES):
        a = np.stack([c[start:start + _CHUNK_SAMPLES] for c in columns], axis=1).astype(np.float64)
        gram += a.T @ a
        rhs += a.T @ target[start:start + _CHUNK_SAMPLES].astype(np.float64)
    return gram, rhs


def _fit(stems: Sequence[np.ndarray], mix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients ``(left, right)`` per stem, each ``(K,)``."""
    n = mix.shape[1]
    fitted = []
    for channel in (0, 1):
        columns = []
        for stem in stems:
            signal = stem[min(channel, stem.shape[0] - 1), :n]
            columns.append(np.pad(signal, (0, n - signal.shape[0])))
        gram, rhs = _normal_equations(columns, mix[channel])
        # lstsq gives the minimum-norm solution when stems are silent or identical.
        fitted.append(np.linalg.lstsq(gram, rhs, rcond=None)[0])
    return fitted[0], fitted[1]


def _mono_gain_pan(left: float, right: float) -> tuple[float, float]:
    """Invert constant-power panning: L = g cos θ, R = g sin θ, θ = (pan + 1)π/4."""
    gain = math.hypot(left, right)
    theta = math.atan2(max(right, 0.0), max(left, 0.0))
    return gain, 4.0 * theta / math.pi - 1.0


def _stereo_gain_pan(left: float, right: float) -> tuple[float, float]:
    """Invert the stereo balance law gL = min(1, √2 cos θ), gR = min(1, √2 sin θ).

    The louder side carries the fader gain; the quieter side's ratio gives θ.
    """
    left, right = max(left, 0.0), max(right, 0.0)
    gain = max(left, right)
    if gain == 0.0:
        return 0.0, 0.0
    if left >= right:  # pan ≤ 0: gR = √2 sin θ
        theta = math.asin(min(1.0, right / (gain * math.sqrt(2.0))))
    else:  # pan > 0: gL = √2 cos θ
        theta = math.acos(min(1.0, left / (gain * math.sqrt(2.0))))
    return gain, 4.0 * theta / math.pi - 1.0


def estimate_gains_pans(stems: Sequence[np.ndarray], mix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Estimate each stem's fader gain and pan in a stereo mix by least squares.

    Each mix channel is fitted separately as a linear combination of the stems (a mono stem
    is one column for both channels; a stereo stem's left channel explains the mix's left,
    its right channel the mix's right). The two coefficients ``(L, R)`` of a stem are then
    inverted through the console's pan law:

    * mono stem (constant power, θ = (pan+1)π/4, L = cos θ, R = sin θ):
      ``gain_db = 20·log10(√(L² + R²))``, ``pan = 4/π·atan2(R, L) − 1``;
    * stereo stem (width 1, balance gL = min(1, √2 cos θ), gR = min(1, √2 sin θ), unity at
      centre): ``gain = max(L, R)``, θ from the quieter side's ratio.

    Processing (EQ, compression, reverb, width ≠ 1) is not modelled: the estimate is then the
    best linear fit. Negative coefficients (polarity) are clipped to 0 for the pan. A stem
    absent from the mix gets ``GAIN_FLOOR_DB`` and pan 0. Stems are zero-padded or cut to the
    mix length.

    Args:
        stems: ``K`` arrays ``(1 or 2, samples)``.
        mix: ``(2, N)``.

    Returns:
        ``(gains_db, pans)``, each ``(K,)`` float64.
    """
    mix = _check_audio(mix, "mix")
    if mix.shape[0] != 2:
        raise AutomixError("gain/pan estimation needs a stereo mix")
    if not stems:
        raise AutomixError("no stems to estimate gains for")
    stems = [_check_audio(s, f"stem {i}") for i, s in enumerate(stems)]
    left, right = _fit(stems, mix)
    gains_db, pans = np.empty(len(stems)), np.empty(len(stems))
    for i, stem in enumerate(stems):
        invert = _mono_gain_pan if stem.shape[0] == 1 else _stereo_gain_pan
        gain, pan = invert(float(left[i]), float(right[i]))
        if gain <= 10.0 ** (GAIN_FLOOR_DB / 20.0):
            gains_db[i], pans[i] = GAIN_FLOOR_DB, 0.0
        else:
            gains_db[i], pans[i] = 20.0 * math.log10(gain), min(1.0, max(-1.0, pan))
    return gains_db, pans


def balance_error_db(est_gains_db: np.ndarray, true_gains_db: np.ndarray) -> np.ndarray:
    """Per-track loudness-balance error in dB, invariant to an overall level offset.

    ``e = est − true``; the offset removed is ``median(e)`` (robust: one badly estimated or
    muted track does not shift everyone else's error, which a least-squares mean offset
    would). Returns ``|e − median(e)|`` per track, ``(K,)``.
    """
    est = np.asarray(est_gains_db, dtype=np.float64)
    true = np.asarray(true_gains_db, dtype=np.float64)
    if est.shape != true.shape or est.ndim != 1 or est.size == 0:
        raise ValueError(f"gain arrays must be equal non-empty 1-D, got {est.shape} and {true.shape}")
    if not (np.all(np.isfinite(est)) and np.all(np.isfinite(true))):
        raise ValueError("gains must be finite (floor silent stems, e.g. at GAIN_FLOOR_DB)")
    error = est - true
    return np.abs(error - np.median(error))


__all__ = [
    "GAIN_FLOOR_DB",
    "balance_error_db",
    "bark_spectrum_db",
    "compare_to_reference",
    "compare_to_target",
    "estimate_gains_pans",
    "loudness_range_lu",
    "mix_report",
    "short_term_lufs",
]
