"""Float32 audio kept in an anonymous temporary file instead of memory (:class:`ScratchAudio`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Self

import numpy as np

from automix.errors import AutomixError


class ScratchAudio:
    """Float32 ``(channels, frames)`` audio in an anonymous temporary file (deleted on close).

    Blocks go through ``os.pread``/``os.pwrite`` (interleaved frames), so only the blocks in
    use are in memory; the page cache holds the rest and is not counted in the process's RSS.
    Reads outside ``[0, frames)`` return zeros, so callers can read with context margins.
    """

    def __init__(self, channels: int, frames: int, folder: str | Path | None = None) -> None:
        self.channels, self.frames = int(channels), int(frames)
        self._file = tempfile.TemporaryFile(prefix="automix-scratch-", dir=folder)  # noqa: SIM115 - closed by close()
        self._fd = self._file.fileno()
        os.ftruncate(self._fd, self.frames * self.channels * 4)

    @property
    def shape(self) -> tuple[int, int]:
        return self.channels, self.frames

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` as float32 ``(channels, stop - start)``, zeros outside the audio."""
        out = np.zeros((self.channels, max(stop - start, 0)), dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.frames)
        if hi > lo:
            width = self.channels * 4
            data = os.pread(self._fd, (hi - lo) * width, lo * width)
            out[:, lo - start:hi - start] = np.frombuffer(data, dtype=np.float32).reshape(hi - lo, self.channels).T
        return out

    def write(self, start: int, block: np.ndarray) -> None:
        """Store float ``(channels, n)`` samples at ``[start, start + n)``."""
        if block.shape[0] != self.channels or start < 0 or start + block.shape[1] > self.frames:
            raise ValueError(f"block {block.shape} at {start} does not fit {self.shape}")
        data = np.ascontiguousarray(block.T, dtype=np.float32).tobytes()
        written = os.pwrite(self._fd, data, start * self.channels * 4)
        if written != len(data):
            raise AutomixError(f"scratch file: short write ({written} of {len(data)} bytes); is the disk full?")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
