"""Measure one method's mix of a dataset song as results rows, against the song's target mix and reference.

Each mix gets its own loudness, stereo image and Bark spectrum; each track its fitted gain, pan
and level; with a target mix, the per-track balance and pan errors, the MRSTFTs, the AF loss to it and
the residual's artifact measures (:mod:`automix.evaluate.artifacts`); with a
reference, the AF loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from automix.console.loudness import integrated_lufs
from automix.data.loaders import Song
from automix.evaluate.artifacts import residual_measures
from automix.evaluate.features import (
    GAIN_FLOOR_DB,
    balance_error_db,
    compare_to_reference,
    compare_to_target,
    estimate_gains_pans,
    mix_report,
)
from automix.evaluate.layout import REFERENCE_METHOD, TARGET_METHOD
from automix.evaluate.results import Row, row
from automix.evaluate.song_audio import SongAudio, stereo
from automix.io import Stem

TRACK_LEVEL_FLOOR_LU = -70.0
"""Relative level reported for a track that is (nearly) absent from a mix."""

AUDIBLE_LEVEL_LU = -40.0
"""Balance and pan errors count only tracks at least this loud (re the mix) in the target mix:
the least-squares gain of a track that is all but silent in the excerpt is noise, and a
listener could not hear its balance anyway."""

_MIX_METRICS = ("integrated_lufs", "loudness_range_lu", "true_peak_dbtp", "rms_dbfs", "crest_factor_db",
                "stereo_width", "stereo_imbalance")


def _track_levels_lu(stem_lufs: np.ndarray, gains_db: np.ndarray, mix_lufs: float) -> np.ndarray:
    """Each track's loudness in a mix relative to the mix, LU (stem loudness + fitted gain − mix)."""
    levels = stem_lufs + gains_db - mix_lufs
    absent = (gains_db <= GAIN_FLOOR_DB) | ~np.isfinite(levels)
    return np.where(absent, TRACK_LEVEL_FLOOR_LU, np.maximum(levels, TRACK_LEVEL_FLOOR_LU))


def known_truth(song: Song, stems: Sequence[Stem]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(level_in_mix_lu, pan)`` per stem when the song's metadata records its author's balance
    (the real-balance corpus), else None. Levels are relative to the mix, so a method's
    balance error compares loudness with loudness; stems are matched by file name."""
    tracks = song.meta.get("tracks")
    if not isinstance(tracks, list) or not all(isinstance(t, dict) and "level_in_mix_lu" in t for t in tracks):
        return None
    by_file = {Path(str(t.get("file", ""))).name: t for t in tracks}
    chosen = [by_file.get(Path(s.path).name) if s.path is not None else None for s in stems]
    if any(t is None for t in chosen):
        return None
    return (np.array([float(t["level_in_mix_lu"]) for t in chosen]),
            np.array([float(t.get("pan", 0.0)) for t in chosen]))


@dataclass
class SongContext:
    """What every method's mix of one song is measured against.

    Attributes:
        song: the loaded song.
        stem_lufs: each stem's integrated loudness, ``(K,)`` LUFS.
        target_gains: the target mix's ``(gains_db (K,), pans (K,))``, or None without a target.
        audible: tracks at least :data:`AUDIBLE_LEVEL_LU` loud in the target mix, ``(K,)`` bool.
        reference: the paired reference ``(2, N)`` at the song's rate, or None.
    """

    song: SongAudio
    stem_lufs: np.ndarray
    target_gains: tuple[np.ndarray, np.ndarray] | None
    audible: np.ndarray | None
    reference: np.ndarray | None


def song_context(song: SongAudio, reference: np.ndarray | None = None,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> SongContext:
    """Measure what a song's mixes are compared with.

    ``truth`` (:func:`known_truth`) gives the target's balance exactly; without it the balance is
    estimated from the target mix by least squares (none without a target mix).
    """
    stem_lufs = np.array([integrated_lufs(s.audio, song.sample_rate) for s in song.stems], dtype=np.float64)
    target_gains = audible = None
    if truth is not None:  # the author's levels are known exactly: no need to estimate them from the mix
        levels_lu, pans = truth
        target_gains = (levels_lu - stem_lufs, pans)
        audible = levels_lu >= AUDIBLE_LEVEL_LU
    elif song.target is not None:
        target_gains = estimate_gains_pans([s.audio for s in song.stems], song.target)
        target_lufs = float(integrated_lufs(song.target, song.sample_rate))
        audible = _track_levels_lu(stem_lufs, target_gains[0], target_lufs) >= AUDIBLE_LEVEL_LU
    return SongContext(song, stem_lufs, target_gains, audible, reference)


def measure_mix(ctx: SongContext, method: str, mix: np.ndarray) -> list[Row]:
    """Every metric of one method's mix ``(C, N)`` of one song (without the final ``seconds`` row)."""
    song = ctx.song
    rate = song.sample_rate
    rows: list[Row] = []
    report = mix_report(mix, rate)
    for name in _MIX_METRICS:
        rows.append(row(song.name, method, name, report[name]))
    for i, level_db in enumerate(report["bark_band_db"]):
        rows.append(row(song.name, method, "bark_band_db", level_db, f"bark_{i + 1:02d}"))
    if method == REFERENCE_METHOD:  # another song: no stems to compare with
        return rows

    if method == TARGET_METHOD and ctx.target_gains is not None:
        gains_db, pans = ctx.target_gains
    else:
        gains_db, pans = estimate_gains_pans([s.audio for s in song.stems], stereo(mix))
    levels = _track_levels_lu(ctx.stem_lufs, gains_db, float(report["integrated_lufs"]))
    for stem, gain_db, pan, level in zip(song.stems, gains_db, pans, levels):
        rows += [row(song.name, method, "track_gain_db", gain_db, stem.name),
                 row(song.name, method, "track_pan", pan, stem.name),
                 row(song.name, method, "track_level_lu", level, stem.name)]

    if ctx.target_gains is not None and method != TARGET_METHOD:
        target_gains_db, target_pans = ctx.target_gains
        audible = np.flatnonzero(ctx.audible)
        if audible.size:
            errors = balance_error_db(gains_db[audible], target_gains_db[audible])
            pan_errors = np.abs(pans[audible] - target_pans[audible])
            for k, error, pan_error in zip(audible, errors, pan_errors):
                rows += [row(song.name, method, "track_balance_error_db", error, song.stems[k].name),
                         row(song.name, method, "track_pan_error", pan_error, song.stems[k].name)]
            rows += [row(song.name, method, "balance_error_db", errors.mean()),
                     row(song.name, method, "balance_error_max_db", errors.max()),
                     row(song.name, method, "pan_error", pan_errors.mean())]
        for name, value in compare_to_target(mix, song.target, rate).items():
            rows.append(row(song.name, method, name, value))
        for name, value in residual_measures(mix, song.target, rate).items():
            rows.append(row(song.name, method, name, value))
        rows.append(row(song.name, method, "target_af_loss", compare_to_reference(mix, song.target, rate)["af_loss"]))
    if ctx.reference is not None:
        for name, value in compare_to_reference(mix, ctx.reference, rate).items():
            rows.append(row(song.name, method, name, value))
    return rows
