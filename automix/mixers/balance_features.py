"""What a balance model sees of each track: level-invariant descriptors plus the song around it.

Every descriptor is measured on the stem folded to mono and is unchanged by a gain on the stem
(the models predict *relative* balance, so the level a stem arrives at must not leak in). Long
stems are measured on :data:`MAX_EXCERPTS` excerpts spread over the song, so a track costs the
same whatever the song's length. Training (``automix.train.balance``) and inference
(:mod:`automix.mixers.learned_balance`) both build their inputs here, so they cannot drift apart.

Per track (:data:`TRACK_FEATURES`): the spectrum as 16 log-spaced band levels relative to the
track's total power, centroid, roll-off, flatness, low/high shares, crest factor, peak to
loudness, loudness-gating measures of sparseness (share of active frames, loudness minus the
playing RMS, spread of the playing level), onset strength, and the role and the General MIDI
instrument family its name announces.
Per song (:func:`song_features`): each track's descriptors minus the song's mean, its rank in
brightness and in low-frequency weight, and the number of tracks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from automix.console.loudness import SILENCE_LUFS, integrated_lufs
from automix.mixers.roles import FAMILIES, family_from_name, role_from_name

BAND_EDGES_HZ = np.geomspace(30.0, 16000.0, 17)
"""16 log-spaced bands from 30 Hz to 16 kHz (about 0.57 octave each)."""

NAME_ROLES = ("kick", "snare", "hats", "drums", "bass", "fx", "pad", "lead", "guitar", "keys")
"""Roles :func:`automix.mixers.roles.role_from_name` can announce (one-hot; none → all 0)."""

EXCERPT_S = 10.0
MAX_EXCERPTS = 6
"""A stem longer than ``EXCERPT_S × MAX_EXCERPTS`` is measured on that many evenly spaced excerpts."""

FRAME_S = 0.05
ACTIVE_RANGE_DB = 30.0
"""Frames within this many dB of the track's loud frames (95th percentile) count as playing."""

_FFT = 2048
_POWER_FLOOR = 1e-14

TRACK_FEATURES: tuple[str, ...] = (
    *(f"band_{k:02d}_db" for k in range(16)),
    "centroid_oct", "rolloff_oct", "flatness_db", "low_share", "high_share",
    "crest_db", "peak_to_loudness_db", "active_share", "loudness_minus_active_db", "active_spread_db",
    "onset_strength",
    *(f"name_{role}" for role in NAME_ROLES),
    *(f"family_{family}" for family in FAMILIES),
)
"""Names of :func:`track_features`' columns, in order."""

_RELATIVE = ("centroid_oct", "rolloff_oct", "flatness_db", "low_share", "high_share", "crest_db",
             "active_share", "onset_strength", "peak_to_loudness_db", *(f"family_{f}" for f in FAMILIES))
"""Descriptors also given relative to the song's mean (a bass is 'the lowest track', not 'low';
a piano among five pianos is not the song's one piano)."""

SONG_FEATURES: tuple[str, ...] = (
    *TRACK_FEATURES,
    *(f"rel_{name}" for name in _RELATIVE),
    "rank_centroid", "rank_low_share", "log2_tracks",
)
"""Names of :func:`song_features`' columns, in order."""


