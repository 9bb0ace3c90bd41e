"""Fitting every console setting to the aligned mix by gradient descent on the most active
excerpts (step 3 of :mod:`automix.reverse`), and the waveform residual that scores a fit."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from automix.analysis_windows import multitrack_activity, window_starts_samples
from automix.console.settings import MixSettings
from automix.refine import optimise_console, stems_tensor
from automix.reverse.align import shift

DEFAULT_REVERSE_STEPS = 60
REVERSE_LR = 0.05
REVERSE_PENALTY = 0.001
"""Small pull towards the starting point: parameters the mix cannot reveal (the frequency of
a flat EQ band, the attack of a compressor that never acts) stay neutral, and a broadband
level change goes to the fader rather than to six EQ bands."""

REVERSE_WINDOWS = 3
REVERSE_WINDOW_S = 2.0
PREROLL_S = 0.5
"""Audio before each excerpt that the console processes but the loss ignores."""

LOSS_HOP_FRACTION = 0.5
"""STFT hop of the sum/difference loss as a fraction of the FFT size (half the cost of 25 %)."""

# Pure gains that duplicate the fader (or the level finalize sets) are not fitted.
REVERSE_FROZEN: dict[str, tuple[str, ...]] = {
    "track": ("trim_db", "compressor.makeup_db"),
    "fx": (),
    "master": ("gain_db", "compressor.makeup_db"),
}


def residual_db(rendered: np.ndarray, target: np.ndarray) -> float:
    """``10·log10(Σ(rendered − target)² / Σ target²)`` over the common length, dB."""
    n = min(rendered.shape[-1], target.shape[-1])
    error = np.sum((rendered[..., :n].astype(np.float64) - target[..., :n]) ** 2)
    energy = np.sum(target[..., :n].astype(np.float64) ** 2)
    return 10.0 * math.log10(max(error, 1e-30) / max(energy, 1e-30))


def excerpt_batch(
    stems: Sequence[np.ndarray], target: np.ndarray, sample_rate: int, count: int, window_s: float,
    preroll_s: float = PREROLL_S,
) -> tuple[list[list[np.ndarray]], torch.Tensor, int, list[int]]:
    """The most active excerpts of the stems (with pre-roll) and the matching target excerpts.

    Returns:
        ``(stem_windows, target (W, 2, window), preroll_samples, starts)``; the stems'
        windows are ``preroll + window`` samples long and start ``preroll`` before ``starts``.
    """
    n = stems[0].shape[1]
    window = min(int(window_s * sample_rate), n)
    preroll = int(preroll_s * sample_rate)
    starts = window_starts_samples(multitrack_activity(list(stems), sample_rate), sample_rate,
                                   window / sample_rate, count, n)
    stem_windows, targets = [], []
    for start in starts:
        lo = start - preroll
        stem_windows.append([shift(s, lo, preroll + window) for s in stems])
        targets.append(shift(target, start, window))
    return stem_windows, torch.from_numpy(np.stack(targets)), preroll, starts


def fit_settings(
    stems: Sequence[np.ndarray], target: np.ndarray, init: MixSettings, sample_rate: int, *,
    steps: int = DEFAULT_REVERSE_STEPS, lr: float = REVERSE_LR, penalty: float = REVERSE_PENALTY,
    windows: int = REVERSE_WINDOWS, window_s: float = REVERSE_WINDOW_S,
    progress: Callable[[int, float], None] | None = None,
):
    """Optimise ``init`` so the console turns ``stems`` into the aligned ``target`` (sum/diff MRSTFT).

    Returns:
        :class:`automix.refine.OptimiseResult`.
    """
    from automix.measure.distances import SumDiffSTFTLoss

    stem_windows, target_windows, preroll, _ = excerpt_batch(stems, target, sample_rate, windows, window_s)
    batch, is_stereo = stems_tensor(stem_windows)
    loss = SumDiffSTFTLoss(hop_fraction=LOSS_HOP_FRACTION)

    def loss_fn(mix: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"sum_diff_mrstft": loss(mix[..., preroll:], target_windows)}

    return optimise_console(batch, is_stereo, init, sample_rate, loss_fn, steps=steps, lr=lr, penalty=penalty,
                            frozen=REVERSE_FROZEN, progress=progress)
