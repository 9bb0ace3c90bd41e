"""Balance models: per-track descriptors in their song → each track's loudness relative to the mix.

Two predictors share one contract: ``predict(features) -> level_db``, features
``(K, len(SONG_FEATURES))`` from :func:`automix.mixers.balance_features.song_features`, output
``(K,)`` each track's loudness in the mix relative to the song's mean track (LU; only
differences between tracks matter).

* :class:`ForestBalance`: a random forest (Moffat & Sandler's gain mixing), stored as plain
  arrays (split feature, threshold, children, leaf value for every node of every tree) and
  evaluated with numpy, so a checkpoint is data, not a pickled estimator.
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

LEAF = -1
"""``left``/``right`` child index of a leaf node."""


def _check_features(features: np.ndarray, width: int) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != width or x.shape[0] == 0:
        raise AutomixError(f"balance model: features must be (tracks, {width}), got {x.shape}")
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


class ForestBalance:
    """A regression forest as arrays: node ``i`` of the concatenated trees splits on
    ``feature[i] <= threshold[i]`` → ``left[i]`` else ``right[i]`` (absolute node indices);
    a leaf (``left == LEAF``) predicts ``value[i]``. ``roots`` are the trees' first nodes."""

    kind = "forest"

    def __init__(self, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray, right: np.ndarray,
                 value: np.ndarray, roots: np.ndarray, n_features: int = len(SONG_FEATURES)) -> None:
        self.feature = np.asarray(feature, dtype=np.int64)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.left = np.asarray(left, dtype=np.int64)
        self.right = np.asarray(right, dtype=np.int64)
        self.value = np.asarray(value, dtype=np.float64)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.n_features = int(n_features)
        nodes = self.feature.size
        if not (self.threshold.size == self.left.size == self.right.size == self.value.size == nodes) or nodes == 0:
            raise AutomixError("forest checkpoint: node arrays differ in length")
        inner = self.left != LEAF
        children = np.concatenate([self.left[inner], self.right[inner]])
        if (self.roots.size == 0 or np.any(self.roots < 0) or np.any(self.roots >= nodes)
                or np.any(children < 0) or np.any(children >= nodes)
                or np.any((self.feature[inner] < 0) | (self.feature[inner] >= self.n_features))):
            raise AutomixError("forest checkpoint: a node points outside the forest")

    def arrays(self) -> dict[str, np.ndarray]:
        """The forest as named arrays (what a checkpoint stores)."""
        return {"feature": self.feature, "threshold": self.threshold, "left": self.left, "right": self.right,
                "value": self.value, "roots": self.roots}

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Mean over trees of each track's leaf value, ``(K,)`` float64."""
        # scikit-learn compares float32 features with its thresholds; the same rounding here keeps
        # a value that sits on a threshold on the side the forest was trained with.
        x = _check_features(features, self.n_features).astype(np.float32).astype(np.float64)
        rows = np.arange(x.shape[0])
        node = np.repeat(self.roots[None, :], x.shape[0], axis=0)  # (K, trees)
        for _ in range(256):  # deeper than any tree we train; a cycle cannot hang inference
            inner = self.left[node] != LEAF
            if not inner.any():
                break
            go_left = x[rows[:, None], self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return self.value[node].mean(axis=1)


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
        x = _check_features(features, self.config.n_features)
        device = self.feature_mean.device
        out = self(torch.as_tensor(x, dtype=torch.float32, device=device)[None])[0]
        return out.double().cpu().numpy()
