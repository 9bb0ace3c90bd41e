"""Sample-rate conversion with one polyphase Kaiser-windowed filter, whole or block by block.

:func:`resample` converts a whole signal, :func:`resample_blocks` a long one block by block with
the same output, and :func:`choose_sample_rate` picks the rate a session uses when none is asked.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

RESAMPLER_KAISER_BETA = 8.6
"""Kaiser window shape for ``resample_poly``: about 90 dB stop-band rejection (scipy's
default of 5 gives about 55 dB, audible as aliasing on bright material)."""

STREAM_BLOCK_SAMPLES = 1 << 18
"""Samples per block when validating, resampling or reading stems from disk."""


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample float32 ``(channels, samples)`` from ``from_hz`` to ``to_hz`` (polyphase, Kaiser).

    The output length is ``ceil(samples * to_hz / from_hz)``.
    """
    if from_hz == to_hz:
        return audio
    g = math.gcd(int(from_hz), int(to_hz))
    up, down = int(to_hz) // g, int(from_hz) // g
    from scipy.signal import resample_poly  # a second to import; only sessions that resample pay it

    out = resample_poly(audio.astype(np.float64), up, down, axis=-1, window=("kaiser", RESAMPLER_KAISER_BETA))
    return out.astype(np.float32)


def resample_blocks(read: Callable[[int, int], np.ndarray], frames: int, from_hz: int, to_hz: int,
                    write: Callable[[int, np.ndarray], None], block: int = STREAM_BLOCK_SAMPLES) -> int:
    """Resample a long signal block by block with :func:`resample`'s filter; returns the output length.

    Each block is resampled with enough input context on both sides (a whole number of
    ``down`` steps, beyond the filter's half-length) that its interior equals the same part of
    a whole-signal :func:`resample`. ``read(start, stop)`` must return zeros outside the signal;
    ``write(start, block)`` receives consecutive output blocks.
    """
    g = math.gcd(int(from_hz), int(to_hz))
    up, down = int(to_hz) // g, int(from_hz) // g
    from scipy.signal import resample_poly

    margin = down * math.ceil((10 * max(up, down) / up + 2) / down)  # resample_poly's half-length, rounded up
    step = down * max(1, block // down)
    total = -(-frames * up // down)
    for start in range(0, frames, step):
        chunk = read(start - margin, start + step + margin)
        y = resample_poly(chunk.astype(np.float64), up, down, axis=-1, window=("kaiser", RESAMPLER_KAISER_BETA))
        first = start * up // down
        last = min(total, (start + step) * up // down)
        offset = margin * up // down
        write(first, y[:, offset:offset + last - first].astype(np.float32))
    return total


def choose_sample_rate(rates: Iterable[int]) -> int:
    """The most common rate; ties go to the higher rate (never throw detail away)."""
    counts = Counter(rates)
    return max(counts, key=lambda r: (counts[r], r))
