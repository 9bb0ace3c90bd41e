"""What every controller returns, and the output-layer initialisation they share."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from automix.console.schema import ParamGroup


class ControllerOutput(NamedTuple):
    """Normalised console parameters in [0, 1] (map to physical units with ``GROUP.from_normalised``).

    Attributes:
        track: ``(batch, tracks, len(TRACK))``; rows of padding tracks are meaningless.
        fx: ``(batch, len(FX))``.
        master: ``(batch, len(MASTER))``.
    """

    track: torch.Tensor
    fx: torch.Tensor
    master: torch.Tensor


def head(in_dim: int, hidden_dim: int, group: ParamGroup, dropout: float) -> nn.Sequential:
    """An MLP (PReLU, dropout) ending in a sigmoid, initialised to output the group's defaults.

    Starting at the neutral console (faders 0 dB, EQ flat, compressors off) keeps the first
    training steps from rendering wild mixes.
    """
    last = nn.Linear(hidden_dim, len(group))
    nn.init.normal_(last.weight, std=1e-3)
    default = torch.as_tensor(group.to_normalised(group.defaults()), dtype=torch.float32).clamp(0.02, 0.98)
    with torch.no_grad():
        last.bias.copy_(torch.log(default / (1.0 - default)))
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.PReLU(), nn.Dropout(dropout),
        nn.Linear(hidden_dim, hidden_dim), nn.PReLU(), nn.Dropout(dropout),
        last, nn.Sigmoid(),
    )
