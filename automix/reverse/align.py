"""Where the stems sit in a finished mix: alignment by cross-correlation and least squares, and
the refusal of a mix the stems do not explain (step 1 of :mod:`automix.reverse`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
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
_POLARITY_HIGHPASS_HZ = 1000.0  # see _high_band
_SHARP_FIT = 0.9  # high-band fit correlation that decides the exact lag (see align_mix)


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


def _with_quadrature(stem: np.ndarray) -> np.ndarray:
    """The stem's channels followed by their Hilbert transforms (90° shifted): a least-squares
    fit on both can turn each stem's phase, as the console's filters do (a high-pass turns a
    55 Hz bass by tens of degrees, which a plain gain cannot follow, and which a lag of a few
    milliseconds mimics on a tonal stem)."""
    return np.concatenate([stem, np.imag(scipy.signal.hilbert(stem, axis=1)).astype(np.float32)])


def _peak_lags(xcorr: np.ndarray, lags: np.ndarray, apart: int, count: int) -> list[int]:
    """The ``count`` strongest peaks of ``|xcorr|``, at least ``apart`` samples from each other."""
    found: list[int] = []
    for index in np.argsort(np.abs(xcorr))[::-1]:
        if all(abs(lags[index] - c) > apart for c in found):
            found.append(int(lags[index]))
        if len(found) == count:
            break
    return found


def _candidate_lags(mono_mix: np.ndarray, stem_sum: np.ndarray, max_lag: int, apart: int) -> list[int]:
    """Lags worth scoring: peaks of the plain cross-correlation of the mono mix with the mono stem
    sum, of its phase transform (whitened spectra: every frequency counts alike, so a
    phase-turned bass cannot move the peak), and 0."""
    size = scipy.fft.next_fast_len(mono_mix.size + stem_sum.size - 1)
    spectrum = scipy.fft.rfft(mono_mix, size) * np.conj(scipy.fft.rfft(stem_sum, size))
    lags = np.arange(-(stem_sum.size - 1), mono_mix.size)
    keep = np.abs(lags) <= max_lag
    candidates: list[int] = []
    for weighted in (spectrum, spectrum / np.maximum(np.abs(spectrum), 1e-12 * np.abs(spectrum).max())):
        full = scipy.fft.irfft(weighted, size)
        xcorr = np.concatenate([full[size - (stem_sum.size - 1):], full[: mono_mix.size]])  # lags in order
        for lag in _peak_lags(xcorr[keep], lags[keep], apart, _CANDIDATE_LAGS):
            if all(abs(lag - c) > apart for c in candidates):
                candidates.append(lag)
    if 0 not in candidates:  # a bounce from the same session is aligned: always try it
        candidates.append(0)
    return candidates


def _high_band(stems: Sequence[np.ndarray], mix: np.ndarray, sample_rate: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Stems and mix through the same high-pass at :data:`_POLARITY_HIGHPASS_HZ` (so their
    least-squares relation is unchanged), where the console's high-passes and shelves barely
    turn the phase; the full band if the mix has (almost) nothing up there."""
    sos = scipy.signal.butter(4, _POLARITY_HIGHPASS_HZ, "highpass", fs=sample_rate, output="sos")
    high_mix = scipy.signal.sosfilt(sos, mix, axis=1).astype(np.float32)
    if float(np.sum(high_mix.astype(np.float64) ** 2)) < 1e-4 * float(np.sum(mix.astype(np.float64) ** 2)):
        return list(stems), mix
    return [scipy.signal.sosfilt(sos, s, axis=1).astype(np.float32) for s in stems], high_mix


def _is_inverted(stems: Sequence[np.ndarray], aligned: np.ndarray, sample_rate: int) -> bool:
    """Whether ``aligned`` is the stems' mix with its polarity flipped: in the high band
    (:func:`_high_band`) the plain least-squares coefficients, weighted by each stem channel's
    energy there, sum below 0."""
    high, high_mix = _high_band(stems, aligned, sample_rate)
    energy = np.concatenate([np.sum(s.astype(np.float64) ** 2, axis=1) for s in high])
    return float(sum(coef @ energy for coef in fit_columns(high, high_mix))) < 0.0


def align_mix(
    stems: Sequence[np.ndarray], mix: np.ndarray, sample_rate: int, max_lag_s: float = MAX_LAG_S
) -> tuple[np.ndarray, Alignment]:
    """Align ``mix`` to the stems (all at ``sample_rate``) and check that it is made of them.

    Args:
        stems: ``(channels, N)`` arrays of equal length.
        mix: ``(2, M)``; any length.
        max_lag_s: search range of the offset, seconds each way.

    Returns:
        ``(aligned (2, N) float32, alignment)``; the correlation is that of a fit in which each
        stem may also turn its phase (:func:`_with_quadrature`).

    Raises:
        AutomixError: the aligned mix correlates less than :data:`MIN_CORRELATION` with its
            best fit from the stems (an unrelated mix, or stems of another song).
    """
    n = stems[0].shape[1]
    stem_sum = np.sum([s.mean(axis=0) for s in stems], axis=0)
    apart = sample_rate // 1000  # candidates are distinct peaks, at least 1 ms apart
    candidates = _candidate_lags(mix.mean(axis=0), stem_sum, int(max_lag_s * sample_rate), apart)
    turned = [_with_quadrature(s) for s in stems]
    scored = {c: _fit_correlation(turned, shift(mix, c, n)) for c in candidates}
    lag = _best_candidate(scored, apart)
    # The exact lag, within a few samples of the chosen peak: by a plain fit in the high band,
    # where filters barely turn the phase and a one-sample shift shows, if the stems explain
    # that band well; else by the phase-turning fit on the full band.
    around = range(lag - _LAG_REFINE, lag + _LAG_REFINE + 1)
    high, high_mix = _high_band(stems, mix, sample_rate)
    sharp = {d: _fit_correlation(high, shift(high_mix, d, n)) for d in around}
    if max(sharp.values()) >= _SHARP_FIT:
        lag = max(sharp, key=sharp.__getitem__)
    else:
        lag = max(around, key=lambda d: _fit_correlation(turned, shift(mix, d, n)))
    near = {lag: _fit_correlation(turned, shift(mix, lag, n))}
    correlation = near[lag]
    if correlation < MIN_CORRELATION:
        raise AutomixError(
            f"the mix does not look like a mix of these stems (best fit correlation {correlation:.2f} "
            f"< {MIN_CORRELATION:g}); check that the stems and the mix belong to the same song"
        )
    aligned = shift(mix, lag, n)
    inverted = _is_inverted(stems, aligned, sample_rate)
    return (-aligned if inverted else aligned), Alignment(lag, correlation, inverted)


def _best_candidate(scored: dict[int, float], apart: int) -> int:
    """The candidate lag of the highest fit correlation, unless a distinct peak (more than
    ``apart`` samples away) nearer 0 fits within :data:`_LAG_TIE` of it: periodic stems fit
    almost as well one period later, and a bounce from the same session is aligned."""
    best = max(scored, key=scored.__getitem__)
    rivals = [lag for lag, c in scored.items()
              if abs(lag - best) > apart and abs(lag) < abs(best) and c >= scored[best] - _LAG_TIE]
    return min(rivals, key=lambda lag: (abs(lag), lag)) if rivals else best
