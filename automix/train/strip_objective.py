"""Loss of the transformation network: L1 + multi-resolution STFT against the DSP strip.

The target is rendered in the batch by :func:`automix.train.strip_data.dsp_strip` on the whole
input (the EQ and compressor start from silence there), then cropped to the samples the
network outputs (the centre, see :mod:`automix.models.tcn`), so both see the same history.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from automix.measure.distances import MRSTFTLoss
from automix.models.tcn import TCN, normalised_strip_params
from automix.train.config import TrainConfig
from automix.train.strip_data import dsp_strip


def centre_crop(x: Tensor, samples: int) -> Tensor:
    """The centre ``samples`` of ``x (..., N)`` (the network's output alignment)."""
    side = (x.shape[-1] - samples) // 2
    return x[..., side: side + samples]


def strip_pair(model: TCN, batch: dict[str, Tensor], sample_rate: int) -> tuple[Tensor, Tensor]:
    """``(prediction, target)``, both ``(B, 1, output samples)``."""
    audio, params = batch["audio"], batch["strip_params"]
    with torch.no_grad():
        target = dsp_strip(audio, params.to(audio.dtype), sample_rate)
    pred = model(audio, normalised_strip_params(params).to(audio.dtype))
    return pred, centre_crop(target, pred.shape[-1])


class StripObjective(nn.Module):
    """``loss.l1`` · L1 + ``loss.mrstft`` · MRSTFT (``loss.fft_sizes``); ``forward`` → ``(total, terms)``."""

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        self.stft = MRSTFTLoss(fft_sizes=cfg.loss.fft_sizes) if cfg.loss.mrstft > 0 else None

    def forward(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        pred, target = strip_pair(getattr(model, "module", model), batch, self.cfg.data.sample_rate_hz)
        w = self.cfg.loss
        terms: dict[str, Tensor] = {}
        if w.l1 > 0:
            terms["l1"] = w.l1 * (pred - target).abs().mean()
        if self.stft is not None:
            terms["mrstft"] = w.mrstft * self.stft(pred, target)
        total = torch.stack(list(terms.values())).sum()
        return total, {k: float(v.detach()) for k, v in terms.items()}
