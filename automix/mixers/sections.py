"""The song's sections, found where the tracks' levels change: the arrangement's novelty over time.

Every stem's level is measured in frames of :data:`FRAME_S` (RMS in dB, read block by block so
a streamed stem is never held in memory). A frame is a *boundary candidate* when some track's
mean level over the :data:`MIN_SECTION_S`/2 before it differs from its mean level over the same
time after it by at least :data:`NOVELTY_DB` (a track entering, leaving, or changing its level
for good, not a single loud note). Candidates are taken strongest first, each at least
:data:`MIN_SECTION_S` from the others and from the song's ends, so any number of sections of at
least a few seconds can come out, and steady stems give one section.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import numpy as np

FRAME_S = 0.5
"""Level frame (s): long enough to average a beat, short enough to place a boundary."""

MIN_SECTION_S = 6.0
"""Shortest section (s): a fill or a break of a bar or two is not a section to mix differently."""

NOVELTY_DB = 6.0
"""Smallest lasting level change of one track (dB) that marks a boundary."""

SILENCE_DB = -80.0
"""Level of a silent frame (dB): a track entering from silence reads as a large change."""


class Readable(Protocol):
    """A stem (in memory or streamed): its frames, read by ``read(start, stop)`` → ``(C, n)``."""

    frames: int

    def read(self, start: int, stop: int) -> np.ndarray: ...


@dataclass(frozen=True)
class TrackLevels:
    """Each track's level per frame.

    Attributes:
        power: mean-square power ``(tracks, frames)`` (channels averaged), linear.
        frame_s: frame length in seconds.
    """

    power: np.ndarray
    frame_s: float

    @property
    def db(self) -> np.ndarray:
        """``(tracks, frames)`` level in dB, silence at :data:`SILENCE_DB`."""
        return np.maximum(10.0 * np.log10(np.maximum(self.power, 1e-30)), SILENCE_DB)


def track_levels(stems: Sequence[Readable], sample_rate: int, frame_s: float = FRAME_S,
                 block_frames: int = 64) -> TrackLevels:
    """Frame powers of every stem, reading ``block_frames`` frames at a time."""
    frame = max(1, round(frame_s * sample_rate))
    count = max(1, stems[0].frames // frame)
    power = np.zeros((len(stems), count))
    for t, stem in enumerate(stems):
        for f0 in range(0, count, block_frames):
            f1 = min(f0 + block_frames, count)
            x = np.asarray(stem.read(f0 * frame, f1 * frame))
            if x.shape[1] < (f1 - f0) * frame:
                x = np.pad(x, ((0, 0), (0, (f1 - f0) * frame - x.shape[1])))
            v = x.reshape(x.shape[0], f1 - f0, frame)
            # Squares summed in float64 straight from the float32 samples (no float64 copy: 8x faster).
            power[t, f0:f1] = np.einsum("cfk,cfk->f", v, v, dtype=np.float64) / (x.shape[0] * frame)
    return TrackLevels(power, frame / sample_rate)


def novelty_db(levels_db: np.ndarray, half: int) -> np.ndarray:
    """Per frame, the largest change of one track's mean level (dB) between the ``half`` frames
    before and the ``half`` frames after it, ``(frames,)`` (0 within ``half`` of either end)."""
    frames = levels_db.shape[1]
    out = np.zeros(frames)
    if frames < 2 * half:
        return out
    cumulative = np.concatenate([np.zeros((levels_db.shape[0], 1)), np.cumsum(levels_db, axis=1)], axis=1)
    starts = np.arange(half, frames - half + 1)
    before = (cumulative[:, starts] - cumulative[:, starts - half]) / half
    after = (cumulative[:, starts + half] - cumulative[:, starts]) / half
    out[starts] = np.max(np.abs(after - before), axis=0)
    return out


def find_boundaries(levels: TrackLevels, min_section_s: float = MIN_SECTION_S,
                    threshold_db: float = NOVELTY_DB) -> list[int]:
    """Boundary frames (sorted): strongest novelty first, at least ``min_section_s`` apart."""
    min_frames = max(1, round(min_section_s / levels.frame_s))
    novelty = novelty_db(levels.db, max(1, min_frames // 2))
    frames = novelty.size
    chosen: list[int] = []
    for f in np.argsort(-novelty, kind="stable"):
        if novelty[f] < threshold_db:
            break
        if f < min_frames or frames - f < min_frames or any(abs(f - c) < min_frames for c in chosen):
            continue
        chosen.append(int(f))
    return sorted(chosen)


def section_bounds(boundaries: list[int], frames: int) -> list[tuple[int, int]]:
    """``[(first_frame, end_frame), …]`` of the sections between ``boundaries``."""
    edges = [0, *boundaries, frames]
    return list(pairwise(edges))