def _excerpts(mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """The stem, or :data:`MAX_EXCERPTS` evenly spaced excerpts of it, joined, ``(n,)`` float64."""
    n = mono.shape[0]
    length = int(EXCERPT_S * sample_rate)
    if n <= length * MAX_EXCERPTS:
        return mono.astype(np.float64)
    starts = np.linspace(0, n - length, MAX_EXCERPTS).astype(int)
    return np.concatenate([mono[s:s + length] for s in starts]).astype(np.float64)


def _fold(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    return audio.mean(axis=0) if audio.ndim == 2 else audio


def _frames(x: np.ndarray, size: int) -> np.ndarray:
    count = max(1, x.shape[0] // size)
    padded = np.zeros(count * size)
    padded[: min(x.shape[0], count * size)] = x[: count * size]
    return padded.reshape(count, size)


def track_features(audio: np.ndarray, sample_rate: int, name: str = "") -> np.ndarray:
    """Descriptors of one stem, ``(len(TRACK_FEATURES),)`` float64, all finite.

    Args:
        audio: ``(channels, samples)`` or ``(samples,)``; any level (only shape of the signal counts).
        sample_rate: Hz.
        name: the stem's file or track name, for the role it announces.
    """
    x = _excerpts(_fold(audio), sample_rate)
    x = x - x.mean()
    scale = float(np.max(np.abs(x))) if x.size else 0.0
    values = dict.fromkeys(TRACK_FEATURES, 0.0)
    role, _ = role_from_name(name)
    if role in NAME_ROLES:
        values[f"name_{role}"] = 1.0
    family = family_from_name(name)
    if family is not None:
        values[f"family_{family}"] = 1.0
    if scale <= 0.0 or not math.isfinite(scale):
        return np.array([values[k] for k in TRACK_FEATURES])
    x = x / scale  # level invariance, and no overflow whatever the input level

    spectra = np.abs(np.fft.rfft(_frames(x, _FFT) * np.hanning(_FFT), axis=1)) ** 2
    frame_db = 10.0 * np.log10(spectra.sum(axis=1) + _POWER_FLOOR)
    playing = frame_db >= np.percentile(frame_db, 95) - ACTIVE_RANGE_DB
    psd = spectra[playing].mean(axis=0) + _POWER_FLOOR
    freqs = np.fft.rfftfreq(_FFT, 1.0 / sample_rate)
    total = psd.sum()
    for k in range(16):
        band = (freqs >= BAND_EDGES_HZ[k]) & (freqs < BAND_EDGES_HZ[k + 1])
        values[f"band_{k:02d}_db"] = 10.0 * math.log10((psd[band].sum() + _POWER_FLOOR) / total)
    centroid = float((freqs * psd).sum() / total)
    values["centroid_oct"] = math.log2(max(centroid, 20.0) / 1000.0)
    rolloff = float(freqs[min(np.searchsorted(np.cumsum(psd), 0.85 * total), freqs.size - 1)])
    values["rolloff_oct"] = math.log2(max(rolloff, 20.0) / 1000.0)
    audible_band = (freqs >= 30.0) & (freqs <= 16000.0)
    values["flatness_db"] = 10.0 * float(np.mean(np.log10(psd[audible_band])) - np.log10(psd[audible_band].mean()))
    values["low_share"] = float(psd[freqs < 150.0].sum() / total)
    values["high_share"] = float(psd[freqs >= 5000.0].sum() / total)

    level = _frames(x, max(1, round(FRAME_S * sample_rate)))
    power = np.mean(level**2, axis=1) + _POWER_FLOOR
    power_db = 10.0 * np.log10(power)
    active = power_db >= np.percentile(power_db, 95) - ACTIVE_RANGE_DB
    active_rms_db = 10.0 * math.log10(float(power[active].mean()))
    lufs = float(integrated_lufs(x[None, :], sample_rate))
    lufs = lufs if lufs > SILENCE_LUFS else active_rms_db
    values["crest_db"] = -active_rms_db  # the peak is 1 (0 dBFS) after scaling
    values["peak_to_loudness_db"] = -lufs
    values["active_share"] = float(active.mean())
    values["loudness_minus_active_db"] = lufs - active_rms_db
    values["active_spread_db"] = float(np.std(power_db[active]))
    flux = np.diff(np.sqrt(spectra), axis=0).clip(min=0.0).sum(axis=1)
    values["onset_strength"] = float(np.mean(flux) / (np.mean(np.sqrt(spectra).sum(axis=1)) + 1e-12)) if flux.size else 0.0
    out = np.array([values[k] for k in TRACK_FEATURES])
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _rank(values: np.ndarray) -> np.ndarray:
    """0 for the smallest … 1 for the largest (ties share); 0.5 for a single track."""
    if values.size == 1:
        return np.full(1, 0.5)
    order = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    return order / (values.size - 1)


def song_features(per_track: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Each track's descriptors in the context of its song, ``(K, len(SONG_FEATURES))``.

    Args:
        per_track: ``K`` rows of :func:`track_features`.
    """
    base = np.asarray(per_track, dtype=np.float64).reshape(-1, len(TRACK_FEATURES))
    index = {name: i for i, name in enumerate(TRACK_FEATURES)}
    relative = np.stack([base[:, index[n]] - base[:, index[n]].mean() for n in _RELATIVE], axis=1)
    ranks = np.stack([_rank(base[:, index["centroid_oct"]]), _rank(base[:, index["low_share"]])], axis=1)
    count = np.full((base.shape[0], 1), math.log2(base.shape[0]))
    return np.concatenate([base, relative, ranks, count], axis=1)
