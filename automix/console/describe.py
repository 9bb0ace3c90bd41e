"""A console's settings in the words an engineer uses: "-5 dB at 646 Hz, Q 4", "L30", "3.6:1 at -19.6 dB".

Shared by ``automix show`` (:mod:`automix.show`) and the DAW session notes (:mod:`automix.daw`).
"""

from __future__ import annotations

import numpy as np

from automix.console.metering import GainReduction
from automix.console.schema import EQ_BANDS, SEND_OFF_DB, TRACK, ParamGroup

FLAT_EQ_DB = 0.05
"""EQ bands with less gain than this (dB) are not described: they print as 0 dB and are inaudible."""

GAIN_REDUCTION_NA = "n/a"
"""What a gain-reduction meter says when it was not measured: ``mix.json`` stores settings, not
measurements of a render."""



def number(value: float, decimals: int = 1, sign: bool = False) -> str:
    """``value`` rounded to ``decimals`` places without trailing zeros: 4.0 → "4", -4.50 → "-4.5"."""
    text = f"{value:{'+' if sign else ''}.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "+0") else text  # no signed zero in what people read


def db(gain_db: float) -> str:
    """A gain in dB with its sign: "+2.4 dB", "-5 dB", "0 dB"."""
    return f"{number(gain_db, 1, sign=True)} dB"


def hz(freq_hz: float) -> str:
    """A frequency as an engineer writes it: "646 Hz", "2.5 kHz"."""
    if round(freq_hz) < 1000:
        return f"{freq_hz:.0f} Hz"
    return f"{number(freq_hz / 1000.0, 1)} kHz"


def describe_pan(pan: float) -> str:
    """Pan position −1…+1 as a console shows it: "C", "L30", "R100" (percent of hard left/right)."""
    percent = round(pan * 100.0)
    if percent == 0:
        return "C"
    return f"{'L' if percent < 0 else 'R'}{abs(percent)}"


def describe_eq(params: np.ndarray, group: ParamGroup = TRACK) -> str:
    """The EQ of one strip in words, in processing order, e.g. "high-pass 90 Hz; -5 dB at 646 Hz, Q 4".

    Args:
        params: the strip's physical parameters ``(len(group),)`` (a track row or the master).
        group: :data:`TRACK` or :data:`MASTER`.

    Returns:
        The moves separated by "; ", or "flat" when the EQ does nothing.
    """
    def value(name: str) -> float:
        return float(params[group.index(name)])

    moves = []
    highpass_hz = value("eq.highpass.freq_hz")
    # At its range minimum (10 Hz) the high-pass is only a DC blocker, not a move.
    if highpass_hz > group.spec("eq.highpass.freq_hz").minimum:
        moves.append(f"high-pass {hz(highpass_hz)}")
    for band in EQ_BANDS:
        gain_db, freq_hz, q = value(f"eq.{band}.gain_db"), value(f"eq.{band}.freq_hz"), value(f"eq.{band}.q")
        if abs(gain_db) < FLAT_EQ_DB:
            continue
        if band == "low_shelf":
            moves.append(f"low shelf {db(gain_db)} below {hz(freq_hz)}")
        elif band == "high_shelf":
            moves.append(f"high shelf {db(gain_db)} above {hz(freq_hz)}")
        else:
            moves.append(f"{db(gain_db)} at {hz(freq_hz)}, Q {number(q, 2)}")
    return "; ".join(moves) or "flat"


def describe_compressor(params: np.ndarray, group: ParamGroup = TRACK, detail: bool = True) -> str:
    """The compressor of one strip, or "off" (ratio 1).

    ``detail``: "3.6:1 at -19.6 dB, 20/120 ms, make-up +1.5 dB" (attack/release in ms), else
    only ratio and threshold "3.6:1 at -19.6 dB". The threshold is in dBFS RMS of the detector.
    """
    def value(name: str) -> float:
        return float(params[group.index(f"compressor.{name}")])

    if value("ratio") <= 1.0:  # ratio 1 passes the signal unchanged whatever the threshold
        return "off"
    words = f"{number(value('ratio'), 1)}:1 at {number(value('threshold_db'), 1)} dB"
    if not detail:
        return words
    return (f"{words}, {number(value('attack_ms'), 1)}/{number(value('release_ms'), 0)} ms, "
            f"make-up {db(value('makeup_db'))}")


def describe_send(send_db: float, unit: bool = True) -> str:
    """A send or return level in dB ("-12 dB", or "-12" without ``unit``), or "off" at its range
    minimum (exactly silent there)."""
    if send_db <= SEND_OFF_DB:
        return "off"
    return db(send_db) if unit else number(send_db, 1, sign=True)


def describe_gain_reduction(meter: GainReduction | None) -> str:
    """A compressor's meter as "mean/max" dB ("2.1/6"), "0" when it never acts, "n/a" unmeasured."""
    if meter is None:
        return GAIN_REDUCTION_NA
    if meter.max_db < 0.05:
        return "0"
    return f"{number(meter.mean_db, 1)}/{number(meter.max_db, 1)}"
