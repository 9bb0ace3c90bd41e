"""Coefficient design written once for NumPy arrays and torch tensors.

The differentiable console designs its filters, pan matrices and reverb IR in torch (so
gradients reach every parameter); the full-song renderer designs the very same numbers in
NumPy, without importing torch. Rather than keeping two copies of each formula, the design
functions (:mod:`automix.console.biquad`, :mod:`automix.console.reverb`, :func:`pan_matrix`)
are written against :class:`ArrayOps`, the handful of element-wise functions they need, and
:func:`namespace` picks the NumPy or the torch set from the arguments. Both sets perform the
same operations in the same order, so the two paths agree to rounding (≤ 1e-12; pinned by
``tests/test_console_dsp.py``).

torch is only touched when a tensor is passed in, i.e. when the caller has already imported it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from automix.console.schema import TRACK, db_to_amplitude

Array = Any
"""A NumPy array or a torch tensor: the functions here return the kind they are given."""


@dataclass(frozen=True)
class ArrayOps:
    """Element-wise building blocks with one meaning for NumPy and torch.

    ``clip(x, lo, hi)`` accepts ``None`` for an open side; ``stack(xs, axis)`` stacks on a new
    axis; ``asarray(x)`` converts to float64 keeping autograd (torch); ``from_numpy(a)`` wraps a
    NumPy array without copying; ``detach(x)`` drops autograd history.
    """

    name: str
    asarray: Callable[[Any], Any]
    detach: Callable[[Any], Any]
    from_numpy: Callable[[np.ndarray], Any]
    cos: Callable[[Any], Any]
    sin: Callable[[Any], Any]
    sqrt: Callable[[Any], Any]
    exp: Callable[[Any], Any]
    power: Callable[[float, Any], Any]
    clip: Callable[[Any, float | None, float | None], Any]
    relu: Callable[[Any], Any]
    stack: Callable[[list[Any], int], Any]
    where: Callable[[Any, Any, Any], Any]
    ones_like: Callable[[Any], Any]
    zeros_like: Callable[[Any], Any]
    einsum: Callable[..., Any]
    arange: Callable[[int], Any]
    sum_last: Callable[[Any], Any]
    """Sum over the last axis, keeping it (size 1)."""


NUMPY = ArrayOps(
    name="numpy",
    asarray=lambda x: np.asarray(x, dtype=np.float64),
    detach=lambda x: x,
    from_numpy=lambda a: a,
    cos=np.cos,
    sin=np.sin,
    sqrt=np.sqrt,
    exp=np.exp,
    power=np.power,
    clip=np.clip,
    relu=lambda x: np.maximum(x, 0.0),
    stack=lambda xs, axis: np.stack(xs, axis=axis),
    where=np.where,
    ones_like=np.ones_like,
    zeros_like=np.zeros_like,
    einsum=np.einsum,
    arange=lambda n: np.arange(n, dtype=np.float64),
    sum_last=lambda x: np.sum(x, axis=-1, keepdims=True),
)


@cache
def _torch_ops() -> ArrayOps:
    import torch

    return ArrayOps(
        name="torch",
        asarray=lambda x: torch.as_tensor(x, dtype=torch.float64),
        detach=lambda x: x.detach(),
        from_numpy=torch.from_numpy,
        cos=torch.cos,
        sin=torch.sin,
        sqrt=torch.sqrt,
        exp=torch.exp,
        power=torch.pow,
        clip=lambda x, lo, hi: torch.clamp(x, min=lo, max=hi),
        relu=torch.relu,
        stack=lambda xs, axis: torch.stack(xs, dim=axis),
        where=torch.where,
        ones_like=torch.ones_like,
        zeros_like=torch.zeros_like,
        einsum=torch.einsum,
        arange=lambda n: torch.arange(n, dtype=torch.float64),
        sum_last=lambda x: x.sum(dim=-1, keepdim=True),
    )


def is_tensor(x: object) -> bool:
    """True for a torch tensor (without importing torch: no tensor exists unless it is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def namespace(*xs: object) -> ArrayOps:
    """The torch ops if any argument is a tensor, else the NumPy ops."""
    return _torch_ops() if any(is_tensor(x) for x in xs) else NUMPY


def pan_matrix(track_params: Array, is_stereo: Array) -> Array:
    """``(..., 2, 2)`` channel matrix of the fader + pan/width stage (output = M @ input).

    Args:
        track_params: ``(..., len(TRACK))`` physical track parameters (NumPy or torch; the
            result has their dtype).
        is_stereo: ``(...)`` bool.

    The formula is :func:`fader_pan_matrix`'s.
    """
    p = track_params
    return fader_pan_matrix(p[..., TRACK.index("gain_db")], p[..., TRACK.index("pan")], p[..., TRACK.index("width")],
                            is_stereo)


def fader_pan_matrix(gain_db: Array, pan: Array, width: Array, is_stereo: Array) -> Array:
    """``(..., 2, 2)`` channel matrix of the fader + pan/width stage from the three values
    (broadcast together; e.g. per-sample automation curves ``(n,)`` with a scalar width).

    Mono (input channel 0 only): constant power, θ = (pan + 1)π/4, L = cos θ, R = sin θ.
    Stereo: width on mid/side (S·width), then balance gL = min(1, √2 cos θ), gR = min(1, √2 sin θ)
    so the centre is unity. Everything times the fader, 10^(gain_db/20).
    """
    xp = namespace(gain_db, pan, width, is_stereo)
    fader = db_to_amplitude(gain_db)
    theta = (pan + 1.0) * (math.pi / 4.0)
    cos_t, sin_t = xp.cos(theta), xp.sin(theta)
    zeros = xp.zeros_like(cos_t)
    mono = xp.stack([xp.stack([cos_t, zeros], -1), xp.stack([sin_t, zeros], -1)], -2)
    g_left = xp.clip(math.sqrt(2.0) * cos_t, None, 1.0)
    g_right = xp.clip(math.sqrt(2.0) * sin_t, None, 1.0)
    direct, cross = (1.0 + width) / 2.0, (1.0 - width) / 2.0
    direct, cross = direct + zeros, cross + zeros  # a scalar width broadcast to the pan's shape
    stereo = xp.stack(
        [xp.stack([g_left * direct, g_left * cross], -1), xp.stack([g_right * cross, g_right * direct], -1)],
        -2,
    )
    matrix = xp.where(is_stereo[..., None, None], stereo, mono)
    return matrix * fader[..., None, None]
