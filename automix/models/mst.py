"""Mix style transfer controller (after Diff-MST, Vanka et al., ISMIR 2024).

A transformer encoder attends over one token per track, the reference tokens (mid and side),
and two learned query tokens whose outputs drive the master bus and the reverb. No positional
encoding is added to track tokens, so the output for a track does not depend on its position
(permutation-equivariant); padding tracks are hidden with a key padding mask. Without a
reference a learned "no reference" token takes the reference's place, so one model can mix
with or without a reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from automix.console.schema import FX, MASTER, TRACK
from automix.models.base import ControllerOutput, head
from automix.models.encoder import ReferenceEncoder, TrackEncoder, balance_estimate_db


@dataclass
class MSTConfig:
    """Sizes of an :class:`MST` model (stored in the checkpoint JSON)."""

    sample_rate_hz: int = 22050
    embed_dim: int = 128
    layers: int = 3
    heads: int = 4
    ff_dim: int = 256
    hidden_dim: int = 256
    channels: tuple[int, ...] = (16, 32, 64)
    n_mels: int = 64
    dropout: float = 0.1


class MST(nn.Module):
    """Stems (+ optional stereo reference) → normalised console parameters."""

    kind = "mst"

    def __init__(self, config: MSTConfig):
        super().__init__()
        self.config = config
        d = config.embed_dim
        enc_kwargs = {"channels": tuple(config.channels), "n_mels": config.n_mels}
        self.track_encoder = TrackEncoder(config.sample_rate_hz, d, **enc_kwargs)
        self.reference_encoder = ReferenceEncoder(config.sample_rate_hz, d, **enc_kwargs)
        # Learned tokens: [master, fx] queries, a type vector for tracks, and "no reference".
        self.queries = nn.Parameter(torch.randn(2, d) * 0.02)
        self.track_type = nn.Parameter(torch.zeros(d))
        self.no_reference = nn.Parameter(torch.randn(2, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, config.heads, config.ff_dim, config.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        # Balance prior (see balance_estimate_db) and whether a reference is present.
        self.balance_hint = nn.Linear(2, d)
        self.track_head = head(d + 2, config.hidden_dim, TRACK, config.dropout)
        self.fx_head = head(d, config.hidden_dim, FX, config.dropout)
        self.master_head = head(d, config.hidden_dim, MASTER, config.dropout)

    def forward(
        self,
        stems: torch.Tensor,
        is_stereo: torch.Tensor,
        track_mask: torch.Tensor,
        reference: torch.Tensor | None = None,
    ) -> ControllerOutput:
        """Args: stems ``(B, T, 2, N)``, is_stereo/track_mask ``(B, T)``, reference ``(B, 2, M)`` or None,
        all audio at ``config.sample_rate_hz``."""
        b, t = stems.shape[:2]
        if reference is None:
            ref = self.no_reference.expand(b, -1, -1)
            hint = torch.zeros(b, t, 2, dtype=stems.dtype, device=stems.device)
        else:
            ref = self.reference_encoder(reference)
            with torch.no_grad():
                mel = self.track_encoder.encoder.logmel
                track_power = mel.power(stems).sum(2).mean(-1)  # (b, t, M): both channels, time average
                mix_power = mel.power(reference).sum(1).mean(-1)
                estimate_db = balance_estimate_db(track_power, mix_power, track_mask.bool())
            hint = torch.stack([estimate_db / 10.0, torch.ones_like(estimate_db)], dim=-1)
        tracks = self.track_encoder(stems, is_stereo) + self.track_type + self.balance_hint(hint)
        tokens = torch.cat([self.queries.expand(b, -1, -1), ref, tracks], dim=1)
        fixed = torch.zeros(b, 2 + ref.shape[1], dtype=torch.bool, device=stems.device)
        padding = torch.cat([fixed, ~track_mask.bool()], dim=1)  # True = ignore
        out = self.norm(self.transformer(tokens, src_key_padding_mask=padding))
        n_fixed = fixed.shape[1]
        track_in = torch.cat([out[:, n_fixed:], hint], dim=-1)
        return ControllerOutput(self.track_head(track_in), self.fx_head(out[:, 1]), self.master_head(out[:, 0]))
