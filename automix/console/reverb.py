"""Deterministic reverb impulse response for the FX bus, shared by both render paths.

The IR is shaped noise, the classic "exponentially decaying noise" model of a diffuse tail:

* fixed-seed Gaussian noise (:data:`NOISE_SEED`, one independent sequence per output channel
  so left and right are decorrelated), split by complementary raised-cosine crossovers at
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

Channel routing: the stereo send bus is convolved channel by channel (left send with the left
IR, right with the right IR), which keeps the send's panning in the reverb image.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

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


def ir_length(decay_s_max: float, predelay_ms_max: float, sample_rate: int) -> int:
    """IR length in samples for the longest decay and pre-delay of a batch (capped)."""
    seconds = min(predelay_ms_max / 1000.0 + TAIL_FACTOR * decay_s_max, MAX_IR_S)
    return max(math.ceil(seconds * sample_rate), 1)


@lru_cache(maxsize=4)
def _band_noise(sample_rate: int) -> Tensor:
    """``(2, 3, MAX_IR_S · fs)`` float64 band-split noise (parameter independent, cached)."""
    n = math.ceil(MAX_IR_S * sample_rate)
    gen = torch.Generator().manual_seed(NOISE_SEED)
    noise = torch.randn(2, n, generator=gen, dtype=torch.float64)
    spectrum = torch.fft.rfft(noise)
    freqs = torch.fft.rfftfreq(n, d=1.0 / sample_rate).to(torch.float64)
    log_f = torch.log2(freqs.clamp_min(1.0))

    def lowpass_mask(edge_hz: float) -> Tensor:
        # Raised cosine from 1 to 0 over CROSSOVER_OCTAVES centred (in octaves) on edge_hz.
        t = ((log_f - math.log2(edge_hz)) / CROSSOVER_OCTAVES + 0.5).clamp(0.0, 1.0)
        return 0.5 * (1.0 + torch.cos(math.pi * t))

    below_lo, below_hi = lowpass_mask(CROSSOVER_HZ[0]), lowpass_mask(CROSSOVER_HZ[1])
    masks = torch.stack([below_lo, below_hi - below_lo, 1.0 - below_hi])  # sums to 1
    bands = torch.fft.irfft(spectrum.unsqueeze(1) * masks, n=n)
    return bands.contiguous()


def reverb_ir(fx_params: Tensor, sample_rate: int) -> Tensor:
    """Impulse responses for a batch of FX settings.

    Args:
        fx_params: ``(B, len(FX))`` physical FX parameters (any float dtype).
        sample_rate: Hz.

    Returns:
        ``(B, 2, L)`` float64 unit-energy (per channel) stereo IRs; differentiable with respect
        to ``reverb.decay_s``, ``reverb.predelay_ms`` and ``reverb.damping``.
    """
    p = fx_params.to(torch.float64)
    decay_s = p[:, FX.index("reverb.decay_s")].clamp_min(1e-3)
    predelay_s = p[:, FX.index("reverb.predelay_ms")].clamp_min(0.0) / 1000.0
    damping = p[:, FX.index("reverb.damping")]
    length = ir_length(float(decay_s.detach().max()), float(predelay_s.detach().max()) * 1000.0, sample_rate)
    bands = _band_noise(sample_rate)[:, :, :length]  # (2, 3, L)
    t = torch.arange(length, dtype=torch.float64) / sample_rate
    since_onset = torch.relu(t - predelay_s[:, None])  # (B, L)
    onset = 1.0 - torch.exp(-since_onset * (1000.0 / ONSET_MS))
    shortening = torch.tensor(DAMPING_SHORTENING, dtype=torch.float64)
    rt60 = decay_s[:, None] * (1.0 - damping[:, None] * shortening)  # (B, 3)
    rate = math.log(1000.0) / rt60  # amplitude falls by 10^3 (60 dB) after rt60
    envelopes = torch.exp(-since_onset[:, None, :] * rate[:, :, None]) * onset[:, None, :]  # (B, 3, L)
    ir = torch.einsum("cbl,kbl->kcl", bands, envelopes)  # (B, 2, L)
    energy = ir.pow(2).sum(dim=-1, keepdim=True)
    return ir / energy.clamp_min(1e-30).sqrt()
