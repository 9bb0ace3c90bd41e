"""Uniformly partitioned FFT convolution: a long reverb impulse response applied block by block."""

from __future__ import annotations

import numpy as np
import scipy.fft

from automix.console.render_kernels import _multiply_accumulate


class PartitionedConvolver:
    """Stereo uniformly-partitioned overlap-add convolution, channel by channel.

    The IR is cut into ``K`` partitions of ``P`` samples whose spectra (FFT size ``2P``) multiply
    a delay line of the last ``K`` input-block spectra; each output block is the first half of
    the inverse FFT plus the second half carried over from the previous block.
    """

    def __init__(self, ir: np.ndarray, partition: int, threads: int = 1) -> None:
        self.p = partition
        # The two channels' FFTs are independent: with threads > 1 they run in parallel (same
        # result), shortening the main thread's serial work per block.
        self.threads = threads
        k = -(-ir.shape[-1] // partition)
        padded = np.zeros((ir.shape[0], k * partition))
        padded[:, : ir.shape[-1]] = ir
        parts = padded.reshape(ir.shape[0], k, partition).transpose(1, 0, 2)  # (K, 2, P)
        # complex64: the wet signal is a fraction of the mix, and single precision halves the FFT cost.
        self.ir_spectra = np.ascontiguousarray(scipy.fft.rfft(parts.astype(np.float32), n=2 * partition, axis=-1))
        self.history = np.zeros_like(self.ir_spectra)  # ring buffer of input spectra
        self.head = 0
        self.acc = np.empty_like(self.ir_spectra[0])
        self.frame = np.zeros((ir.shape[0], 2 * partition), dtype=np.float32)  # input block, zero padded
        self.overlap = np.zeros((ir.shape[0], partition), dtype=np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        """``(2, n)`` with ``n ≤ P`` (only the last block may be short) → ``(2, n)`` float32 wet signal."""
        self.input(x.shape[-1])[:] = x
        return self.process_input(x.shape[-1])

    def input(self, n: int) -> np.ndarray:
        """The ``(2, n)`` float32 buffer the next input block goes in (fill it, then :meth:`process_input`)."""
        return self.frame[:, :n]

    def process_input(self, n: int) -> np.ndarray:
        """Convolve the block of ``n`` samples written to :meth:`input` → ``(2, n)`` float32 wet signal."""
        self.head = (self.head + 1) % self.history.shape[0]
        self.frame[:, n:self.p] = 0.0
        self.history[self.head] = scipy.fft.rfft(self.frame, axis=-1, workers=self.threads)
        _multiply_accumulate(self.history, self.head, self.ir_spectra, self.acc)
        y = scipy.fft.irfft(self.acc, n=2 * self.p, axis=-1, workers=self.threads)
        out = y[:, : self.p] + self.overlap
        self.overlap = y[:, self.p:]
        return out[:, :n]
