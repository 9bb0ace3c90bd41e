"""Per-section fader rides fitted to the mix (step 5 of :mod:`automix.reverse`).

A static fit gives every track one fader for the whole song. When the engineer rode a fader
(a part 9 dB down in the second half), the static fader sits between the two levels and the
fit is wrong in both sections. So after the static fit:

1. **Measure** every track's level in the target against the fit, per frame and per section
   (:mod:`automix.reverse.section_levels`: joint least squares on the tracks rendered alone).
2. **Sections** are where some track's level against the fit changes for good by at least
   :data:`BALANCE_NOVELTY_DB` (:func:`automix.mixers.sections.find_boundaries` on those levels,
   so sections are at least :data:`automix.mixers.sections.MIN_SECTION_S` long). The stems'
   own arrangement does not matter here: a part entering is in the fit already.
3. **Ride** each track whose per-section offsets spread by more than :data:`RIDE_SPREAD_DB`:
   its fader lane holds the static fader plus the section's offset (clipped to the fader range),
   with the ramp of :func:`automix.mixers.riding.fader_lane` at each boundary.
4. **Keep** the rides only if the re-rendered whole song is at least :data:`MIN_IMPROVEMENT_DB`
   closer to the mix (waveform residual); otherwise the static fit stays (no lanes, no sections).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from automix.console.schema import TRACK
from automix.console.settings import MixSettings, Section
from automix.mixers.riding import fader_lane
from automix.mixers.sections import NOVELTY_DB, TrackLevels, find_boundaries, section_bounds
from automix.reverse.section_levels import TrackFrames, frame_gains_db, section_gains_db, track_frames

BALANCE_NOVELTY_DB = 3.0
"""Smallest lasting change of a track's level against the fit (dB) that marks a section
boundary: half of what marks one in the stems, since the fit already explains the arrangement."""

RIDE_SPREAD_DB = 1.5
"""A track is ridden when its per-section offsets spread by more than this (dB): a smaller
level error between sections is within what the ear, and a real fit, leaves."""

MIN_IMPROVEMENT_DB = 0.2
"""Rides must lower the whole-song waveform residual by at least this much (dB) to be written:
offsets split between two near-identical stems fit no better, and must not become lanes."""


@dataclass
class RideFit:
    """The outcome of :func:`fit_rides`.

    Attributes:
        settings: what to write: the ridden settings, or the static ones unchanged.
        fitted: whether rides were written.
        reason: why (not), one line.
        ridden: names of the ridden tracks.
        sections: the sections the offsets were fitted on (empty when one section).
        offsets_db: ``(tracks, sections)`` level of each track in the mix against the static fit
            (dB, NaN where it does not play): the fitted ride.
        error_static_db: largest ``|offset|`` of the static fit over tracks and sections (dB).
        error_ridden_db: the same re-measured on the ridden fit, None when not fitted.
        residual_db: whole-song waveform residual of the ridden fit (dB), None when not tried.
        residual_static_db: the same of the static fit (dB).
    """

    settings: MixSettings
    fitted: bool
    reason: str
    ridden: list[str]
    sections: list[Section]
    offsets_db: np.ndarray
    error_static_db: float
    error_ridden_db: float | None = None
    residual_db: float | None = None
    residual_static_db: float | None = None

    @classmethod
    def static(cls, settings: MixSettings, reason: str, error_db: float = 0.0) -> RideFit:
        return cls(settings, False, reason, [], [], np.zeros((len(settings.track_names), 0)), error_db)

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(float(x), 2)

        return {
            "fitted": self.fitted, "reason": self.reason, "tracks": list(self.ridden),
            "sections": [{"start_s": r(s.start_s), "end_s": r(s.end_s), "label": s.label} for s in self.sections],
            "section_error_db_static": r(self.error_static_db), "section_error_db": r(self.error_ridden_db),
            "residual_db": r(self.residual_db), "residual_db_static": r(self.residual_static_db),
        }

    def summary(self) -> str:
        """One line for the fit report."""
        if not self.fitted:
            return f"rides: none ({self.reason})"
        return (f"rides: {', '.join(self.ridden)} over {len(self.sections)} sections; largest per-section level "
                f"error {self.error_static_db:.1f} → {self.error_ridden_db:.1f} dB, residual "
                f"{self.residual_static_db:.1f} → {self.residual_db:.1f} dB (static → ridden)")


def largest_error_db(offsets_db: np.ndarray) -> float:
    """Largest ``|offset|`` (dB) over the measured entries of ``offsets_db``, 0 when none."""
    valid = offsets_db[~np.isnan(offsets_db)]
    return float(np.max(np.abs(valid))) if valid.size else 0.0


def balance_boundaries(frames: TrackFrames) -> list[int]:
    """Frames where some track's level against the fit changes by :data:`BALANCE_NOVELTY_DB` for good."""
    gains = frame_gains_db(frames)
    # Unmeasured frames (the track rests) take the track's typical level: a rest is not a change.
    typical = np.array([np.nanmedian(row) if np.any(~np.isnan(row)) else 0.0 for row in gains])
    filled = np.where(np.isnan(gains), typical[:, None], gains)
    # find_boundaries has one threshold, NOVELTY_DB: scale the levels so it means BALANCE_NOVELTY_DB.
    scaled_db = filled * (NOVELTY_DB / BALANCE_NOVELTY_DB)
    return find_boundaries(TrackLevels(10.0 ** (scaled_db / 10.0), frames.frame_s))


