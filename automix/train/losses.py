"""Training-only losses: the parameter loss (Method 1, where ground-truth parameters exist).

The audio distances training also uses (AF loss, MRSTFT) are measurements the whole project
shares; they live in :mod:`automix.measure.distances`.

Parameter loss: L1 distance in the normalised [0, 1] parameter space, masked for padding tracks.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from automix.console.schema import FX, MASTER, TRACK, ParamGroup

_GROUPS: dict[str, ParamGroup] = {"track": TRACK, "fx": FX, "master": MASTER}


class ParameterLoss(nn.Module):
    """Mean absolute error between predicted and true parameters in normalised [0, 1] space.

    Why L1 and not MSE: several parameters are unidentifiable from audio in some settings
    (compressor attack when nothing crosses the threshold, EQ frequency of a 0 dB band, reverb
    size with the return off); MSE would let these large, unavoidable errors dominate the
    gradient, while L1 weighs every parameter's error linearly and keeps a useful gradient
    as errors become small.

    Scored as is, without special cases: ``width`` of a mono stem and every parameter whose
    effect is switched off. Give such parameters a weight of 0 in ``param_weights`` if wanted.

    Inputs are dicts keyed by group (``"track"``, ``"fx"``, ``"master"``); only the groups
    present in ``pred`` are scored, each must be in ``true``:

    * ``track``: ``(B, T, len(TRACK))``, masked by ``track_mask (B, T)`` (padding = False);
    * ``fx``: ``(B, len(FX))``; ``master``: ``(B, len(MASTER))``.

    Each group's term is the weighted mean ``Σ w_p |pred − true| / Σ w_p`` over parameters
    and active items; the total is ``Σ group_weight · term``.

    Args:
        group_weights: weight per group (default 1 each).
        param_weights: per group, per parameter name, a weight (default 1), e.g.
            ``{"track": {"gain_db": 4.0, "width": 0.0}}``.
    """

    def __init__(
        self,
        group_weights: Mapping[str, float] | None = None,
        param_weights: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        super().__init__()
        for name in set(group_weights or {}) | set(param_weights or {}):
            if name not in _GROUPS:
                raise ValueError(f"unknown parameter group {name!r}; known: {list(_GROUPS)}")
        self.group_weights = {name: 1.0 for name in _GROUPS} | dict(group_weights or {})
        for name, group in _GROUPS.items():
            weights = torch.ones(len(group))
            for param, weight in (param_weights or {}).get(name, {}).items():
                if param not in group:
                    raise ValueError(f"unknown {name} parameter {param!r}")
                weights[group.index(param)] = float(weight)
            if weights.sum() <= 0 or (weights < 0).any():
                raise ValueError(f"{name} parameter weights must be >= 0 and not all zero")
            self.register_buffer(f"{name}_weights", weights, persistent=False)

    def terms(
        self, pred: Mapping[str, Tensor], true: Mapping[str, Tensor], track_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Unweighted-by-group L1 term per scored group (scalars)."""
        terms = {}
        for name, p in pred.items():
            if name not in _GROUPS:
                raise ValueError(f"unknown parameter group {name!r}")
            if name not in true:
                raise ValueError(f"no true {name} parameters to compare with")
            t = true[name]
            size = len(_GROUPS[name])
            if p.shape != t.shape or p.shape[-1] != size:
                raise ValueError(f"{name}: pred {tuple(p.shape)} and true {tuple(t.shape)} must match, "
                                 f"last dimension {size}")
            weights = getattr(self, f"{name}_weights").to(p.dtype)
            error = ((p - t).abs() * weights).sum(dim=-1) / weights.sum()  # (B,) or (B, T)
            if name == "track" and track_mask is not None:
                if track_mask.shape != error.shape:
                    raise ValueError(f"track_mask must be {tuple(error.shape)}, got {tuple(track_mask.shape)}")
                mask = track_mask.to(error.dtype)
                terms[name] = (error * mask).sum() / mask.sum().clamp(min=1.0)
            else:
                terms[name] = error.mean()
        return terms

    def forward(
        self, pred: Mapping[str, Tensor], true: Mapping[str, Tensor], track_mask: Tensor | None = None
    ) -> Tensor:
        """Scalar ``Σ group_weight · term`` (see :meth:`terms`)."""
        terms = self.terms(pred, true, track_mask)
        if not terms:
            raise ValueError("no parameter groups to compare")
        return torch.stack([self.group_weights[k] * v for k, v in terms.items()]).sum()
