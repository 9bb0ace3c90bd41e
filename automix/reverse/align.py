"""Where the stems sit in a finished mix: alignment by cross-correlation and least squares, and
the refusal of a mix the stems do not explain (step 1 of :mod:`automix.reverse`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.signal

from automix.errors import AutomixError

MAX_LAG_S = 2.0
"""Largest offset between the mix and the stems that alignment searches, seconds."""

MIN_CORRELATION = 0.5
"""A mix whose best least-squares fit from the stems correlates less than this is refused."""

_CANDIDATE_LAGS = 5
_LAG_TIE = 0.005
"""Fit correlations this close count as a tie, won by the lag nearest 0: a mix bounced from the
same session as its stems is aligned, and periodic stems (a held tone, a loop) fit equally well
one period later."""
_LAG_REFINE = 3  # samples either side of the best candidate checked by the least-squares fit
_FIT_MAX_SAMPLES = 2_000_000  # alignment scoring uses an evenly strided subset beyond this


@dataclass
class Alignment:
    """Where the stems sit in the mix.

    Attributes:
        lag_samples: the mix is late by this many samples (negative: early).
        correlation: correlation between the aligned mix and its least-squares fit from the
            stems (0 unrelated … 1 a pure gain/pan mix).
        inverted: the mix is polarity-inverted against the stems; the aligned mix returned by
            :func:`align_mix` is flipped back (the console has no polarity switch, and a flip of
            the whole mix is inaudible).
    """

    lag_samples: int
    correlation: float
    inverted: bool = False


def shift(mix: np.ndarray, lag: int, length: int) -> np.ndarray:
    """``out[:, t] = mix[:, t + lag]`` for ``t`` in ``[0, length)``, zeros outside the mix."""
    out = np.zeros((mix.shape[0], length), dtype=np.float32)
    src_lo, src_hi = max(0, lag), min(mix.shape[1], lag + length)
    if src_hi > src_lo:
        out[:, src_lo - lag: src_hi - lag] = mix[:, src_lo:src_hi]
    return out


def fit_columns(stems: Sequence[np.ndarray], mix: np.ndarray) -> list[np.ndarray]:
    """Least-squares coefficients per mix channel: one column per stem channel.

    Returns ``[left, right]``, each the concatenation over stems of 1 (mono) or 2 (stereo:
    the stem's L then R) coefficients.
    """
    stride = max(1, mix.shape[1] // _FIT_MAX_SAMPLES)
    columns = np.concatenate([s[:, ::stride] for s in stems]).T.astype(np.float64)
    return [np.linalg.lstsq(columns, mix[c, ::stride].astype(np.float64), rcond=None)[0] for c in range(2)]


def _fit_correlation(stems: Sequence[np.ndarray], target: np.ndarray) -> float:
    """Multiple correlation ``√R²`` of the stereo ``target`` from every stem channel (least squares)."""
    stride = max(1, target.shape[1] // _FIT_MAX_SAMPLES)
    columns = np.concatenate([s[:, ::stride] for s in stems]).T.astype(np.float64)
    explained = total = 0.0
    for channel, coef in enumerate(fit_columns(stems, target)):
        y = target[channel, ::stride].astype(np.float64)
        residual = y - columns @ coef
        explained += float(y @ y - residual @ residual)
        total += float(y @ y)
    return math.sqrt(max(0.0, explained) / total) if total > 0 else 0.0


def align_mix(
    stems: Sequence[np.ndarray], mix: np.ndarray, sample_rate: int, max_lag_s: float = MAX_LAG_S
) -> tuple[np.ndarray, Alignment]:
    """Align ``mix`` to the stems (all at ``sample_rate``) and check that it is made of them.

    Args:
        stems: ``(channels, N)`` arrays of equal length.
        mix: ``(2, M)``; any length.
        max_lag_s: search range of the offset, seconds each way.

    Returns:
        ``(aligned (2, N) float32, alignment)``.

    Raises:
        AutomixError: the aligned mix correlates less than :data:`MIN_CORRELATION` with its
            best fit from the stems (an unrelated mix, or stems of another song).
    """
    n = stems[0].shape[1]
    stem_sum = np.sum([s.mean(axis=0) for s in stems], axis=0)
    mono_mix = mix.mean(axis=0)
    max_lag = int(max_lag_s * sample_rate)
    xcorr = scipy.signal.correlate(mono_mix, stem_sum, mode="full", method="fft")
    lags = np.arange(-(n - 1), mono_mix.shape[0])
    keep = np.abs(lags) <= max_lag
    xcorr, lags = np.abs(xcorr[keep]), lags[keep]
    apart = sample_rate // 1000  # candidates are distinct peaks, at least 1 ms apart
    candidates: list[int] = []
    for index in np.argsort(xcorr)[::-1]:
        if all(abs(lags[index] - c) > apart for c in candidates):
            candidates.append(int(lags[index]))
        if len(candidates) == _CANDIDATE_LAGS:
            break
    if all(abs(c) > apart for c in candidates):
        candidates.append(0)
    lag = _best_candidate({c: _fit_correlation(stems, shift(mix, c, n)) for c in candidates})
    # Filters shift the cross-correlation peak by a sample or two (phase): the exact best fit
    # around the chosen peak decides (no tie rule here: neighbouring lags always fit alike).
    near = {lag + d: _fit_correlation(stems, shift(mix, lag + d, n)) for d in range(-_LAG_REFINE, _LAG_REFINE + 1)}
    lag = max(near, key=near.__getitem__)
    correlation = near[lag]
    if correlation < MIN_CORRELATION:
        raise AutomixError(
            f"the mix does not look like a mix of these stems (best fit correlation {correlation:.2f} "
            f"< {MIN_CORRELATION:g}); check that the stems and the mix belong to the same song"
        )
    aligned = shift(mix, lag, n)
    inverted = float(np.dot(stem_sum, aligned.mean(axis=0))) < 0.0
    return (-aligned if inverted else aligned), Alignment(lag, correlation, inverted)


def _best_candidate(scored: dict[int, float]) -> int:
    """The candidate lag of the highest fit correlation; near-ties (:data:`_LAG_TIE`) between
    these distinct peaks go to the one nearest 0 (a period of a periodic stem apart)."""
    best = max(scored.values())
    return min((lag for lag, c in scored.items() if c >= best - _LAG_TIE), key=lambda lag: (abs(lag), lag))
