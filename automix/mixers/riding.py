"""Fader rides: keep each track's balance against the rest of the mix from section to section.

An engineer rides a fader when a track's level against the others changes for a while: a part
that enters 10 dB quieter in the second half, a lead that sinks under the backing in the
chorus. Static settings (from any mixer) set the balance for the song as a whole; this rule adds
per-section fader automation where the music asks for it and nothing where it does not.

For every section (:mod:`automix.mixers.sections`) and every track that plays in it, its level
*relative to the rest of the mix* is measured after the static trim and fader (power over the
frames where it plays, against the power sum of all other tracks in those frames). The track's
reference is the duration-weighted mean of those relative levels over the sections it plays
in. Where a section's relative level is more than :data:`RIDE_THRESHOLD_DB` from the reference,
the fader is ridden by the difference (at most :data:`MAX_RIDE_DB`), with a
:data:`RIDE_RAMP_S` ramp centred on the boundary. A whole arrangement getting quieter moves
every track and the rest alike: no ride (the musician's dynamics stay). Each ride is said in
the track's notes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from automix.console.automation import Lane
from automix.console.schema import TRACK
from automix.console.settings import MixSettings, Section
from automix.mixers.sections import Readable, find_boundaries, section_bounds, track_levels

RIDE_THRESHOLD_DB = 3.0
"""Smallest change of a track's level against the rest (dB) worth a ride: below it, a balance
is the same to the ear and the fader stays still."""

MAX_RIDE_DB = 12.0
"""Largest ride (dB) either way: beyond it the part was meant to change, not to be levelled."""

RIDE_RAMP_S = 0.5
"""Length of the fader move at a boundary (s), centred on it."""

PLAYING_DB = 40.0
"""A frame where a track is within this many dB of its own loudest frame counts as playing."""

PLAYING_SHARE = 0.5
"""A track plays in a section when at least this share of the section's frames are playing."""


def relative_levels_db(power: np.ndarray, gains_db: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
    """``(tracks, sections)`` level of each track against the rest (dB) after its static gain, NaN
    where it does not play (see the module docstring).

    Args:
        power: frame powers ``(tracks, frames)`` of the stems as given.
        gains_db: each track's static trim + fader (dB), ``(tracks,)``.
        bounds: sections as ``(first_frame, end_frame)``.
    """
    gained = power * 10.0 ** (gains_db[:, None] / 10.0)
    loudest = gained.max(axis=1, keepdims=True)
    playing = gained > loudest * 10.0 ** (-PLAYING_DB / 10.0)
    total = gained.sum(axis=0)
    out = np.full((power.shape[0], len(bounds)), np.nan)
    for s, (a, b) in enumerate(bounds):
        for t in range(power.shape[0]):
            frames = playing[t, a:b]
            if frames.mean() < PLAYING_SHARE:
                continue
            own = gained[t, a:b][frames].mean()
            rest = (total[a:b] - gained[t, a:b])[frames].mean()
            if rest > 0 and own > 0:
                out[t, s] = 10.0 * np.log10(own / rest)
    return out


def ride_offsets_db(relative_db: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``(tracks, sections)`` fader ride per section (dB): toward each track's reference, where it
    is more than :data:`RIDE_THRESHOLD_DB` off; sections where a track rests hold its previous ride."""
    offsets = np.zeros_like(relative_db)
    for t, levels in enumerate(relative_db):
        plays = ~np.isnan(levels)
        if plays.sum() < 2:
            continue
        reference = np.average(levels[plays], weights=lengths[plays])
        deviation = reference - levels
        ride = np.where(plays & (np.abs(deviation) > RIDE_THRESHOLD_DB),
                        np.clip(deviation, -MAX_RIDE_DB, MAX_RIDE_DB), 0.0)
        held, last = np.zeros_like(ride), None
        for s in range(len(ride)):
            if plays[s]:
                last = ride[s]
            held[s] = last if last is not None else next(ride[k] for k in range(len(ride)) if plays[k])
        offsets[t] = held
    return offsets


def fader_lane(fader_db: float, offsets_db: np.ndarray, boundaries_s: Sequence[float]) -> Lane:
    """The fader lane that holds ``fader_db + offsets_db[s]`` in section ``s``, moving over
    :data:`RIDE_RAMP_S` around each boundary where the value changes."""
    spec = TRACK.spec("gain_db")
    values = np.clip(fader_db + offsets_db, spec.minimum, spec.maximum)
    times, points = [0.0], [float(values[0])]
    for s, boundary in enumerate(boundaries_s, start=1):
        if values[s] == values[s - 1]:
            continue
        times += [boundary - RIDE_RAMP_S / 2, boundary + RIDE_RAMP_S / 2]
        points += [float(values[s - 1]), float(values[s])]
    return Lane(tuple(times), tuple(points))


def ride_faders(settings: MixSettings, stems: Sequence[Readable], sample_rate: int) -> MixSettings:
    """``settings`` with per-section fader lanes where a track's balance against the rest
    changes, the sections found and a note per ridden track; unchanged (no lanes, no sections)
    when the song has one section or no track moves."""
    levels = track_levels(stems, sample_rate)
    boundaries = find_boundaries(levels)
    if not boundaries:
        return settings
    bounds = section_bounds(boundaries, levels.power.shape[1])
    gains_db = settings.track[:, TRACK.index("trim_db")] + settings.track[:, TRACK.index("gain_db")]
    lengths = np.array([b - a for a, b in bounds], dtype=np.float64)
    offsets = ride_offsets_db(relative_levels_db(levels.power, gains_db, bounds), lengths)
    boundaries_s = [b * levels.frame_s for b in boundaries]
    duration_s = stems[0].frames / sample_rate
    out = settings.clipped()
    last = levels.power.shape[1]
    # The last section runs to the end of the song (beyond its last whole frame).
    out.sections = [Section(a * levels.frame_s, duration_s if b == last else b * levels.frame_s, f"S{k + 1}")
                    for k, (a, b) in enumerate(bounds)]
    for t, name in enumerate(settings.track_names):
        if not np.any(offsets[t]):
            continue
        fader_db = float(settings.track[t, TRACK.index("gain_db")])
        out.automation.setdefault(name, {})["gain_db"] = fader_lane(fader_db, offsets[t], boundaries_s)
        rides = ", ".join(f"{o:+.1f} dB in {out.sections[s].label} (from {out.sections[s].start_s:.1f} s)"
                          for s, o in enumerate(offsets[t]) if o)
        out.notes.setdefault(name, []).append(
            f"ride: {rides}, so its level against the rest stays within {RIDE_THRESHOLD_DB:g} dB of the song's")
    return out
