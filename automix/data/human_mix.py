"""Songs whose authors set every track's level and pan: the record a source renders, and its truth.

A *source* (tracker modules, MIDI files, Hydrogen songs) finds files in Debian packages
(:class:`SourceFile`) and renders each one as a :class:`HumanMix`: every track soloed with the
author's own volumes and pans, and the full render, which is the author's mix. The corpus
builder stores each track as a mono stem at :data:`NORMALISED_STEM_LUFS` (so the stem's level
and pan hide the truth) and records the truth per track (:class:`TrackTruth`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from automix.console.loudness import NORMALISED_STEM_LUFS, SILENCE_LUFS, integrated_lufs

FAMILIES = ("tracker", "midi", "hydrogen")
AUDIBLE_TRACK_LUFS = -60.0
"""A soloed track quieter than this in the author's mix is not a stem (muted or near-silent)."""


@dataclass(frozen=True)
class SourceFile:
    """One song file found in a package.

    Attributes:
        family: one of :data:`FAMILIES`.
        package: the Debian package it came from.
        path: the unpacked file on disk.
        source_path: its path inside the package.
        licence: the licence of this file (from the package's copyright file).
        author: composer/author when known, else ``""``; splits keep an author in one split.
        title: the song's title (or the file name).
    """

    family: str
    package: str
    path: Path
    source_path: str
    licence: str
    author: str = ""
    title: str = ""


@dataclass
class HumanMix:
    """A song rendered with its author's balance.

    Attributes:
        source: what was rendered.
        sample_rate: Hz.
        tracks: ``(name, audio)`` per track, audio ``(2, N)`` float32: the track soloed, with the
            author's volume and pan (names need not be unique; the writer numbers them).
        mix: ``(2, N)`` float32: the full render (equals the sum of the tracks).
        offset_s: where the excerpt starts in the song.
        notes: what the renderer did (skipped channels, ...).
    """

    source: SourceFile
    sample_rate: int
    tracks: list[tuple[str, np.ndarray]]
    mix: np.ndarray
    offset_s: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrackTruth:
    """What the author decided for one track, measured on its soloed render.

    Attributes:
        level_in_mix_lu: the soloed track's integrated loudness minus the mix's (LU).
        gain_db: the gain that turns the stored (normalised, mono) stem into the track at the
            author's level: ``stem_lufs_as_rendered − NORMALISED_STEM_LUFS``.
        pan: constant-power pan (−1 left … +1 right) from the soloed track's channel energies.
    """

    level_in_mix_lu: float
    gain_db: float
    pan: float


def energy_pan(stereo: np.ndarray) -> float:
    """Constant-power pan of a ``(2, N)`` signal from its channel RMS: ``4/π·atan2(R, L) − 1``."""
    left, right = (float(np.sqrt(np.mean(np.square(ch, dtype=np.float64)))) for ch in stereo[:2])
    if left == 0.0 and right == 0.0:
        return 0.0
    return 4.0 / math.pi * math.atan2(right, left) - 1.0


def mono_stem(stereo: np.ndarray) -> np.ndarray:
    """The stored stem: the soloed track's constant-power mono fold, ``(1, N)`` float32.

    ``√(L² + R²)`` per sample would not be linear; the fold is ``(L + R)/√2`` for a centred
    track and leans on the louder side for a panned one (so a hard-panned track is not
    halved): ``(g_L·L + g_R·R)`` with ``g`` the normalised channel RMS.
    """
    rms = np.sqrt(np.mean(np.square(stereo, dtype=np.float64), axis=1))
    norm = float(np.hypot(*rms))
    weights = rms / norm if norm > 0 else np.full(2, math.sqrt(0.5))
    return (weights[:, None] * stereo).sum(axis=0, keepdims=True).astype(np.float32)


def track_truth(stereo: np.ndarray, mono: np.ndarray, mix_lufs: float, sample_rate: int) -> TrackTruth:
    """The author's level and pan for one soloed track ``(2, N)`` and its mono fold ``(1, N)``."""
    level = float(integrated_lufs(stereo.astype(np.float64), sample_rate))
    mono_lufs = float(integrated_lufs(mono.astype(np.float64), sample_rate))
    return TrackTruth(level_in_mix_lu=level - mix_lufs, gain_db=mono_lufs - NORMALISED_STEM_LUFS,
                      pan=energy_pan(stereo))


def audible(stereo: np.ndarray, sample_rate: int) -> bool:
    """Whether a soloed track is loud enough to be a stem (:data:`AUDIBLE_TRACK_LUFS`)."""
    lufs = float(integrated_lufs(stereo.astype(np.float64), sample_rate))
    return lufs > max(AUDIBLE_TRACK_LUFS, SILENCE_LUFS)
