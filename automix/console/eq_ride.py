"""Automated EQ band gains (``eq.<band>.gain_db`` lanes): a time-varying biquad.

**Schedule.** The song is cut into sub-blocks of :data:`EQ_UPDATE_SAMPLES` samples on a fixed grid
from sample 0. Sub-block ``k`` takes the lane's value at its centre, ``(k·U + (U − 1)/2) / fs``
seconds (:func:`schedule_gains`), and its section is designed from that gain with the band's static
frequency and Q by the console's own RBJ formulas (:func:`automix.console.biquad.band_section`).
Only the gain moves. Both render paths use this schedule, so they run the same coefficients: the
block renderer here (:class:`EqRide`, a compiled kernel), the differentiable console as a
time-varying recursion (:func:`automix.console.torch_console.ride_band`).

Why per sub-block: designing a section costs a power and a division per update, and at
U = 32 (0.7 ms at 44.1 kHz) even a 15 dB ramp over one second moves the gain by only 0.01 dB per
update (0.02 dB at 22.05 kHz). The staircase's sidebands, at multiples of fs/U from a tone under a
bell ridden that way, measured −80 dB relative to the tone at 44.1 kHz and −71 dB at 22.05 kHz
(energy more than 50 Hz from the tone; ``tests/test_automation.py`` asserts < −60 dB). A ``step``
lane's 5 ms smoothing still spans several updates.

**Order.** A ridden band runs after the strip's static EQ sections, right before the compressor
(ridden bands among themselves in processing order). The static sections are time-invariant and
commute, so moving one of them changes nothing but rounding; a slowly varying band very nearly
commutes with them, and this order lets the strip keep its fast static kernels untouched.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from automix.console.automation import EQ_LANES, Lane, lane_at
from automix.console.biquad import band_section
from automix.console.render_kernels import _varying_section
from automix.console.schema import EQ_BANDS, ParamGroup

EQ_UPDATE_SAMPLES = 32
"""Samples per coefficient update of an automated EQ band (see the module docstring)."""


def sub_blocks(n: int) -> int:
    """Sub-blocks covering samples ``[0, n)``."""
    return -(-n // EQ_UPDATE_SAMPLES)


def schedule_gains(lane: Lane, first: int, count: int, sample_rate: int) -> np.ndarray:
    """The band gain in dB of sub-blocks ``first … first + count − 1``, float64 ``(count,)``."""
    k = np.arange(first, first + count, dtype=np.float64)
    return lane_at(lane, (k * EQ_UPDATE_SAMPLES + (EQ_UPDATE_SAMPLES - 1) / 2.0) / sample_rate)


def ridden_bands(lanes: Mapping[str, Lane]) -> list[tuple[str, Lane]]:
    """``(band, lane)`` of the EQ lanes among ``lanes``, in processing order."""
    return [(band, lanes[name]) for band, name in zip(EQ_BANDS, EQ_LANES) if name in lanes]


def without_ridden_gains(params: np.ndarray, lanes: Mapping[str, Lane], group: ParamGroup) -> np.ndarray:
    """A copy of a strip's ``params`` with each ridden band at 0 dB: such a band designs exactly the
    identity, which the static EQ drops (:func:`~automix.console.biquad.active_sections`)."""
    out = np.array(params, dtype=np.float64)
    for band, _ in ridden_bands(lanes):
        out[group.index(f"eq.{band}.gain_db")] = 0.0
    return out


class EqRide:
    """The ridden EQ bands of one strip in the block renderer, with their filter states.

    Args:
        lanes: the strip's lanes (only :data:`~automix.console.automation.EQ_LANES` are used).
        params: the strip's physical parameters ``(len(group),)`` (frequency and Q of each band).
        group: the schema group of ``params``.
        channels: 1 or 2.
        sample_rate: Hz.
    """

    def __init__(self, lanes: Mapping[str, Lane], params: np.ndarray, group: ParamGroup, channels: int,
                 sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.bands = [(band, lane, float(params[group.index(f"eq.{band}.freq_hz")]),
                       float(params[group.index(f"eq.{band}.q")]), np.zeros((channels, 2)))
                      for band, lane in ridden_bands(lanes)]

    def coefficients(self, band: str, lane: Lane, freq_hz: float, q: float, first: int, count: int) -> np.ndarray:
        """Sections ``(count, 6)`` of sub-blocks ``first…`` (contiguous, for the kernel)."""
        gains = schedule_gains(lane, first, count, self.sample_rate)
        return np.ascontiguousarray(band_section(band, np.full(count, freq_hz), gains, np.full(count, q),
                                                 self.sample_rate))

    def filter(self, y: np.ndarray, start: int, det_c: float = 0.0, det_state: np.ndarray | None = None,
               power: np.ndarray | None = None, power_floor: float = 0.0) -> None:
        """Run the ridden bands over ``y`` ``(C, n)`` float64 in place; ``y`` is samples ``start…`` of the song.

        With a non-empty ``power`` ``(n,)`` the compressor's detector (``det_c``, state
        ``det_state``) runs on the output too, as in the static EQ kernel.
        """
        n = y.shape[1]
        first = start // EQ_UPDATE_SAMPLES
        offset = start - first * EQ_UPDATE_SAMPLES
        count = -(-(offset + n) // EQ_UPDATE_SAMPLES)
        empty = np.empty(0)
        for j, (band, lane, freq_hz, q, zi) in enumerate(self.bands):
            last = j == len(self.bands) - 1
            detect = power if last and power is not None else empty
            _varying_section(y, self.coefficients(band, lane, freq_hz, q, first, count), offset, EQ_UPDATE_SAMPLES,
                             zi, det_c, det_state if det_state is not None else np.zeros(1), detect, power_floor)


__all__ = ["EQ_UPDATE_SAMPLES", "EqRide", "ridden_bands", "schedule_gains", "sub_blocks", "without_ridden_gains"]
