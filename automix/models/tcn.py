"""The transformation network: a TCN with FiLM that emulates the console's channel strip.

After Steinmetz et al. (ICASSP 2021, §2.1). The network maps a mono signal and the strip's
parameters to the signal the DSP strip would output. What it emulates is the part of the strip
that is neither linear nor a plain gain: the EQ (high-pass, shelves, four bells) and the
compressor, in the console's order. Trim, fader, pan, width and the post-fader send are gains
and a 2×2 matrix that the console applies exactly and differentiably, so they stay DSP; the
reverb is one shared bus in this console (not a per-strip processor as in the paper), fed by
those sends.

Architecture
    * The strip's :data:`STRIP_PARAMS`, normalised to [0, 1] by the schema, go through a
      3-layer MLP to a ``cond_dim``-vector.
    * ``n_blocks`` blocks of a dilated 1-D convolution (kernel ``kernel_size``, dilation
      ``dilation_growth ** (l mod dilation_cycle)``, no padding: the output is cropped),
      batch norm without affine parameters, then FiLM (per block a linear projection of the
      conditioning vector to a scale and shift per channel), then PReLU. A 1×1 convolution
      carries the block input around it, scaled by a learnable gain (residual).
    * Every block's output, cropped to the final length, is averaged (skip connections) and a
      1×1 convolution gives the output.

Shapes: ``x (B, 1, N)``, ``params (B, len(STRIP_PARAMS))`` normalised → ``(B, 1, N − receptive_field + 1)``,
the output sample ``i`` aligned with input sample ``i + (receptive_field − 1) / 2``
(non-causal, centred). :meth:`TCN.process` pads and chunks a whole signal so its output has the
input's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from automix.console.schema import TRACK

STRIP_PARAMS: tuple[str, ...] = tuple(n for n in TRACK.names if n.startswith(("eq.", "compressor.")))
"""The track parameters the network is conditioned on (EQ then compressor, schema order)."""

PROCESS_CHUNK = 1 << 17
"""Output samples per forward pass in :meth:`TCN.process` (bounds memory on long songs)."""


@dataclass
class TCNConfig:
    """Sizes of a :class:`TCN` (stored in the checkpoint JSON)."""

    sample_rate_hz: int = 22050
    n_blocks: int = 10
    channels: int = 16
    kernel_size: int = 15
    dilation_growth: int = 2
    dilation_cycle: int = 10
    cond_dim: int = 128


def receptive_field(config: TCNConfig) -> int:
    """Input samples that one output sample of a :class:`TCN` with ``config`` depends on."""
    return 1 + sum((config.kernel_size - 1) * config.dilation_growth ** (i % config.dilation_cycle)
                   for i in range(config.n_blocks))


def normalised_strip_params(track_params: Tensor) -> Tensor:
    """Physical track parameters ``(..., len(TRACK))`` → the network's input ``(..., len(STRIP_PARAMS))``."""
    cols = [TRACK.spec(name).to_normalised(track_params[..., TRACK.index(name)]) for name in STRIP_PARAMS]
    return torch.stack(cols, dim=-1)


class FiLMBlock(nn.Module):
    """Dilated conv → batch norm (no affine) → FiLM → PReLU, plus a gained 1×1 residual."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, cond_dim: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.norm = nn.BatchNorm1d(out_channels, affine=False)
        self.film = nn.Linear(cond_dim, 2 * out_channels)
        self.act = nn.PReLU(out_channels)
        self.residual = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.residual_gain = nn.Parameter(torch.ones(1))
        self.crop = (kernel_size - 1) * dilation

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """``x (B, C_in, N)``, ``cond (B, cond_dim)`` → ``(B, C_out, N − crop)``."""
        y = self.norm(self.conv(x))
        scale, shift = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        y = self.act(y * scale + shift)
        side = self.crop // 2
        return y + self.residual_gain * self.residual(x[..., side: x.shape[-1] - side])


class TCN(nn.Module):
    """Mono signal + normalised strip parameters → the strip's output (see module docstring)."""

    kind = "tcn"

    def __init__(self, config: TCNConfig):
        super().__init__()
        self.config = config
        c = config
        self.condition = nn.Sequential(
            nn.Linear(len(STRIP_PARAMS), c.cond_dim), nn.ReLU(),
            nn.Linear(c.cond_dim, c.cond_dim), nn.ReLU(),
            nn.Linear(c.cond_dim, c.cond_dim), nn.ReLU(),
        )
        self.blocks = nn.ModuleList(
            FiLMBlock(1 if i == 0 else c.channels, c.channels, c.kernel_size,
                      c.dilation_growth ** (i % c.dilation_cycle), c.cond_dim)
            for i in range(c.n_blocks))
        self.output = nn.Conv1d(c.channels, 1, 1)

    @property
    def receptive_field(self) -> int:
        """Input samples that one output sample depends on."""
        return receptive_field(self.config)

    def forward(self, x: Tensor, params: Tensor) -> Tensor:
        """``x (B, 1, N)``, ``params (B, len(STRIP_PARAMS))`` in [0, 1] → ``(B, 1, N − receptive_field + 1)``."""
        if x.ndim != 3 or x.shape[1] != 1:
            raise ValueError(f"x must be (batch, 1, samples), got {tuple(x.shape)}")
        if params.shape != (x.shape[0], len(STRIP_PARAMS)):
            raise ValueError(f"params must be ({x.shape[0]}, {len(STRIP_PARAMS)}), got {tuple(params.shape)}")
        n_out = x.shape[-1] - self.receptive_field + 1
        if n_out < 1:
            raise ValueError(f"x needs at least {self.receptive_field} samples, got {x.shape[-1]}")
        cond = self.condition(params)
        skips = torch.zeros(x.shape[0], self.config.channels, n_out, dtype=x.dtype, device=x.device)
        for block in self.blocks:
            x = block(x, cond)
            side = (x.shape[-1] - n_out) // 2
            skips = skips + x[..., side: side + n_out]
        return self.output(skips / len(self.blocks))

    def process(self, x: Tensor, params: Tensor) -> Tensor:
        """A whole signal ``x (B, 1, N)`` → ``(B, 1, N)``, zero-padded at both ends, in chunks."""
        half = (self.receptive_field - 1) // 2
        padded = nn.functional.pad(x, (half, half))
        n = x.shape[-1]
        outs = [self(padded[..., start: min(start + PROCESS_CHUNK, n) + 2 * half], params)
                for start in range(0, n, PROCESS_CHUNK)]
        return torch.cat(outs, dim=-1)
