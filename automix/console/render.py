"""Full-song block renderer: the console exactly as a DAW would run it.

Same signal flow and the same designed coefficients as the differentiable console
(:mod:`automix.console.torch_console`), designed here in NumPy (:mod:`automix.console.design`),
so rendering and finalizing never import torch. Rendered in time blocks with carried state, so
memory does not grow with song length:

* EQ: exact IIR filtering (scipy ``sosfilt``'s transposed direct form II, state carried across
  blocks) by a numba kernel (:mod:`automix.console.render_kernels`, with the other compiled
  loops) that runs up to four sections per pass with their states in registers, the trim gain,
  the float32 → float64 conversion and the compressor's detector fused in (sections that are
  exactly the identity, i.e. bands at 0 dB, are skipped); an automated band
  (:mod:`automix.console.eq_ride`) runs after the static sections, its coefficients on the
  song's grid of sub-blocks, and takes over the fused detector;
* compressor: :class:`automix.console.compressor.BlockCompressor` (same arithmetic as the torch
  path, state carried; skipped at ratio 1), its ballistics fused with fader, pan and make-up;
* reverb: uniformly partitioned FFT convolution (overlap-add, partition = ``block_size``)
  with the IR of :func:`automix.console.reverb.reverb_ir`;
* tracks run in groups of :data:`GROUP_TRACKS` on a thread pool (the numba kernels release the
  GIL), chunk by chunk so each track's buffers stay in cache, each group summing its own tracks;
  the main thread sums the groups, runs the reverb and the master bus of the previous block.
  The summation order never depends on ``workers``, so the output is bit-identical for any
  number of workers, and equal to rounding (≈ 1e-7 from the reverb's partitioning) for any
  ``block_size``.

Everything runs in float64 except the reverb's FFTs (float32); the result is float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import numpy as np

from automix.console.automation import RIDE_LANES, Lane, TrackRide, check_within, master_gain_curve
from automix.console.biquad import active_sections, eq_sos
from automix.console.compressor import COMPRESSOR_PARAMS, POWER_FLOOR, BlockCompressor
from automix.console.design import pan_matrix
from automix.console.eq_ride import EqRide, ridden_bands, without_ridden_gains
from automix.console.partitioned_convolution import PartitionedConvolver
from automix.console.render_kernels import (
    PASS_SECTIONS,
    _accumulate,
    _cascade_pair,
    _cascade_pass,
    _pass_coefficients,
)
from automix.console.reverb import reverb_ir
from automix.console.schema import FX, MASTER, TRACK, ParamGroup, db_to_amplitude, send_gain
from automix.console.settings import MixSettings
from automix.errors import AutomixError
from automix.io import ScratchAudio

GROUP_TRACKS = 4
"""Tracks one worker task renders and sums. The mix is always summed group by group (in track order
within a group, then the groups in order), so the output is bit-identical for any ``workers``."""

CHUNK_SAMPLES = 16384
"""Samples per strip call inside a block: a track's work buffers and the group's bus (≈ 1 MB)
stay in the core's L2 cache between the EQ, compressor and summing passes."""


