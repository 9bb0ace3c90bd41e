"""Automation: console parameters that change over the song, as breakpoint lanes in human units.

A lane is a list of breakpoints ``[time_s, value]`` (times strictly increasing, values inside the
parameter's schema range) and a ramp shape:

* ``"linear"`` — the value ramps in a straight line from one breakpoint to the next (in the
  parameter's own unit: a fader ramp is linear in dB, as on a DAW's volume lane);
* ``"step"`` — the value jumps at each breakpoint and holds until the next; the jump itself
  is smoothed over :data:`STEP_SMOOTHING_MS` so it does not click.

Before the first breakpoint a lane holds the first value, after the last one the last value.
A lane replaces the parameter's static value for the whole song. Both render paths take their
per-sample curves from :func:`lane_curve`, so they apply automation identically; the curve is
evaluated per sample (no zipper noise from block-wise steps).

Automatable are what engineers ride: per track the fader (``gain_db``), ``pan``, the reverb send
(``send.reverb_db``) and the gain of each EQ band (``eq.<band>.gain_db``, :data:`EQ_LANES`); on the
master its output ``gain_db``. The fader, pan and send act after the compressor; an EQ band acts
before it, so a ridden band changes what the compressor sees, as on a console. EQ lanes are
applied per small block of samples rather than per sample (:mod:`automix.console.eq_ride`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from automix.console.design import fader_pan_matrix
from automix.console.schema import EQ_BANDS, SEND_OFF_DB, TRACK, ParamGroup, db_to_amplitude, send_gain
from automix.errors import ParamsError

RIDE_LANES: tuple[str, ...] = ("gain_db", "pan", "send.reverb_db")
"""Track parameters after the compressor, applied per sample (:class:`TrackRide`)."""

EQ_LANES: tuple[str, ...] = tuple(f"eq.{band}.gain_db" for band in EQ_BANDS)
"""Track EQ band gains a lane may drive, in processing order (:mod:`automix.console.eq_ride`)."""

TRACK_AUTOMATABLE: tuple[str, ...] = (*RIDE_LANES, *EQ_LANES)
"""Track parameters a lane may drive."""

MASTER_AUTOMATABLE: tuple[str, ...] = ("gain_db",)
"""Master parameters a lane may drive."""

SHAPES: tuple[str, ...] = ("linear", "step")
"""Ramp shapes between breakpoints (see the module docstring)."""

STEP_SMOOTHING_MS = 5.0
"""A ``step`` lane's jumps are linear ramps this long, starting at the breakpoint: short enough
to read as a jump, long enough not to click."""

MAX_POINTS = 10_000
"""Most breakpoints one lane may hold (a JSON someone edits, not a sample-rate curve)."""


@dataclass(frozen=True)
class Lane:
    """One automated parameter.

    Attributes:
        times_s: breakpoint times ``(K,)`` in seconds from the song start, strictly increasing.
        values: breakpoint values ``(K,)`` in the parameter's unit.
        shape: one of :data:`SHAPES`.
    """

    times_s: tuple[float, ...]
    values: tuple[float, ...]
    shape: str = "linear"


def lane_curve(lane: Lane, start: int, stop: int, sample_rate: int) -> np.ndarray:
    """The lane's value at samples ``[start, stop)`` of the song, float64 ``(stop − start,)``.

    Sample ``k`` sits at time ``k / sample_rate``. The same function feeds the block renderer
    (one chunk at a time) and the differentiable console (the whole excerpt), so both see the
    same numbers.
    """
    return lane_at(lane, np.arange(start, stop, dtype=np.float64) / sample_rate)


def lane_at(lane: Lane, t: np.ndarray) -> np.ndarray:
    """The lane's value at times ``t`` (seconds, any shape), float64 of ``t``'s shape."""
    times = np.asarray(lane.times_s, dtype=np.float64)
    values = np.asarray(lane.values, dtype=np.float64)
    if lane.shape == "linear" or len(times) == 1:
        return np.interp(t, times, values)
    # step: hold each value from its breakpoint on, with a short linear ramp into it.
    ramp_s = STEP_SMOOTHING_MS / 1000.0
    knots_t = np.empty(2 * len(times) - 1)
    knots_v = np.empty_like(knots_t)
    knots_t[0], knots_v[0] = times[0], values[0]
    for k in range(1, len(times)):
        # Ramp ends at the next breakpoint at the latest, so a later breakpoint is never passed.
        end = min(times[k] + ramp_s, times[k + 1] if k + 1 < len(times) else math.inf)
        knots_t[2 * k - 1], knots_v[2 * k - 1] = times[k], values[k - 1]
        knots_t[2 * k], knots_v[2 * k] = max(end, np.nextafter(times[k], math.inf)), values[k]
    return np.interp(t, knots_t, knots_v)


def parse_lanes(raw: object, group: ParamGroup, where: str) -> dict[str, Lane]:
    """Validate a JSON ``automation`` object (``{param: {"shape": …, "points": [[t, v], …]}}``).

    Raises:
        ParamsError: naming the field (unknown or non-automatable parameter, bad shape, times
            not increasing or negative, a value outside the schema range, too many points).
    """
    allowed = TRACK_AUTOMATABLE if group is TRACK else MASTER_AUTOMATABLE
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}.automation: expected an object keyed by parameter")
    lanes: dict[str, Lane] = {}
    for name, body in raw.items():
        at = f"{where}.automation.{name}"
        if name not in allowed:
            raise ParamsError(f"{at}: not automatable (automatable: {', '.join(allowed)})")
        if not isinstance(body, dict) or set(body) - {"shape", "points"}:
            raise ParamsError(f"{at}: expected {{\"shape\": …, \"points\": [[time_s, value], …]}}")
        shape = body.get("shape", "linear")
        if shape not in SHAPES:
            raise ParamsError(f"{at}.shape: {json_text(shape)} is not one of {', '.join(SHAPES)}")
        points = body.get("points")
        if not isinstance(points, list) or not points:
            raise ParamsError(f"{at}.points: expected a non-empty list of [time_s, value]")
        if len(points) > MAX_POINTS:
            raise ParamsError(f"{at}.points: {len(points)} points, more than {MAX_POINTS}")
        spec = group.spec(name)
        times: list[float] = []
        values: list[float] = []
        for k, point in enumerate(points):
            here = f"{at}.points[{k}]"
            if (not isinstance(point, list) or len(point) != 2
                    or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in point)):
                raise ParamsError(f"{here}: expected [time_s, value], got {json_text(point)}")
            time_s, value = (float(x) for x in point)
            if not (math.isfinite(time_s) and math.isfinite(value)):
                raise ParamsError(f"{here}: not finite")
            if time_s < 0.0:
                raise ParamsError(f"{here}: time {time_s:g} s is before the song starts")
            if times and time_s <= times[-1]:
                raise ParamsError(f"{here}: time {time_s:g} s is not after the previous breakpoint "
                                  f"({times[-1]:g} s)")
            if not spec.contains(value):
                raise ParamsError(f"{here}: {spec.outside_text(value)}")
            times.append(time_s)
            values.append(value)
        lanes[name] = Lane(tuple(times), tuple(values), shape)
    return lanes


def clipped_lane(lane: Lane, group: ParamGroup, name: str) -> Lane:
    """The lane with its values clipped into the schema range of ``name``."""
    spec = group.spec(name)
    return Lane(lane.times_s, tuple(float(np.clip(v, spec.minimum, spec.maximum)) for v in lane.values), lane.shape)


def check_within(lanes_by_strip: Mapping[str, Mapping[str, Lane]], duration_s: float) -> None:
    """Refuse a breakpoint after the end of the song (``duration_s``), naming it."""
    for strip, lanes in lanes_by_strip.items():
        for name, lane in lanes.items():
            if lane.times_s[-1] > duration_s + 1e-9:
                raise ParamsError(f"{strip}.automation.{name}: a breakpoint at {lane.times_s[-1]:g} s is after "
                                  f"the end of the song ({duration_s:.3f} s)")


def json_text(value: object) -> str:
    """``value`` as it reads in JSON, for error messages."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class TrackRide:
    """A track's automated fader, pan and send, applied after its compressor (block renderer).

    ``lanes`` holds only :data:`RIDE_LANES` (EQ lanes go to :class:`automix.console.eq_ride.EqRide`).

    The strip runs with only its make-up gain after the compressor (:meth:`strip_matrix`); then
    :meth:`apply` multiplies each sample by the fader/pan matrix of that sample's lane values
    (:func:`~automix.console.design.fader_pan_matrix`, the static formula), and :meth:`send`
    gives the per-sample send gain. Without lanes for a parameter its static value is used.
    """

    def __init__(self, lanes: Mapping[str, Lane], params: np.ndarray, channels: int, sample_rate: int) -> None:
        self.lanes = dict(lanes)
        self.static = {name: float(params[TRACK.index(name)]) for name in (*RIDE_LANES, "width")}
        self.channels = channels
        self.sample_rate = sample_rate
        self.rides_matrix = bool(self.lanes.keys() & {"gain_db", "pan"})

    def strip_matrix(self, makeup: float) -> np.ndarray:
        """``(2, C)`` matrix the strip applies after its compressor when the fader/pan are ridden:
        the make-up gain into the first C output rows (the rest follows in :meth:`apply`)."""
        return np.ascontiguousarray(np.eye(2)[:, : self.channels] * makeup)

    def _value(self, name: str, start: int, stop: int) -> np.ndarray | float:
        lane = self.lanes.get(name)
        return lane_curve(lane, start, stop, self.sample_rate) if lane is not None else self.static[name]

    def apply(self, y: np.ndarray, start: int) -> np.ndarray:
        """``y`` ``(2, n)`` from the strip (see :meth:`strip_matrix`), samples ``start…`` of the song →
        the track after its ridden fader and pan, float64 ``(2, n)``."""
        n = y.shape[1]
        if "pan" not in self.lanes:  # a fader ride only: the static pan matrix times a gain curve
            matrix = fader_pan_matrix(np.asarray(0.0), np.asarray(self.static["pan"]), self.static["width"],
                                      np.array(self.channels == 2))
            amp = db_to_amplitude(lane_curve(self.lanes["gain_db"], start, start + n, self.sample_rate))
            return (matrix[:, : self.channels] @ y[: self.channels]) * amp
        matrix = fader_pan_matrix(np.asarray(self._value("gain_db", start, start + n)),
                                  np.asarray(self._value("pan", start, start + n)), self.static["width"],
                                  np.array(self.channels == 2))
        matrix = np.broadcast_to(matrix, (n, 2, 2))
        if self.channels == 1:
            return matrix[:, :, 0].T * y[0]
        return np.einsum("nij,jn->in", matrix, y[:2])

    @property
    def ever_sends(self) -> bool:
        """Whether the send is ever open (so the reverb must run)."""
        lane = self.lanes.get("send.reverb_db")
        values = lane.values if lane is not None else (self.static["send.reverb_db"],)
        return any(v > SEND_OFF_DB for v in values)

    def send(self, start: int, n: int) -> np.ndarray | None:
        """Per-sample send gain ``(n,)`` of samples ``start…``, or None when the send is static."""
        lane = self.lanes.get("send.reverb_db")
        return None if lane is None else send_gain(lane_curve(lane, start, start + n, self.sample_rate))


def master_gain_curve(lanes: Mapping[str, Lane], start: int, n: int, sample_rate: int) -> np.ndarray | None:
    """Linear master output gain per sample ``(n,)`` from its lane, or None when it is static."""
    lane = lanes.get("gain_db")
    return None if lane is None else db_to_amplitude(lane_curve(lane, start, start + n, sample_rate))


__all__ = [
    "EQ_LANES", "MASTER_AUTOMATABLE", "RIDE_LANES", "SHAPES", "STEP_SMOOTHING_MS", "TRACK_AUTOMATABLE", "Lane",
    "TrackRide", "check_within", "clipped_lane", "lane_at", "lane_curve", "master_gain_curve", "parse_lanes",
]