def held(offsets_db: np.ndarray) -> np.ndarray:
    """``(sections,)`` offsets with each unmeasured section (NaN) holding the previous ride (the
    first measured one before it): the fader does not move for a part that rests."""
    valid = np.flatnonzero(~np.isnan(offsets_db))
    out = offsets_db.copy()
    last = offsets_db[valid[0]]
    for s, value in enumerate(offsets_db):
        last = last if np.isnan(value) else value
        out[s] = last
    return out


def ride_spread_db(offsets_db: np.ndarray) -> np.ndarray:
    """``(tracks,)`` max − min of each track's measured offsets (0 with fewer than two)."""
    spreads = np.zeros(offsets_db.shape[0])
    for t, row in enumerate(offsets_db):
        valid = row[~np.isnan(row)]
        spreads[t] = valid.max() - valid.min() if valid.size >= 2 else 0.0
    return spreads


def with_rides(settings: MixSettings, offsets_db: np.ndarray, ridden: Sequence[int],
               sections: list[Section]) -> MixSettings:
    """``settings`` with fader lanes (static fader + each section's offset) on the ``ridden`` tracks,
    the ``sections`` and a note per ridden track."""
    out = settings.clipped()
    out.sections = list(sections)
    boundaries_s = [s.start_s for s in sections[1:]]
    for t in ridden:
        name = settings.track_names[t]
        offsets = held(offsets_db[t])
        fader_db = float(settings.track[t, TRACK.index("gain_db")])
        out.automation.setdefault(name, {})["gain_db"] = fader_lane(fader_db, offsets, boundaries_s)
        rides = ", ".join(f"{o:+.1f} dB in {sections[s].label} (from {sections[s].start_s:.1f} s)"
                          for s, o in enumerate(offsets))
        out.notes.setdefault(name, []).append(f"ride fitted to the mix: {rides}")
    return out


def fit_rides(stems: Sequence[np.ndarray], settings: MixSettings, target: np.ndarray, sample_rate: int,
              residual_static_db: float, residual_of: Callable[[MixSettings], float]) -> RideFit:
    """Fader rides for the static fit ``settings`` where the target's balance moves (module docstring).

    Args:
        stems: ``(C, n)`` float32 each, in track order; target: the aligned mix ``(2, n)``.
        settings: the static fit as written (rounded), with its finalize targets.
        residual_static_db: whole-song waveform residual of ``settings`` (dB).
        residual_of: whole-song waveform residual (dB) of other settings, as ``automix render`` makes them.
    """
    frames = track_frames(stems, settings, target, sample_rate)
    boundaries = balance_boundaries(frames)
    if not boundaries:
        return RideFit.static(settings, "one section: every track's level in the mix holds")
    bounds = section_bounds(boundaries, frames.gram.shape[0])
    duration_s = stems[0].shape[1] / sample_rate
    sections = [Section(a * frames.frame_s, duration_s if k == len(bounds) - 1 else b * frames.frame_s, f"S{k + 1}")
                for k, (a, b) in enumerate(bounds)]
    offsets = section_gains_db(frames, bounds)
    error_db = largest_error_db(offsets)
    ridden = np.flatnonzero(ride_spread_db(offsets) > RIDE_SPREAD_DB)
    if ridden.size == 0:
        return RideFit.static(settings, f"every track's level holds within {RIDE_SPREAD_DB:g} dB "
                              f"across {len(sections)} sections", error_db)
    candidate = with_rides(settings, offsets, ridden.tolist(), sections).rounded()
    residual = residual_of(candidate)
    if residual > residual_static_db - MIN_IMPROVEMENT_DB:
        fit = RideFit.static(settings, f"rides left the mix no closer ({residual:.1f} dB against "
                             f"{residual_static_db:.1f} dB static)", error_db)
        fit.residual_db, fit.residual_static_db = residual, residual_static_db
        return fit
    after = section_gains_db(track_frames(stems, candidate, target, sample_rate), bounds)
    names = [settings.track_names[t] for t in ridden]
    return RideFit(candidate, True, f"fitted on {len(names)} of {len(settings.track_names)} tracks", names,
                   sections, offsets, error_db, largest_error_db(after), residual, residual_static_db)
