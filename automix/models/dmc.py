"""Differentiable Mixing Console controller (after Steinmetz et al., ICASSP 2021).

Each track's embedding is concatenated with the mean embedding over the active tracks (the
"context") and an MLP maps the pair to that track's channel-strip parameters. The reverb and
master bus are predicted from the context alone. Because the only interaction between tracks
is a masked mean, the model is permutation-equivariant and accepts any number of tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from automix.console.schema import FX, MASTER, TRACK
from automix.models.base import ControllerOutput, head
from automix.models.encoder import TrackEncoder


@dataclass
class DMCConfig:
    """Sizes of a :class:`DMC` model (stored in the checkpoint JSON)."""

    sample_rate_hz: int = 22050
    embed_dim: int = 128
    hidden_dim: int = 256
    channels: tuple[int, ...] = (16, 32, 64)
    n_mels: int = 64
    dropout: float = 0.1


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x (batch, tracks, dim)`` over tracks where ``mask (batch, tracks)`` is True."""
    w = mask.to(x.dtype)[..., None]
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


class DMC(nn.Module):
    """Stems → normalised console parameters. A reference, if given, is ignored."""

    kind = "dmc"

    def __init__(self, config: DMCConfig):
        super().__init__()
        self.config = config
        d = config.embed_dim
        self.encoder = TrackEncoder(config.sample_rate_hz, d, channels=tuple(config.channels),
                                    n_mels=config.n_mels)
        self.track_head = head(2 * d, config.hidden_dim, TRACK, config.dropout)
        self.fx_head = head(d, config.hidden_dim, FX, config.dropout)
        self.master_head = head(d, config.hidden_dim, MASTER, config.dropout)

    def forward(
        self,
        stems: torch.Tensor,
        is_stereo: torch.Tensor,
        track_mask: torch.Tensor,
        reference: torch.Tensor | None = None,
    ) -> ControllerOutput:
        """Args: stems ``(B, T, 2, N)`` at ``config.sample_rate_hz``, is_stereo and track_mask ``(B, T)``."""
        emb = self.encoder(stems, is_stereo)
        context = masked_mean(emb, track_mask)
        pair = torch.cat([emb, context[:, None].expand_as(emb)], dim=-1)
        return ControllerOutput(self.track_head(pair), self.fx_head(context), self.master_head(context))