class _Strip:
    """Gain → EQ → compressor of one track or the master, with state carried across blocks.

    ``eq_ride``: the strip's automated EQ bands; they run after the static sections (``params``
    then hold those bands at 0 dB, :func:`~automix.console.eq_ride.without_ridden_gains`), and the
    compressor's detector is fused into the last of them instead of the last static pass.

    Not thread safe: one block at a time. Work buffers are reused from block to block; the
    output buffers alternate, so a block's output stays valid while the next one is processed.
    """

    def __init__(self, params: np.ndarray, group: ParamGroup, channels: int, sample_rate: int,
                 eq_ride: EqRide | None = None) -> None:
        sos = active_sections(eq_sos(np.asarray(params, dtype=np.float64), group, sample_rate))
        self.eq_ride = eq_ride
        self.passes = [(coeffs, np.zeros((PASS_SECTIONS, channels, 2))) for coeffs in _pass_coefficients(sos)]
        settings = {k: float(params[group.index(f"compressor.{k}")]) for k in COMPRESSOR_PARAMS}
        self.compressor = BlockCompressor(settings, sample_rate)
        self.channels = channels
        self._work = np.empty((channels, 0))
        self._power = np.empty(0)
        self._outs: list[np.ndarray] = []
        self._calls = 0

    def _buffers(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._work.shape[1] < n:
            self._work = np.empty((self.channels, n))
            self._power = np.empty(n if self.compressor.active else 0)
            self._outs = [np.empty((2, n)), np.empty((2, n))]
        self._calls += 1
        power = self._power[:n] if self.compressor.active else self._power
        return self._work[:, :n], power, self._outs[self._calls % 2][:, :n]

    def process(self, x: np.ndarray, gain: float, matrix: np.ndarray, start: int = 0) -> np.ndarray:
        """``(C, n)`` → ``matrix @ compress(EQ(gain · x))`` as float64 ``(2, n)``.

        ``matrix`` ``(2, C)`` holds the static gains after the compressor (make-up included);
        ``x`` is samples ``start…`` of the song (where the automated EQ bands are on their
        schedule). The result is overwritten by the call after next.
        """
        y, power, out = self._buffers(x.shape[1])
        comp = self.compressor
        ride = self.eq_ride
        for k, (sos, zi) in enumerate(self.passes):
            # The detector must see the EQ's final output: the last static pass, or the ridden bands.
            detect = k == len(self.passes) - 1 and ride is None
            _cascade_pass(x if k == 0 else y, gain if k == 0 else 1.0, sos, zi, y, comp.det_c, comp.state,
                          power if detect else power[:0], POWER_FLOOR)
        if ride is not None:
            ride.filter(y, start, comp.det_c, comp.state, power, POWER_FLOOR)
        return self._finish(y, power, matrix, out)

    def _finish(self, y: np.ndarray, power: np.ndarray, matrix: np.ndarray, out: np.ndarray) -> np.ndarray:
        return self.compressor.apply(y, matrix, out=out, power=power if self.compressor.active else None)

    def pairs_with(self, other: _Strip) -> bool:
        """Both mono with as many EQ passes and no automated band: :func:`_process_pair` can run
        them together."""
        return (self.channels == other.channels == 1 and len(self.passes) == len(other.passes)
                and self.eq_ride is None and other.eq_ride is None)


def _process_pair(a: _Strip, b: _Strip, xa: np.ndarray, xb: np.ndarray, gain_a: float, gain_b: float,
                 matrix_a: np.ndarray, matrix_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(a.process(xa, …), b.process(xb, …))`` for two strips that :meth:`_Strip.pairs_with` each
    other, with their EQ passes run by one kernel (bit-identical, faster)."""
    ya, power_a, out_a = a._buffers(xa.shape[1])
    yb, power_b, out_b = b._buffers(xb.shape[1])
    det_c = a.compressor.det_c  # the detector time constant is fixed: equal for every strip
    for k, ((sos_a, zi_a), (sos_b, zi_b)) in enumerate(zip(a.passes, b.passes)):
        first, last = k == 0, k == len(a.passes) - 1
        _cascade_pair(xa if first else ya, xb if first else yb, gain_a if first else 1.0, gain_b if first else 1.0,
                      sos_a, sos_b, zi_a, zi_b, ya, yb, det_c, a.compressor.state, b.compressor.state,
                      power_a if last else power_a[:0], power_b if last else power_b[:0], POWER_FLOOR)
    return a._finish(ya, power_a, matrix_a, out_a), b._finish(yb, power_b, matrix_b, out_b)


class _Track:
    def __init__(self, stem: np.ndarray | BlockSource, params: np.ndarray, sample_rate: int,
                 lanes: dict[str, Lane] | None = None) -> None:
        self.read = (lambda a, b: stem[:, a:b]) if isinstance(stem, np.ndarray) else stem.read
        channels = _channels(stem)
        self.trim = float(db_to_amplitude(float(params[TRACK.index("trim_db")])))
        lanes = lanes or {}
        eq_ride = EqRide(lanes, params, TRACK, channels, sample_rate) if ridden_bands(lanes) else None
        self.strip = _Strip(without_ridden_gains(params, lanes, TRACK), TRACK, channels, sample_rate, eq_ride)
        matrix = pan_matrix(np.asarray(params, dtype=np.float64), np.array(channels == 2))
        # Fader, pan and the compressor's make-up are all static gains after the compressor.
        self.matrix = np.ascontiguousarray(matrix[:, :channels] * self.strip.compressor.makeup)
        self.send = float(send_gain(float(params[TRACK.index("send.reverb_db")])))
        ride_lanes = {name: lane for name, lane in lanes.items() if name in RIDE_LANES}
        self.ride = TrackRide(ride_lanes, params, channels, sample_rate) if ride_lanes else None
        if self.ride is not None and self.ride.rides_matrix:  # fader and pan follow per sample
            self.matrix = self.ride.strip_matrix(self.strip.compressor.makeup)

    @property
    def sends(self) -> bool:
        return self.ride.ever_sends if self.ride is not None else self.send != 0.0

    def finish(self, y: np.ndarray, start: int, bus: np.ndarray, send: np.ndarray, first: bool) -> np.ndarray:
        """Add the strip's output ``y`` (samples ``start…``) to the bus and the send; returns the
        track after pan (``y`` itself unless it is automated)."""
        ride = self.ride
        if ride is None:
            _accumulate(bus, send, y, self.send, first)
            return y
        if ride.rides_matrix:
            y = ride.apply(y, start)
        curve = ride.send(start, y.shape[1])
        if curve is None:
            _accumulate(bus, send, y, self.send, first)
            return y
        _accumulate(bus, send[:, :0], y, 0.0, first)
        if send.size:
            if first:
                np.multiply(y, curve, out=send)
            else:
                send += y * curve
        return y


class _Group:
    """Consecutive tracks that one task renders and sums, block by block.

    A block is processed in chunks of :data:`CHUNK_SAMPLES`; within a chunk every track runs its
    strip and is added to the group's bus and reverb send at once, while both are still in cache.
    Buses and sends are stored chunk by chunk, ``(chunks, 2, CHUNK_SAMPLES)``, so every chunk is a
    contiguous array (the compiled kernels are faster on those). Buffers alternate between two
    sets, so the main thread can read block ``b`` while the group renders block ``b + 1``.
    """

    def __init__(self, tracks: list[_Track], block_size: int, with_send: bool, keep_tracks: bool) -> None:
        self.tracks = tracks
        # Runs of consecutive tracks processed together: pairs of similar mono strips, else singles.
        self.units: list[list[int]] = []
        j = 0
        while j < len(tracks):
            pair = j + 1 < len(tracks) and tracks[j].strip.pairs_with(tracks[j + 1].strip)
            self.units.append([j, j + 1] if pair else [j])
            j += 2 if pair else 1
        chunks = -(-block_size // CHUNK_SAMPLES)
        width = min(block_size, CHUNK_SAMPLES)
        self.buses = [np.empty((chunks, 2, width)) for _ in range(2)]
        self.sends = [np.empty((chunks, 2, width if with_send else 0)) for _ in range(2)]
        self.kept = [[np.empty((2, block_size), dtype=np.float32) for _ in tracks] if keep_tracks else []
                     for _ in range(2)]

    def process(self, parity: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Render ``[start, stop)``: ``(buses, sends, tracks)``, valid until block + 2 starts.

        ``buses``/``sends``: ``(chunks, 2, CHUNK_SAMPLES)`` (chunk ``k`` holds samples
        ``start + k·CHUNK_SAMPLES …``; the last one may be partly used); ``tracks``: ``(2, n)`` float32.
        """
        n = stop - start
        buses, sends = self.buses[parity], self.sends[parity]
        kept = [k[:, :n] for k in self.kept[parity]]
        inputs = [t.read(start, stop) for t in self.tracks]
        for k, a in enumerate(range(0, n, CHUNK_SAMPLES)):
            b = min(a + CHUNK_SAMPLES, n)
            bus, send = buses[k][:, : b - a], sends[k][:, : b - a]
            for unit in self.units:
                if len(unit) == 2:
                    t, u = self.tracks[unit[0]], self.tracks[unit[1]]
                    ys = _process_pair(t.strip, u.strip, inputs[unit[0]][:, a:b], inputs[unit[1]][:, a:b], t.trim,
                                      u.trim, t.matrix, u.matrix)
                else:
                    t = self.tracks[unit[0]]
                    ys = (t.strip.process(inputs[unit[0]][:, a:b], t.trim, t.matrix, start + a),)
                for j, y in zip(unit, ys):  # in track order
                    y = self.tracks[j].finish(y, start + a, bus, send, j == 0)
                    if kept:
                        kept[j][:, a:b] = y
        return buses, sends, kept


class BlockSource(Protocol):
    """A stem read block by block (e.g. :class:`automix.io.StemFile`)."""

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
    lanes = {f"tracks[{name!r}]": settings.automation[name] for name in settings.track_names
             if name in settings.automation}
    check_within({**lanes, "master": settings.master_automation}, int(n) / sample_rate)
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
    fx_sink: Callable[[np.ndarray], None] | None = None,
) -> np.ndarray | ScratchAudio | tuple[np.ndarray | ScratchAudio, list[np.ndarray]]:
    """Render the console for a whole song (before finalize).

    Args:
        stems: float arrays ``(channels, samples)``, channels 1 or 2, equal lengths, in
            ``settings.track_names`` order; or :class:`BlockSource` objects (streamed from disk).
        out: where the mix goes: a ``(2, N)`` array or a :class:`ScratchAudio` on disk
            (default: a new float32 array). It is also what is returned.
        track_sinks: one callable per track, called with each consecutive ``(2, n)`` float32
            block of that track after pan (e.g. an :class:`automix.io.AudioWriter`'s ``write``),
            so processed stems can be written without holding them.
        fx_sink: called like a track sink with each block of the reverb return (after its
            return level, before the master bus; zeros when no track sends). The tracks and the
            return sum to the master bus input, so a DAW can finish the mix from them.
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
    tracks = [_Track(s, settings.track[i], sample_rate, settings.automation.get(name))
              for i, (s, name) in enumerate(zip(stems, settings.track_names))]
    master = _Strip(settings.master, MASTER, 2, sample_rate)
    # A lane on the master gain replaces its static value (applied per sample after the strip).
    static_amp = 1.0 if "gain_db" in settings.master_automation else float(
        db_to_amplitude(float(settings.master[MASTER.index("gain_db")])))
    master_matrix = np.eye(2) * (master.compressor.makeup * static_amp)
    return_amp = float(send_gain(float(settings.fx[FX.index("reverb.return_db")])))
    reverb = None
    if return_amp != 0.0 and any(t.sends for t in tracks):
        ir = reverb_ir(np.asarray(settings.fx, dtype=np.float64)[None], sample_rate)[0]
        reverb = PartitionedConvolver(ir * return_amp, block_size, threads=min(workers, 2))

    if track_sinks is not None and len(track_sinks) != len(tracks):
        raise AutomixError(f"render: {len(track_sinks)} track sinks for {len(tracks)} tracks")
    mix = np.empty((2, n), dtype=np.float32) if out is None else out
    if tuple(mix.shape) != (2, n):
        raise AutomixError(f"render: out must have shape (2, {n}), got {tuple(mix.shape)}")
    track_out = [np.empty((2, n), dtype=np.float32) for _ in tracks] if return_tracks else []
    block = min(block_size, n)
    keep = return_tracks or track_sinks is not None
    groups = [_Group(tracks[g:g + GROUP_TRACKS], block, reverb is not None, keep)
              for g in range(0, len(tracks), GROUP_TRACKS)]
    mixed = np.empty((2, block), dtype=np.float32)
    starts = list(range(0, n, block_size))
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None

    def launch(b: int) -> list[Future] | list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
        start = starts[b]
        stop = min(start + block_size, n)
        if pool is None or b == 0:
            # The first block runs on this thread, so the compiled kernels are loaded (or
            # compiled) once here rather than by several workers at the same time.
            return [g.process(b % 2, start, stop) for g in groups]
        return [pool.submit(g.process, b % 2, start, stop) for g in groups]

    try:
        pending = launch(0) if starts else []
        for b, start in enumerate(starts):
            stop = min(start + block_size, n)
            outs = [r.result() if isinstance(r, Future) else r for r in pending]
            if b + 1 < len(starts):
                pending = launch(b + 1)  # workers start the next block while we mix this one
            m = stop - start
            chunks = [(k, a, min(a + CHUNK_SAMPLES, m)) for k, a in enumerate(range(0, m, CHUNK_SAMPLES))]
            buses, sends, _ = outs[0]
            for k, a, c in chunks:  # fixed order: bit-identical for any worker count
                for other_buses, other_sends, _ in outs[1:]:
                    buses[k][:, : c - a] += other_buses[k][:, : c - a]
                    if reverb is not None:
                        sends[k][:, : c - a] += other_sends[k][:, : c - a]
                if reverb is not None:
                    reverb.input(m)[:, a:c] = sends[k][:, : c - a]
            if keep:
                for i, track in enumerate(t for _, _, kept in outs for t in kept):
                    if return_tracks:
                        track_out[i][:, start:stop] = track
                    if track_sinks is not None:
                        track_sinks[i](track.copy())
            wet = reverb.process_input(m) if reverb is not None else None
            if fx_sink is not None:
                fx_sink(wet[:, :m].copy() if wet is not None else np.zeros((2, m), dtype=np.float32))
            for k, a, c in chunks:
                bus = buses[k][:, : c - a]
                if wet is not None:
                    bus += wet[:, a:c]
                mixed[:, a:c] = master.process(bus, 1.0, master_matrix)
                ridden = master_gain_curve(settings.master_automation, start + a, c - a, sample_rate)
                if ridden is not None:
                    mixed[:, a:c] *= ridden
            if isinstance(mix, ScratchAudio):
                mix.write(start, mixed[:, :m])
            else:
                mix[:, start:stop] = mixed[:, :m]
            if progress is not None:
                progress(stop / n)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return (mix, track_out) if return_tracks else mix
