"""The console compressor, shared by both render paths.

Feed-forward design (Giannoulis, Massberg & Reiss, JAES 2012), per sample:

1. **Detector** — RMS: the channels' mean power ``p = mean_c x_c²`` (a stereo strip links
   its channels on the *mean*, so a centred stereo signal reads the same level as the mono
   one) smoothed by a one-pole with the fixed time constant :data:`DETECTOR_MS`;
   ``level_db = 10 log10(max(p, POWER_FLOOR))``.
2. **Static curve** — :func:`static_gain_db`: gain reduction in dB with a quadratic soft
   knee of width ``knee_db`` (0 = hard knee, still with finite gradients).
3. **Ballistics** — the *linear* gain ``f = 10^(gr/20)`` is smoothed by a one-pole whose
   coefficient is the attack one while the gain is falling (``f < g``) and the release one
   while it is rising. This is exactly the recursion of ``torchcomp.compressor_core``,
   which the differentiable path uses for its fast CPU kernel and custom backward.
4. **Make-up** gain in dB.

Every time constant goes through one function, :func:`time_coeff`: a one-pole step
response reaches ``1 − 1/e ≈ 63 %`` of a step after ``time_ms``.

The torch path (:func:`compress`) and the renderer's block version
(:class:`BlockCompressor`, numba kernels with state carried across blocks) implement the same
arithmetic; ``tests/test_console_agreement.py`` and the compressor tests check them against
each other.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba
import numpy as np

from automix.console.design import is_tensor
from automix.console.schema import ParamGroup, db_to_amplitude

if TYPE_CHECKING:  # torch is imported only by the differentiable path (:func:`compress`)
    from torch import Tensor

DETECTOR_MS = 5.0
"""RMS detector smoothing time constant (ms): short enough to follow drum hits, long enough
to average a 100 Hz cycle to a steady level."""

POWER_FLOOR = 1e-12
"""Detector power floor (−120 dBFS) so silence has a finite level and gradient."""

KNEE_FLOOR_DB = 1e-6
"""A zero knee is evaluated as this tiny width, so the curve stays differentiable."""

RECURSION_FASTMATH = {"contract"}
"""numba flags of the sample-serial kernels: fused multiply-adds halve the latency of each
recursion step (the cost of these loops). Only rounding changes (≈ 1e-16), and identically for any
block size or thread count."""

COMPRESSOR_PARAMS: tuple[str, ...] = ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_db")


def time_coeff(time_ms, sample_rate: float):
    """One-pole smoothing coefficient ``c`` for ``y += c (x − y)`` with time constant ``time_ms``.

    Works on floats, NumPy arrays and torch tensors. ``c = 1 − exp(−1 / (τ fs))``.
    """
    scale = -1000.0 / sample_rate
    if is_tensor(time_ms):
        return 1.0 - (scale / time_ms).exp()
    return 1.0 - np.exp(scale / np.asarray(time_ms, dtype=np.float64))


def static_gain_db(level_db, threshold_db, ratio, knee_db):
    """Gain reduction (dB, ≤ 0) of the static curve for a detector level (torch or NumPy, broadcasting).

    Below ``threshold − knee/2``: 0; above ``threshold + knee/2``: ``(1/ratio − 1)(level − threshold)``;
    in between the quadratic ``(1/ratio − 1)(level − threshold + knee/2)² / (2 knee)``.
    """
    if is_tensor(level_db):
        import torch

        knee, where = knee_db.clamp_min(KNEE_FLOOR_DB), torch.where
    else:
        knee, where = np.maximum(knee_db, KNEE_FLOOR_DB), np.where
    slope = 1.0 / ratio - 1.0
    over = level_db - threshold_db
    quadratic = slope * (over + knee / 2.0) ** 2 / (2.0 * knee)
    above = where(2.0 * over > knee, slope * over, quadratic)
    return where(2.0 * over < -knee, 0.0 * above, above)


def strip_settings(params: Tensor, group: ParamGroup) -> dict[str, Tensor]:
    """The six ``compressor.*`` columns of a ``TRACK`` or ``MASTER`` parameter tensor."""
    return {name: params[..., group.index(f"compressor.{name}")] for name in COMPRESSOR_PARAMS}


def compress(x: Tensor, power: Tensor, settings: dict[str, Tensor], sample_rate: float) -> Tensor:
    """Differentiable compressor for a batch of strips.

    Args:
        x: ``(R, C, N)`` audio of R strips (C channels each, all gained by the same gain).
        power: ``(R, N)`` instantaneous detector power (mean of the linked channels' x²).
        settings: :func:`strip_settings` values, each ``(R,)`` in physical units.
        sample_rate: Hz.

    Returns:
        ``(R, C, N)`` compressed audio including make-up gain.
    """
    import torch
    from torchcomp import compressor_core  # numba kernels: import only when used
    from torchlpc import sample_wise_lpc

    rows, n = power.shape
    dtype = power.dtype
    det_c = float(time_coeff(DETECTOR_MS, sample_rate))
    # One-pole power smoothing p[n] = c x²[n] + (1 − c) p[n−1], from silence.
    smoothed = sample_wise_lpc(power * det_c, power.new_full((rows, n, 1), det_c - 1.0))
    level_db = 10.0 * torch.log10(smoothed.clamp_min(POWER_FLOOR))
    s = {k: v.to(dtype).reshape(rows, 1) for k, v in settings.items()}
    gr_db = static_gain_db(level_db, s["threshold_db"], s["ratio"], s["knee_db"])
    target = db_to_amplitude(gr_db)
    attack = time_coeff(settings["attack_ms"].to(torch.float64), sample_rate).to(dtype)
    release = time_coeff(settings["release_ms"].to(torch.float64), sample_rate).to(dtype)
    gain = compressor_core(target, power.new_ones(rows), attack.reshape(rows), release.reshape(rows))
    makeup = db_to_amplitude(s["makeup_db"])
    return x * (gain * makeup).unsqueeze(1)


@numba.njit(nogil=True, cache=True, fastmath=RECURSION_FASTMATH)
def _detector_block(x, det_c, state, out_power):
    """Smoothed mean power of a ``(C, n)`` block; ``state[0]`` carries the detector."""
    channels, n = x.shape
    inv_channels = 1.0 / channels
    p = state[0]
    keep = 1.0 - det_c
    for i in range(n):
        power = 0.0
        for c in range(channels):
            power += x[c, i] * x[c, i]
        p = keep * p + det_c * (power * inv_channels)  # the form of the torch path's recursion
        out_power[i] = p
    state[0] = p


_DB_PER_LN_POWER = 10.0 / math.log(10.0)  # 10·log10(p) = _DB_PER_LN_POWER · ln(p)
_LN_PER_DB_AMPLITUDE = math.log(10.0) / 20.0  # 10^(g/20) = exp(_LN_PER_DB_AMPLITUDE · g)


@numba.njit(nogil=True, cache=True)
def _static_curve_block(level, threshold_db, ratio, knee_db, out, level_scale, out_scale):
    """:func:`static_gain_db` for one block as a scalar loop (NumPy's ``where`` chain costs 10 passes).

    ``level · level_scale`` is the detector level in dB, and ``out`` receives the gain reduction in
    dB times ``out_scale`` (``level`` and ``out`` may be the same array). The scales let the
    caller feed ``ln(power)`` and get ``ln(gain)`` without two more passes over the block.
    """
    slope = 1.0 / ratio - 1.0
    knee = max(knee_db, KNEE_FLOOR_DB)
    for i in range(level.shape[0]):
        over = level[i] * level_scale - threshold_db
        if 2.0 * over < -knee:
            gr_db = 0.0
        elif 2.0 * over > knee:
            gr_db = slope * over
        else:
            gr_db = slope * (over + knee / 2.0) ** 2 / (2.0 * knee)
        out[i] = gr_db * out_scale


@numba.njit(inline="always")
def _ballistics_step(g, t, attack_c, release_c, keep_attack, keep_release):
    """One step of the attack/release one-pole: ``g (1 − c) + c t``, ``c`` attack if ``t < g``.

    Both candidates are computed and one is selected, so neither a branch misprediction nor the
    choice of the coefficient sits on the sample-to-sample dependency (one multiply-add does).
    """
    attacked = g * keep_attack + attack_c * t
    released = g * keep_release + release_c * t
    return attacked if t < g else released


@numba.njit(nogil=True, cache=True, fastmath=RECURSION_FASTMATH)
def _ballistics_block(target, attack_c, release_c, state, out_gain):
    """Attack/release one-pole on the linear gain (torchcomp's recursion); ``state[1]`` carries it."""
    g = state[1]
    keep_attack, keep_release = 1.0 - attack_c, 1.0 - release_c
    for i in range(target.shape[0]):
        g = _ballistics_step(g, target[i], attack_c, release_c, keep_attack, keep_release)
        out_gain[i] = g
    state[1] = g


@numba.njit(nogil=True, cache=True, fastmath=RECURSION_FASTMATH)
def _ballistics_mix(target, attack_c, release_c, state, x, matrix, out):
    """Ballistics fused with applying the gain and a static ``(2, C)`` channel matrix.

    ``out[o] = Σ_c matrix[o, c] · g · x[c]`` with ``g`` the attack/release-smoothed ``target``
    (same recursion as :func:`_ballistics_block`); saves two passes over the block.
    """
    g = state[1]
    keep_attack, keep_release = 1.0 - attack_c, 1.0 - release_c
    m00, m10 = matrix[0, 0], matrix[1, 0]
    if matrix.shape[1] == 1:
        for i in range(target.shape[0]):
            t = target[i]
            g = _ballistics_step(g, t, attack_c, release_c, keep_attack, keep_release)
            a = g * x[0, i]
            out[0, i] = m00 * a
            out[1, i] = m10 * a
    else:
        m01, m11 = matrix[0, 1], matrix[1, 1]
        for i in range(target.shape[0]):
            t = target[i]
            g = _ballistics_step(g, t, attack_c, release_c, keep_attack, keep_release)
            a, b = g * x[0, i], g * x[1, i]
            out[0, i] = m00 * a + m01 * b
            out[1, i] = m10 * a + m11 * b
    state[1] = g


@numba.njit(nogil=True, cache=True)
def _mix(x, matrix, out):
    """``out = matrix @ x`` for a ``(C, n)`` block and a ``(2, C)`` matrix (no compression)."""
    mono = matrix.shape[1] == 1
    m00, m10 = matrix[0, 0], matrix[1, 0]
    m01 = 0.0 if mono else matrix[0, 1]
    m11 = 0.0 if mono else matrix[1, 1]
    x1 = x[0] if mono else x[1]
    for i in range(x.shape[1]):
        a, b = x[0, i], x1[i]
        out[0, i] = m00 * a + m01 * b
        out[1, i] = m10 * a + m11 * b


class BlockCompressor:
    """Stateful compressor for the block renderer (float64, state carried across blocks).

    Args:
        settings: the six ``compressor.*`` values in physical units (:data:`COMPRESSOR_PARAMS`).
        sample_rate: Hz.
    """

    def __init__(self, settings: dict[str, float], sample_rate: float) -> None:
        self.threshold_db = float(settings["threshold_db"])
        self.ratio = float(settings["ratio"])
        self.knee_db = float(settings["knee_db"])
        self.makeup = float(db_to_amplitude(float(settings["makeup_db"])))
        self.det_c = float(time_coeff(DETECTOR_MS, sample_rate))
        self.attack_c = float(time_coeff(float(settings["attack_ms"]), sample_rate))
        self.release_c = float(time_coeff(float(settings["release_ms"]), sample_rate))
        self.state = np.array([0.0, 1.0])  # silent detector, unity gain (as the torch path starts)

    @property
    def active(self) -> bool:
        """Ratio 1 never reduces gain: the block kernel can be skipped (make-up still applies)."""
        return self.ratio != 1.0

    def _target(self, x: np.ndarray) -> np.ndarray:
        """Static-curve gain ``(n,)`` before ballistics; advances the detector state.

        The recursions and the static curve run in numba (nogil); the logarithm and the
        exponential between them are vectorised NumPy, several times faster than scalar libm calls.
        """
        power = np.empty(x.shape[1])
        _detector_block(np.ascontiguousarray(x, dtype=np.float64), self.det_c, self.state, power)
        return self.target_from_power(np.maximum(power, POWER_FLOOR, out=power))

    def target_from_power(self, power: np.ndarray) -> np.ndarray:
        """Static-curve gain ``(n,)`` from the smoothed detector power (already ≥ ``POWER_FLOOR``).

        Overwrites and returns ``power``. For callers that run the detector themselves (the
        renderer fuses it into its EQ kernel, advancing ``state[0]``).
        """
        ln = np.log(power, out=power)
        _static_curve_block(ln, self.threshold_db, self.ratio, self.knee_db, ln, _DB_PER_LN_POWER,
                            _LN_PER_DB_AMPLITUDE)
        return np.exp(ln, out=ln)

    def gain(self, x: np.ndarray) -> np.ndarray:
        """Gain ``(n,)`` for a ``(C, n)`` float64 block, make-up excluded; advances the state."""
        target = self._target(x)
        gain = np.empty_like(target)
        _ballistics_block(target, self.attack_c, self.release_c, self.state, gain)
        return gain

    def apply(self, x: np.ndarray, matrix: np.ndarray, out: np.ndarray | None = None,
              power: np.ndarray | None = None) -> np.ndarray:
        """Compress a ``(C, n)`` float64 block and map it through ``matrix`` ``(2, C)`` → ``(2, n)``.

        ``matrix`` carries every static gain after the compressor (make-up, fader, pan); the
        caller includes ``self.makeup`` in it. ``out`` (``(2, n)`` float64) is filled and returned
        (default: a new array). ``power``: the block's smoothed detector power if the caller
        already ran the detector (see :meth:`target_from_power`; overwritten).
        """
        if out is None:
            out = np.empty((matrix.shape[0], x.shape[1]))
        if self.active:
            target = self._target(x) if power is None else self.target_from_power(power)
            _ballistics_mix(target, self.attack_c, self.release_c, self.state, x, matrix, out)
        else:
            _mix(x, matrix, out)
        return out


def detector_power(x: np.ndarray, sample_rate: float) -> np.ndarray:
    """The detector's smoothed power ``(n,)`` of a whole ``(C, n)`` signal from silence (≥ ``POWER_FLOOR``)."""
    power = np.empty(x.shape[1])
    _detector_block(np.ascontiguousarray(x, dtype=np.float64), float(time_coeff(DETECTOR_MS, sample_rate)),
                    np.array([0.0, 1.0]), power)
    return np.maximum(power, POWER_FLOOR, out=power)


def smoothed_gain(target: np.ndarray, attack_ms: float, release_ms: float, sample_rate: float) -> np.ndarray:
    """The ballistics applied to a static-curve gain ``(n,)`` (linear), starting at unity."""
    gain = np.empty_like(target)
    _ballistics_block(np.ascontiguousarray(target, dtype=np.float64), float(time_coeff(attack_ms, sample_rate)),
                      float(time_coeff(release_ms, sample_rate)), np.array([0.0, 1.0]), gain)
    return gain
