"""Gain-reduction metering: how much a strip's compressor turns a signal down, sample by sample.

A ``mix.json`` holds settings, not measurements; an engineer reads a compressor by its meter.
This runs the strip's own signal path up to and including the compressor's gain computer, with
the renderer's arithmetic (trim → the console's EQ sections → :class:`BlockCompressor`), so the
meter shows what :func:`automix.console.render.render_console` applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal

from automix.console.biquad import active_sections, eq_sos
from automix.console.compressor import COMPRESSOR_PARAMS, BlockCompressor
from automix.console.schema import ParamGroup, db_to_amplitude

METER_FRAME_MS = 10.0
"""Frame of the gain-reduction curve: a meter's refresh (the most reduction within each frame)."""

PRESENT_DB = -60.0
"""A frame counts towards the mean reduction only where the compressor's input is above this
(dBFS peak): the compressor of a track that rests is not "working less" during its rests."""


@dataclass(frozen=True)
class GainReduction:
    """A compressor's measured gain reduction.

    Attributes:
        curve_db: most reduction per :data:`METER_FRAME_MS` frame, ``(frames,)``, ≥ 0 dB.
        frame_s: frame length in seconds.
        mean_db: mean of ``curve_db`` over frames where the input is present (0 if never).
        max_db: the largest reduction (dB, ≥ 0).
    """

    curve_db: np.ndarray
    frame_s: float
    mean_db: float
    max_db: float


def compressor_input(audio: np.ndarray, params: np.ndarray, group: ParamGroup, sample_rate: int) -> np.ndarray:
    """The signal a strip's compressor sees: ``audio`` ``(C, n)`` after trim and EQ, float64 ``(C, n)``."""
    x = np.asarray(audio, dtype=np.float64)
    if "trim_db" in group.names:
        x = x * float(db_to_amplitude(float(params[group.index("trim_db")])))
    sos = active_sections(eq_sos(np.asarray(params, dtype=np.float64), group, sample_rate))
    return scipy.signal.sosfilt(sos, x, axis=-1) if len(sos) else x


def gain_reduction(audio: np.ndarray, params: np.ndarray, group: ParamGroup, sample_rate: int) -> GainReduction:
    """Meter the compressor of one strip (a track row or the master) fed with ``audio``.

    Args:
        audio: the strip's input ``(C, n)``, C = 1 or 2 (a stem, or the master bus input).
        params: the strip's physical parameters ``(len(group),)``.
        group: :data:`~automix.console.schema.TRACK` or :data:`~automix.console.schema.MASTER`.
        sample_rate: Hz.
    """
    x = compressor_input(audio, params, group, sample_rate)
    settings = {k: float(params[group.index(f"compressor.{k}")]) for k in COMPRESSOR_PARAMS}
    compressor = BlockCompressor(settings, sample_rate)
    frame = max(1, round(METER_FRAME_MS * sample_rate / 1000.0))
    frames = -(-x.shape[1] // frame)
    pad = frames * frame - x.shape[1]
    if compressor.active and x.shape[1]:
        gain = np.maximum(compressor.gain(x), 1e-12)
        reduction_db = -20.0 * np.log10(gain)
        curve_db = np.pad(reduction_db, (0, pad)).reshape(frames, frame).max(axis=1)
    else:
        curve_db = np.zeros(frames)
    curve_db = np.maximum(curve_db, 0.0)
    peak = np.pad(np.abs(x).max(axis=0), (0, pad)).reshape(frames, frame).max(axis=1) if x.shape[1] else curve_db
    present = peak > 10.0 ** (PRESENT_DB / 20.0)
    mean_db = float(curve_db[present].mean()) if present.any() else 0.0
    return GainReduction(curve_db, frame / sample_rate, mean_db, float(curve_db.max(initial=0.0)))
