"""The random-forest balance model as plain arrays, evaluated with numpy (no torch, no scikit-learn).

Moffat & Sandler's gain mixing: each tree maps a track's descriptors in its song
(:func:`automix.mixers.balance_features.song_features`) to its loudness in the mix relative to
the song's mean track (LU); the forest averages the trees. Stored as split feature, threshold,
children and leaf value for every node, so a checkpoint is data, not a pickled estimator, and the
default mixer loads without importing torch.
"""

from __future__ import annotations

import numpy as np

from automix.errors import AutomixError
from automix.mixers.balance_features import SONG_FEATURES

LEAF = -1
"""``left``/``right`` child index of a leaf node."""


def check_features(features: np.ndarray, width: int) -> np.ndarray:
    """``(K, width)`` float64 descriptors with non-finite values zeroed (a broken stem must not
    break the prediction of the others)."""
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
        x = check_features(features, self.n_features).astype(np.float32).astype(np.float64)
        rows = np.arange(x.shape[0])
        node = np.repeat(self.roots[None, :], x.shape[0], axis=0)  # (K, trees)
        for _ in range(256):  # deeper than any tree we train; a cycle cannot hang inference
            inner = self.left[node] != LEAF
            if not inner.any():
                break
            go_left = x[rows[:, None], self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return self.value[node].mean(axis=1)
