"""Deterministic reverb impulse response for the FX bus, shared by both render paths.

The IR is shaped noise, the classic "exponentially decaying noise" model of a diffuse tail:

* fixed-seed Gaussian noise (:data:`NOISE_SEED`, one independent sequence per output channel
  so left and right are decorrelated; :func:`gaussian_noise` draws exactly what
  ``torch.randn`` draws from a generator seeded with it, so the IR has not changed since it was
  made with torch), split by complementary raised-cosine crossovers at
  :data:`CROSSOVER_HZ` into three bands (low / mid / high) that sum back to the noise;
* each band decays exponentially (−60 dB at its own RT60): the low band at ``decay_s``,
  the mid and high bands shortened by ``damping`` (:data:`DAMPING_SHORTENING`), so a damped
  room gets darker as it decays;
* the tail starts ``predelay_ms`` after the dry sound with a smooth onset
  ``1 − exp(−t / ONSET_MS)``, so the pre-delay has a gradient;
* each channel is normalised to unit energy, so ``reverb.return_db`` alone sets the wet
  level (the renderers multiply by ``send_gain(return_db)``; −60 dB is exactly off).

The length of the IR (:func:`ir_length`) covers the longest pre-delay plus
:data:`TAIL_FACTOR` × the longest decay of the batch, capped at :data:`MAX_IR_S`.

:func:`reverb_ir` takes NumPy or torch parameters (:mod:`automix.console.design`) and returns
the same kind: the renderer designs its IR without importing torch, the torch console gets
gradients; the noise bands are computed once per sample rate in NumPy for both.

Channel routing: the stereo send bus is convolved channel by channel (left send with the left
IR, right with the right IR), which keeps the send's panning in the reverb image.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft

from automix.console.design import namespace
from automix.console.schema import FX

NOISE_SEED = 20240611
CROSSOVER_HZ = (500.0, 4000.0)
CROSSOVER_OCTAVES = 1.0
"""Width of each crossover's raised-cosine transition, in octaves."""
DAMPING_SHORTENING = (0.0, 0.3, 0.7)
"""Per band (low, mid, high): RT60 = decay_s · (1 − damping · shortening)."""
ONSET_MS = 3.0
TAIL_FACTOR = 1.2
"""The IR runs to 1.2 × RT60 after the pre-delay (−72 dB), so truncation is inaudible."""
MAX_IR_S = 8.0
"""Cap on the IR length: the longest schema decay (6 s) × 1.2 plus 100 ms pre-delay is 7.3 s."""

_MT_N = 624  # Mersenne Twister state words


def ir_length(decay_s_max: float, predelay_ms_max: float, sample_rate: int) -> int:
    """IR length in samples for the longest decay and pre-delay of a batch (capped)."""
    seconds = min(predelay_ms_max / 1000.0 + TAIL_FACTOR * decay_s_max, MAX_IR_S)
    return max(math.ceil(seconds * sample_rate), 1)


def _mt19937(seed: int) -> np.random.MT19937:
    """A Mersenne Twister in the state of the reference ``init_genrand(seed)`` (torch's seeding)."""
    key = np.empty(_MT_N, dtype=np.uint32)
    key[0] = value = seed & 0xFFFFFFFF
    for i in range(1, _MT_N):
        value = (1812433253 * (value ^ (value >> 30)) + i) & 0xFFFFFFFF
        key[i] = value
    generator = np.random.MT19937()
    generator.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": _MT_N}}
    return generator


def _uniform53(generator: np.random.MT19937, count: int) -> np.ndarray:
    """``count`` doubles in [0, 1) from 53 bits of two consecutive 32-bit draws (high word first)."""
    raw = generator.random_raw(2 * count).astype(np.uint64)
    bits = ((raw[0::2] << np.uint64(32)) | raw[1::2]) & np.uint64((1 << 53) - 1)
    return bits.astype(np.float64) * 2.0**-53


def _box_muller_16(uniform: np.ndarray) -> np.ndarray:
    """Groups of 16 uniforms → 16 normals: pairs (j, j + 8) of each group by Box–Muller."""
    groups = uniform.reshape(-1, 16)
    radius = np.sqrt(-2.0 * np.log(1.0 - groups[:, :8]))
    theta = 2.0 * math.pi * groups[:, 8:]
    return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)], axis=1).ravel()


