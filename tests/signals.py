"""Test signals generated in the tests themselves: the one sine generator every test file uses."""

from __future__ import annotations

import numpy as np

SR = 44100


def sine(freq_hz: float, seconds: float, *, amplitude: float = 0.5, sr: int = SR, channels: int | None = None,
         phase: float = 0.0, dtype: type = np.float32) -> np.ndarray:
    """``amplitude · sin(2π f t + phase)`` for ``seconds`` at ``sr`` Hz: ``(n,)``, or ``(channels, n)``
    (the same signal in each channel) when ``channels`` is given. ``n = round(seconds · sr)``."""
    t = np.arange(round(seconds * sr)) / sr
    x = amplitude * np.sin(2 * np.pi * freq_hz * t + phase)
    return (x if channels is None else np.tile(x, (channels, 1))).astype(dtype)
