"""The limiter's gain computer, compiled: per sample, look-ahead minimum, exponential release, moving average."""

from __future__ import annotations

import math

import numba
import numpy as np

_DB_PER_NEPER = 20.0 / math.log(10.0)  # amplitude dB = _DB_PER_NEPER * ln(ratio)


@numba.njit(cache=True, nogil=True)
def limiter_gains(
    env: np.ndarray, gain: float, ceiling: float, decay: float, ring: np.ndarray, state: np.ndarray,
    out: np.ndarray,
) -> float:  # pragma: no cover - compiled
    """Limiter gain for one chunk of ``n = out.size`` samples; returns the smallest gain.

    Args:
        env: ``(n + L,)`` interval peaks of the input from one sample before the chunk to
            ``L - 1`` after it (``L = ring.size``, the look-ahead), before ``gain``.
        gain: linear gain in front of the limiter.
        ceiling: linear ceiling.
        decay: per-sample decay factor of the gain reduction in dB (the release).
        ring: the last ``L`` released gains (moving-average window), carried between chunks.
        state: ``[reduction_db, ring position]`` carried between chunks.
        out: receives the smoothed gain per sample.
    """
    n = out.shape[0]
    length = ring.shape[0]
    m = n + length - 1
    need = np.empty(m)
    for j in range(m):  # gain each sample needs; it is the peak of both intervals around it
        peak = max(env[j], env[j + 1]) * gain
        need[j] = ceiling / peak if peak > ceiling else 1.0
    queue = np.empty(m, np.int64)  # monotonic queue: running minimum of need over [i, i + L - 1]
    head = 0
    tail = 0
    reduction_db = state[0]
    pos = int(state[1])
    total = 0.0
    for k in range(length):
        total += ring[k]
    smallest = 1.0
    for j in range(m):
        value = need[j]
        while tail > head and need[queue[tail - 1]] >= value:
            tail -= 1
        queue[tail] = j
        tail += 1
        i = j - length + 1
        if i < 0:
            continue
        while queue[head] < i:
            head += 1
        ahead = need[queue[head]]
        # Release: the reduction in dB decays exponentially unless the look-ahead asks for more.
        reduction_db *= decay
        if ahead < 1.0:
            reduction_db = max(reduction_db, -_DB_PER_NEPER * math.log(ahead))
        if reduction_db < 1e-9:
            reduction_db = 0.0
            released = 1.0
        else:
            released = math.exp(-reduction_db / _DB_PER_NEPER)
        # Moving average over the look-ahead length: every gain in the window is low enough for
        # the peak at the window's end, so their mean is too.
        total += released - ring[pos]
        ring[pos] = released
        pos = pos + 1 if pos + 1 < length else 0
        smooth = min(1.0, total / length)
        out[i] = smooth
        smallest = min(smallest, smooth)
    state[0] = reduction_db
    state[1] = pos
    return smallest
