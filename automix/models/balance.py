"""Balance models: per-track descriptors in their song → each track's loudness relative to the mix.

Two predictors share one contract: ``predict(features) -> level_db``, features
``(K, len(SONG_FEATURES))`` from :func:`automix.mixers.balance_features.song_features`, output
``(K,)`` each track's loudness in the mix relative to the song's mean track (LU; only
differences between tracks matter).

* :class:`~automix.models.forest.ForestBalance`: a random forest (Moffat & Sandler's gain
  mixing) as plain arrays evaluated with numpy (its own module, free of torch).
* :class:`BalanceNet`: a permutation-equivariant set model in the DMC / Diff-MST family:
  a shared per-track encoder, self-attention across the song's tracks (no positions, any
  number of tracks), a per-track head. Inputs are standardised by statistics stored with the
  weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from automix.errors import AutomixError
from automix.mixers.balance_features import SONG_FEATURES
from automix.models.forest import ForestBalance, check_features


@dataclass(frozen=True)
class BalanceNetConfig:
    """Sizes of :class:`BalanceNet`."""

    n_features: int = len(SONG_FEATURES)
    width: int = 128
    layers: int = 3
    heads: int = 4
    dropout: float = 0.1


class BalanceNet(nn.Module):
    """Shared encoder → self-attention across tracks → per-track loudness offset (LU)."""

    kind = "balance-net"

    def __init__(self, config: BalanceNetConfig) -> None:
        super().__init__()
        if config.width % config.heads:
            raise AutomixError(f"balance-net: width {config.width} is not a multiple of heads {config.heads}")
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.n_features))
        self.register_buffer("feature_std", torch.ones(config.n_features))
        self.encoder = nn.Sequential(nn.Linear(config.n_features, config.width), nn.GELU(),
                                     nn.Linear(config.width, config.width))
        layer = nn.TransformerEncoderLayer(config.width, config.heads, 2 * config.width, config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.context = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(config.width), nn.Linear(config.width, 1))

    def forward(self, features: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, K, F)`` features (``padding`` ``(B, K)`` True where a slot is empty) → ``(B, K)`` LU."""
        x = (features - self.feature_mean) / self.feature_std
        h = self.context(self.encoder(x.clamp(-8.0, 8.0)), src_key_padding_mask=padding)
        return self.head(h).squeeze(-1)

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        """One song: ``(K, F)`` → ``(K,)`` float64 (same contract as :class:`ForestBalance`)."""
        x = check_features(features, self.config.n_features)
        device = self.feature_mean.device
        out = self(torch.as_tensor(x, dtype=torch.float32, device=device)[None])[0]
        return out.double().cpu().numpy()


__all__ = ["BalanceNet", "BalanceNetConfig", "ForestBalance"]