def gaussian_noise(seed: int, count: int) -> np.ndarray:
    """``count`` (≥ 16) standard normal float64 samples, the ones CPU ``torch.randn`` draws.

    torch fills a float64 tensor with 53-bit uniforms from an MT19937 seeded with
    ``manual_seed(seed)``, transforms each group of 16 by Box–Muller, and redraws 16 fresh
    uniforms for the last 16 values when ``count`` is not a multiple of 16. Reproducing that
    keeps the reverb IR the one the models were trained with, without importing torch; the
    tests compare the two to 1e-12.
    """
    generator = _mt19937(seed)
    out = np.empty(count)
    whole = count // 16 * 16
    out[:whole] = _box_muller_16(_uniform53(generator, count)[:whole])
    if whole != count:
        out[count - 16:] = _box_muller_16(_uniform53(generator, 16))
    return out


@lru_cache(maxsize=4)
def _band_noise(sample_rate: int) -> np.ndarray:
    """``(2, 3, MAX_IR_S · fs)`` float64 band-split noise (parameter independent, cached: never write to it)."""
    n = math.ceil(MAX_IR_S * sample_rate)
    noise = gaussian_noise(NOISE_SEED, 2 * n).reshape(2, n)
    spectrum = scipy.fft.rfft(noise)
    log_f = np.log2(np.maximum(scipy.fft.rfftfreq(n, d=1.0 / sample_rate), 1.0))

    def lowpass_mask(edge_hz: float) -> np.ndarray:
        # Raised cosine from 1 to 0 over CROSSOVER_OCTAVES centred (in octaves) on edge_hz.
        t = np.clip((log_f - math.log2(edge_hz)) / CROSSOVER_OCTAVES + 0.5, 0.0, 1.0)
        return 0.5 * (1.0 + np.cos(math.pi * t))

    below_lo, below_hi = lowpass_mask(CROSSOVER_HZ[0]), lowpass_mask(CROSSOVER_HZ[1])
    masks = np.stack([below_lo, below_hi - below_lo, 1.0 - below_hi])  # sums to 1
    return np.ascontiguousarray(scipy.fft.irfft(spectrum[:, None, :] * masks, n=n))


def reverb_ir(fx_params: Any, sample_rate: int) -> Any:
    """Impulse responses for a batch of FX settings.

    Args:
        fx_params: ``(B, len(FX))`` physical FX parameters (any float dtype), a NumPy array or
            a torch tensor.
        sample_rate: Hz.

    Returns:
        ``(B, 2, L)`` float64 unit-energy (per channel) stereo IRs, of the kind of ``fx_params``;
        for a tensor, differentiable with respect to ``reverb.decay_s``, ``reverb.predelay_ms``
        and ``reverb.damping``.
    """
    xp = namespace(fx_params)
    p = xp.asarray(fx_params)
    decay_s = xp.clip(p[:, FX.index("reverb.decay_s")], 1e-3, None)
    predelay_s = xp.clip(p[:, FX.index("reverb.predelay_ms")], 0.0, None) / 1000.0
    damping = p[:, FX.index("reverb.damping")]
    length = ir_length(float(xp.detach(decay_s).max()), float(xp.detach(predelay_s).max()) * 1000.0, sample_rate)
    bands = xp.from_numpy(_band_noise(sample_rate))[:, :, :length]  # (2, 3, L)
    t = xp.arange(length) / sample_rate
    since_onset = xp.relu(t - predelay_s[:, None])  # (B, L)
    onset = 1.0 - xp.exp(-since_onset * (1000.0 / ONSET_MS))
    shortening = xp.asarray(DAMPING_SHORTENING)
    rt60 = decay_s[:, None] * (1.0 - damping[:, None] * shortening)  # (B, 3)
    rate = math.log(1000.0) / rt60  # amplitude falls by 10^3 (60 dB) after rt60
    envelopes = xp.exp(-since_onset[:, None, :] * rate[:, :, None]) * onset[:, None, :]  # (B, 3, L)
    ir = xp.einsum("cbl,kbl->kcl", bands, envelopes)  # (B, 2, L)
    energy = xp.sum_last(ir**2)
    return ir / xp.sqrt(xp.clip(energy, 1e-30, None))
