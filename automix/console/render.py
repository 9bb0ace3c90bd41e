"""Full-song block renderer: the console exactly as a DAW would run it.

Same signal flow and the same designed coefficients as the differentiable console
(:mod:`automix.console.torch_console`), but rendered in time blocks with carried state so
memory does not grow with song length:

* EQ: exact IIR filtering, ``zi`` carried across blocks, by a small numba kernel that is
  :func:`scipy.signal.sosfilt`'s transposed direct form II with the trim gain and the
  float32 → float64 conversion fused in (sections that are exactly the identity, i.e. bands
  at 0 dB, are skipped);
* compressor: the numba kernel of :class:`automix.console.compressor.BlockCompressor`
  (same arithmetic as the torch path, state carried; skipped at ratio 1);
* reverb: uniformly partitioned FFT convolution (overlap-add, partition = ``block_size``)
  with the IR of :func:`automix.console.reverb.reverb_ir`;
* tracks of a block run on a thread pool (the numba kernels release the GIL) while the
  main thread runs the master bus of the previous block. Tracks are always
  summed in track order, so the output is bit-identical for any ``workers``.

Everything runs in float64; the result is float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import numba
import numpy as np
import scipy.fft
import torch

from automix.console.biquad import active_sections, eq_sos, sos_to_numpy
from automix.console.compressor import COMPRESSOR_PARAMS, BlockCompressor
from automix.console.reverb import reverb_ir
from automix.console.schema import FX, MASTER, TRACK, ParamGroup, db_to_amplitude, send_gain
from automix.console.settings import MixSettings
from automix.console.torch_console import pan_matrix
from automix.errors import AutomixError
from automix.io.audio import ScratchAudio


@numba.njit(nogil=True, cache=True)
def _gain_and_sos(x, gain, sos, zi, out):
    """``out = sosfilt(sos, gain · x)`` per channel (transposed direct form II, like scipy).

    ``x`` ``(C, n)`` float32/64, ``sos`` ``(S, 6)``, ``zi`` ``(S, C, 2)`` updated in place,
    ``out`` ``(C, n)`` float64. Fusing the gain and the dtype conversion saves two passes.
    """
    sections = sos.shape[0]
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            v = gain * x[c, i]
            for s in range(sections):
                y = sos[s, 0] * v + zi[s, c, 0]
                zi[s, c, 0] = sos[s, 1] * v - sos[s, 4] * y + zi[s, c, 1]
                zi[s, c, 1] = sos[s, 2] * v - sos[s, 5] * y
                v = y
            out[c, i] = v


@numba.njit(nogil=True, cache=True)
def _accumulate(bus, send, track, send_amp):
    """``bus += track`` and ``send += send_amp · track`` in one pass over ``(2, n)`` arrays."""
    for c in range(track.shape[0]):
        for i in range(track.shape[1]):
            v = track[c, i]
            bus[c, i] += v
            send[c, i] += send_amp * v


class _Strip:
    """Gain → EQ → compressor of one track or the master, with state carried across blocks."""

    def __init__(self, params: np.ndarray, group: ParamGroup, channels: int, sample_rate: int) -> None:
        sos = eq_sos(torch.as_tensor(params, dtype=torch.float64), group, sample_rate)
        self.sos = np.ascontiguousarray(active_sections(sos_to_numpy(sos)))
        self.zi = np.zeros((self.sos.shape[0], channels, 2))
        settings = {k: float(params[group.index(f"compressor.{k}")]) for k in COMPRESSOR_PARAMS}
        self.compressor = BlockCompressor(settings, sample_rate)

    def process(self, x: np.ndarray, gain: float, matrix: np.ndarray) -> np.ndarray:
        """``(C, n)`` → ``matrix @ compress(EQ(gain · x))`` as float64 ``(2, n)``.

        ``matrix`` ``(2, C)`` holds the static gains after the compressor (make-up included).
        """
        y = np.empty(x.shape, dtype=np.float64)
        _gain_and_sos(x, gain, self.sos, self.zi, y)
        return self.compressor.apply(y, matrix)


class _Track:
    def __init__(self, stem: np.ndarray | BlockSource, params: np.ndarray, sample_rate: int) -> None:
        self.read = (lambda a, b: stem[:, a:b]) if isinstance(stem, np.ndarray) else stem.read
        channels = _channels(stem)
        self.trim = float(db_to_amplitude(float(params[TRACK.index("trim_db")])))
        self.strip = _Strip(params, TRACK, channels, sample_rate)
        matrix = pan_matrix(
            torch.as_tensor(params, dtype=torch.float64)[None, None], torch.tensor([[channels == 2]])
        )[0, 0].numpy()
        # Fader, pan and the compressor's make-up are all static gains after the compressor.
        self.matrix = np.ascontiguousarray(matrix[:, :channels] * self.strip.compressor.makeup)
        self.send = float(send_gain(float(params[TRACK.index("send.reverb_db")])))

    def process(self, start: int, stop: int) -> np.ndarray:
        return self.strip.process(self.read(start, stop), self.trim, self.matrix)


class _PartitionedConvolver:
    """Stereo uniformly-partitioned overlap-add convolution, channel by channel.

    The IR is cut into ``K`` partitions of ``P`` samples whose spectra (FFT size ``2P``) multiply
    a delay line of the last ``K`` input-block spectra; each output block is the first half of
    the inverse FFT plus the second half carried over from the previous block.
    """

    def __init__(self, ir: np.ndarray, partition: int) -> None:
        self.p = partition
        k = -(-ir.shape[-1] // partition)
        padded = np.zeros((ir.shape[0], k * partition))
        padded[:, : ir.shape[-1]] = ir
        parts = padded.reshape(ir.shape[0], k, partition).transpose(1, 0, 2)  # (K, 2, P)
        # complex64: the wet signal is a fraction of the mix, and single precision halves the FFT cost.
        self.ir_spectra = scipy.fft.rfft(parts.astype(np.float32), n=2 * partition, axis=-1)
        self.history = np.zeros_like(self.ir_spectra)  # ring buffer of input spectra
        self.head = 0
        self.overlap = np.zeros((ir.shape[0], partition), dtype=np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        """``(2, n)`` with ``n ≤ P`` (only the last block may be short) → ``(2, n)`` wet signal."""
        n = x.shape[-1]
        k = self.history.shape[0]
        self.head = (self.head + 1) % k
        self.history[self.head] = scipy.fft.rfft(x.astype(np.float32), n=2 * self.p, axis=-1)
        acc = self.history[self.head] * self.ir_spectra[0]
        for j in range(1, k):
            acc += self.history[(self.head - j) % k] * self.ir_spectra[j]
        y = scipy.fft.irfft(acc, n=2 * self.p, axis=-1)
        out = y[:, : self.p] + self.overlap
        self.overlap = y[:, self.p:]
        return out[:, :n]


class BlockSource(Protocol):
    """A stem read block by block (e.g. :class:`automix.io.audio.StemFile`)."""

    channels: int
    frames: int

    def read(self, start: int, stop: int) -> np.ndarray: ...


def _channels(stem: np.ndarray | BlockSource) -> int:
    return int(stem.shape[0]) if isinstance(stem, np.ndarray) else int(stem.channels)


def _frames(stem: np.ndarray | BlockSource) -> int:
    return int(stem.shape[1]) if isinstance(stem, np.ndarray) else int(stem.frames)


def _validate(stems: Sequence[np.ndarray | BlockSource], sample_rate: int, settings: MixSettings,
              block_size: int, workers: int) -> int:
    if len(stems) == 0:
        raise AutomixError("render: no stems given")
    if len(stems) != len(settings.track_names):
        raise AutomixError(f"render: {len(stems)} stems but the settings have {len(settings.track_names)} tracks")
    if settings.track.shape != (len(stems), len(TRACK)):
        raise AutomixError(f"render: settings.track must be {(len(stems), len(TRACK))}, got {settings.track.shape}")
    n = None
    for name, stem in zip(settings.track_names, stems):
        is_array = isinstance(stem, np.ndarray) and stem.ndim == 2
        if not (is_array or hasattr(stem, "read")) or _channels(stem) not in (1, 2):
            raise AutomixError(f"render: stem {name!r} must be a (channels, samples) array with 1 or 2 channels")
        if n is not None and _frames(stem) != n:
            raise AutomixError(f"render: stem {name!r} has {_frames(stem)} samples, expected {n}")
        n = _frames(stem)
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AutomixError(f"render: sample rate must be a positive integer, got {sample_rate!r}")
    if block_size < 1 or workers < 1:
        raise AutomixError("render: block_size and workers must be at least 1")
    return int(n)


def render_console(
    stems: Sequence[np.ndarray | BlockSource],
    sample_rate: int,
    settings: MixSettings,
    *,
    block_size: int = 65536,
    workers: int = 2,
    return_tracks: bool = False,
    progress: Callable[[float], None] | None = None,
    out: np.ndarray | ScratchAudio | None = None,
    track_sinks: Sequence[Callable[[np.ndarray], None]] | None = None,
) -> np.ndarray | ScratchAudio | tuple[np.ndarray | ScratchAudio, list[np.ndarray]]:
    """Render the console for a whole song (before finalize).

    Args:
        stems: float arrays ``(channels, samples)``, channels 1 or 2, equal lengths, in
            ``settings.track_names`` order; or :class:`BlockSource` objects (streamed from disk).
        out: where the mix goes: a ``(2, N)`` array or a :class:`ScratchAudio` on disk
            (default: a new float32 array). It is also what is returned.
        track_sinks: one callable per track, called with each consecutive ``(2, n)`` float32
            block of that track after pan (e.g. an :class:`automix.io.audio.AudioWriter`'s ``write``),
            so processed stems can be written without holding them.
        sample_rate: Hz.
        settings: physical console settings.
        block_size: samples per processing block (also the reverb partition size).
        workers: threads processing tracks in parallel (1 = all on the calling thread).
        return_tracks: also return every track after pan, ``(2, N)`` float32 each.
        progress: called with the rendered fraction in (0, 1] after each block.

    Returns:
        The mix ``(2, N)`` float32, or ``(mix, tracks)`` with ``return_tracks``.
    """
    n = _validate(stems, sample_rate, settings, block_size, workers)
    tracks = [_Track(s, settings.track[i], sample_rate) for i, s in enumerate(stems)]
    master = _Strip(settings.master, MASTER, 2, sample_rate)
    master_gain = master.compressor.makeup * float(db_to_amplitude(float(settings.master[MASTER.index("gain_db")])))
    master_matrix = np.eye(2) * master_gain
    return_amp = float(send_gain(float(settings.fx[FX.index("reverb.return_db")])))
    reverb = None
    if return_amp != 0.0 and any(t.send != 0.0 for t in tracks):
        with torch.no_grad():
            ir = reverb_ir(torch.as_tensor(settings.fx, dtype=torch.float64)[None], sample_rate)[0].numpy()
        reverb = _PartitionedConvolver(ir * return_amp, block_size)

    if track_sinks is not None and len(track_sinks) != len(tracks):
        raise AutomixError(f"render: {len(track_sinks)} track sinks for {len(tracks)} tracks")
    mix = np.empty((2, n), dtype=np.float32) if out is None else out
    if tuple(mix.shape) != (2, n):
        raise AutomixError(f"render: out must have shape (2, {n}), got {tuple(mix.shape)}")
    track_out = [np.empty((2, n), dtype=np.float32) for _ in tracks] if return_tracks else []
    starts = list(range(0, n, block_size))
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None

    def launch(start: int) -> list[Future] | list[np.ndarray]:
        stop = min(start + block_size, n)
        if pool is None:
            return [t.process(start, stop) for t in tracks]
        return [pool.submit(t.process, start, stop) for t in tracks]

    try:
        pending = launch(starts[0]) if starts else []
        for b, start in enumerate(starts):
            stop = min(start + block_size, n)
            outs = [r.result() if isinstance(r, Future) else r for r in pending]
            if b + 1 < len(starts):
                pending = launch(starts[b + 1])  # workers start the next block while we mix this one
            bus = np.zeros((2, stop - start))
            send = np.zeros((2, stop - start))
            for i, track in enumerate(outs):  # fixed order: bit-identical for any worker count
                _accumulate(bus, send, track, tracks[i].send if reverb is not None else 0.0)
                if return_tracks:
                    track_out[i][:, start:stop] = track
                if track_sinks is not None:
                    track_sinks[i](track.astype(np.float32))
            if reverb is not None:
                bus += reverb.process(send)
            mixed = master.process(bus, 1.0, master_matrix)
            if isinstance(mix, ScratchAudio):
                mix.write(start, mixed)
            else:
                mix[:, start:stop] = mixed
            if progress is not None:
                progress(stop / n)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return (mix, track_out) if return_tracks else mix
