"""Wave-U-Net for multitrack mixing: an end-to-end baseline (no console, the mix comes out).

After Martínez Ramírez, Stoller & Moffat, "A deep learning approach to intelligent drum mixing
with the Wave-U-Net" (JAES 2021), itself after Stoller et al.'s source-separation Wave-U-Net.
The stems enter as input channels (each stem two channels, left and right; at most
``max_tracks`` stems, missing ones zero-filled, in the order given), and the stereo mix
leaves. Down the U, each level convolves (kernel ``down_kernel``) and halves the rate by
decimation; up it, each level doubles the rate by linear interpolation, concatenates the
level's skip features and convolves (kernel ``up_kernel``). The last layer also sees the input
stems, so the mix can pass a stem through.

What it is and is not: the network weights channels by their *position*, so the track order
matters (it is not permutation-equivariant like the console models), and it may colour or
smear the audio, which a console never does. It is here as the literature's end-to-end
baseline, measured next to the console models, not as a mixer to prefer. Convolutions are
zero-padded ("same") instead of the original's valid convolutions with context cropping, and
:meth:`WaveUNet.process` runs long songs in overlapping chunks with a cross-fade
(:mod:`automix.models.chunked`).

Shapes: ``stems (B, T, 2, N)``, ``track_mask (B, T)`` → ``(B, 2, N)``; any ``N`` (padded
inside to a multiple of ``2 ** levels``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional

from automix.models.chunked import process_in_chunks
from automix.models.stem_channels import stems_as_channels


@dataclass
class WaveUNetConfig:
    """Sizes of a :class:`WaveUNet` (stored in the checkpoint JSON)."""

    sample_rate_hz: int = 22050
    max_tracks: int = 16
    levels: int = 6
    base_channels: int = 16
    growth: int = 16
    down_kernel: int = 15
    up_kernel: int = 5


class WaveUNet(nn.Module):
    """Stems → stereo mix (see the module docstring)."""

    kind = "wave-u-net"
    outputs_audio = True
    """An end-to-end model: ``forward`` returns the mix, not console settings."""

    def __init__(self, config: WaveUNetConfig):
        super().__init__()
        self.config = c = config
        widths = [c.base_channels + i * c.growth for i in range(c.levels + 1)]
        inputs = 2 * c.max_tracks
        self.down = nn.ModuleList(
            nn.Conv1d(inputs if i == 0 else widths[i - 1], widths[i], c.down_kernel, padding=c.down_kernel // 2)
            for i in range(c.levels))
        self.bottom = nn.Conv1d(widths[c.levels - 1], widths[c.levels], c.down_kernel, padding=c.down_kernel // 2)
        self.up = nn.ModuleList(
            nn.Conv1d(widths[i + 1] + widths[i], widths[i], c.up_kernel, padding=c.up_kernel // 2)
            for i in reversed(range(c.levels)))
        self.output = nn.Conv1d(widths[0] + inputs, 2, 1)

    def forward(self, stems: Tensor, is_stereo: Tensor | None = None, track_mask: Tensor | None = None,
                reference: Tensor | None = None) -> Tensor:
        """``stems (B, T, 2, N)`` (T ≤ ``max_tracks``), ``is_stereo (B, T)``, ``track_mask (B, T)``
        → mix ``(B, 2, N)`` (inputs: :func:`~automix.models.stem_channels.stems_as_channels`).
        ``reference`` is accepted for the training loop's common call and unused.
        """
        c = self.config
        x = stems_as_channels(stems, is_stereo, track_mask, c.max_tracks)
        n = x.shape[-1]
        block = 2 ** c.levels
        padded = -(-n // block) * block
        x = functional.pad(x, (0, padded - n))
        skips, y = [], x
        for conv in self.down:
            y = functional.leaky_relu(conv(y), 0.2)
            skips.append(y)
            y = y[..., ::2]  # decimation, as in the original
        y = functional.leaky_relu(self.bottom(y), 0.2)
        for conv, skip in zip(self.up, reversed(skips)):
            y = functional.interpolate(y, size=skip.shape[-1], mode="linear", align_corners=False)
            y = functional.leaky_relu(conv(torch.cat([y, skip], dim=1)), 0.2)
        return self.output(torch.cat([y, x], dim=1))[..., :n]

    def process(self, stems: Tensor, is_stereo: Tensor) -> Tensor:
        """A whole song ``stems (T, 2, N)``, ``is_stereo (T,)`` → mix ``(2, N)`` (cross-faded chunks)."""
        return process_in_chunks(self, stems, is_stereo, self.config.sample_rate_hz, 2 ** self.config.levels)
