"""Demucs-like direct transformation: the end-to-end baseline of the DMC paper.

Steinmetz et al. (2021) compare their console with a network that maps the stems straight to
the mix: Demucs (Défossez et al. 2019) without its LSTM, with a fixed number of inputs. This is
that idea at CPU size. The stems enter as channels (:func:`~automix.models.stem_channels.stems_as_channels`:
two per stem, at most ``max_tracks``, zero-filled); an encoder of ``depth`` blocks (a strided
convolution, kernel ``kernel_size`` and stride ``stride``, ReLU, then a 1×1 convolution to twice
the width and a GLU) and a mirrored decoder (1×1 + GLU, a transposed convolution back up, ReLU
except at the output), with each encoder block's output added to the decoder's input at the same
depth (U-Net skips). The input is padded to a length the strides divide and the output cropped.

Like the Wave-U-Net it weights stems by their position and may colour the audio; it is a
baseline for the evaluation tables, not a mixer to prefer.

Shapes: ``stems (B, T, 2, N)`` → ``(B, 2, N)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional

from automix.models.chunked import process_in_chunks
from automix.models.stem_channels import stems_as_channels


@dataclass
class DemucsLiteConfig:
    """Sizes of a :class:`DemucsLite` (stored in the checkpoint JSON)."""

    sample_rate_hz: int = 22050
    max_tracks: int = 16
    depth: int = 5
    channels: int = 16
    growth: int = 2
    kernel_size: int = 8
    stride: int = 4


class DemucsLite(nn.Module):
    """Stems → stereo mix (see the module docstring)."""

    kind = "demucs-lite"
    outputs_audio = True
    """An end-to-end model: ``forward`` returns the mix, not console settings."""

    def __init__(self, config: DemucsLiteConfig):
        super().__init__()
        self.config = c = config
        widths = [2 * c.max_tracks] + [c.channels * c.growth ** i for i in range(c.depth)]
        self.encoder = nn.ModuleList(
            nn.ModuleList([nn.Conv1d(widths[i], widths[i + 1], c.kernel_size, c.stride),
                           nn.Conv1d(widths[i + 1], 2 * widths[i + 1], 1)])
            for i in range(c.depth))
        self.decoder = nn.ModuleList(
            nn.ModuleList([nn.Conv1d(widths[i + 1], 2 * widths[i + 1], 1),
                           nn.ConvTranspose1d(widths[i + 1], widths[i] if i else 2, c.kernel_size, c.stride)])
            for i in reversed(range(c.depth)))

    def valid_length(self, n: int) -> int:
        """The smallest input length ≥ ``n`` that every strided layer divides exactly."""
        c = self.config
        length = n
        for _ in range(c.depth):
            length = max(1, -(-(length - c.kernel_size) // c.stride) + 1)
        for _ in range(c.depth):
            length = (length - 1) * c.stride + c.kernel_size
        return max(length, n)

    def forward(self, stems: Tensor, is_stereo: Tensor | None = None, track_mask: Tensor | None = None,
                reference: Tensor | None = None) -> Tensor:
        """``stems (B, T, 2, N)``, ``is_stereo (B, T)``, ``track_mask (B, T)`` → mix ``(B, 2, N)``;
        ``reference`` is accepted for the training loop's common call and unused."""
        x = stems_as_channels(stems, is_stereo, track_mask, self.config.max_tracks)
        n = x.shape[-1]
        y = functional.pad(x, (0, self.valid_length(n) - n))
        skips = []
        for conv, gate in self.encoder:
            y = functional.glu(gate(functional.relu(conv(y))), dim=1)
            skips.append(y)
        for k, (gate, up) in enumerate(self.decoder):
            skip = skips.pop()
            y = y + skip[..., : y.shape[-1]]
            y = up(functional.glu(gate(y), dim=1))
            if k < len(self.decoder) - 1:
                y = functional.relu(y)
        return y[..., :n]

    def process(self, stems: Tensor, is_stereo: Tensor) -> Tensor:
        """A whole song ``stems (T, 2, N)``, ``is_stereo (T,)`` → mix ``(2, N)`` (cross-faded chunks)."""
        return process_in_chunks(self, stems, is_stereo, self.config.sample_rate_hz, self.config.stride ** self.config.depth)
