"""Which tracks of a mix are compressed, and roughly how: compressors for the start of a reverse
fit (part of step 2 of :mod:`automix.reverse`).

The gradient fit cannot switch a compressor on by itself: "off" is ratio 1 and threshold 0 dB,
the edges of their ranges, where the optimiser's sigmoid is flat. So the start decides, from the
mix, which tracks to give a compressor:

1. **Frame gains.** Every track as the start models it (EQ, fader, pan; no compression) is
   turned into an STFT, and for every frame one complex gain per track is fitted by least
   squares over all bins and both mix channels, jointly for all tracks (their spectra tell them
   apart within a frame). ``|gain|`` in dB is how much louder or quieter the track sits in the mix
   in that frame than the start says; its reliability is ``|gain|² / (G⁻¹)ₖₖ`` (the inverse
   variance of the estimate, in dB, up to the noise level: low where the track is quiet or
   masked by a track with the same spectrum).
2. **Compressor search.** On an uncompressed track the frame gains are flat; a compressor makes
   them follow the track's own level. For each track whose gains vary, a grid of compressors
   (threshold relative to the track's level, ratio, attack/release; the console's detector,
   static curve and ballistics at full rate) predicts the frame gains up to a constant, which is
   the fader change. The best candidate is taken if it explains at least
   :data:`MIN_EXPLAINED` of the weighted variance of the frame gains.

Measured on the held-out benchmark (docs/style-transfer.md): on the 6 full-console songs it
switched on the compressors taking 2.4–9 dB off a track and none on uncompressed tracks;
compressors a plain gain explains (a sustained bass at ratio 1.6) stay invisible to it, as to
any fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from automix.console.biquad import eq_sos
from automix.console.compressor import BlockCompressor, detector_power, smoothed_gain
from automix.console.design import pan_matrix
from automix.console.schema import TRACK
from automix.console.settings import MixSettings
from automix.console.torch_console import apply_eq

FRAME_FFT = 2048
FRAME_HOP = 512
"""STFT of the frame gains: 46 ms frames every 11.6 ms at 44.1 kHz, short enough to follow a
compressor's attack on a drum hit at the frame scale."""

THRESHOLDS_BELOW_LEVEL_DB = (24.0, 20.0, 16.0, 12.0, 8.0, 4.0, 0.0)
"""Candidate thresholds, dB under the track's energy-weighted detector level."""

RATIOS = (1.5, 2.0, 3.0, 4.0, 6.0)
ATTACK_RELEASE_MS = tuple((a, r) for a in (2.0, 8.0, 30.0) for r in (60.0, 200.0, 500.0))
KNEE_DB = 6.0

MIN_EXPLAINED = 0.6
"""Share of the frame gains' weighted variance a compressor must explain to be switched on.
On the benchmark songs compressed tracks scored 0.68–0.97, uncompressed ones at most 0.50
(a cymbal track whose frame gains wander with the reverb)."""

MIN_SPREAD_DB2 = 0.25
"""Frame gains varying less than this (weighted variance, dB², i.e. ±0.5 dB) need no search."""

ACTIVE_FLOOR_DB = -40.0
"""Frames this far under the track's loudest frame carry no weight."""


@dataclass(frozen=True)
class CompressorGuess:
    """A compressor the mix shows on one track.

    Attributes:
        threshold_db, ratio, attack_ms, release_ms, knee_db: console units.
        fader_change_db: how much to raise the fader to keep the track's level with it.
        explained: share of the frame gains' weighted variance it explains (0…1).
    """

    threshold_db: float
    ratio: float
    attack_ms: float
    release_ms: float
    knee_db: float
    fader_change_db: float
    explained: float


def post_eq(stem: np.ndarray, track_row: np.ndarray, sample_rate: int) -> np.ndarray:
    """The stem after trim and EQ of ``track_row`` (what the compressor's detector sees), float64."""
    x = torch.from_numpy(np.ascontiguousarray(stem, dtype=np.float32))[None]
    row = torch.from_numpy(np.asarray(track_row, dtype=np.float32)[None])
    trim = torch.tensor([10.0 ** (float(track_row[TRACK.index("trim_db")]) / 20.0)], dtype=torch.float32)
    return apply_eq(x, eq_sos(row, TRACK, sample_rate), sample_rate, trim)[0].numpy().astype(np.float64)


def _stft(audio: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return torch.stft(x, FRAME_FFT, FRAME_HOP, window=torch.hann_window(FRAME_FFT), return_complex=True)


def frame_gains(tracks: Sequence[np.ndarray], target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the complex gain of every track in ``target`` by joint least squares over bins.

    Args:
        tracks: ``K`` modelled tracks, ``(2, n)`` each (after pan).
        target: ``(2, n)`` mix.

    Returns:
        ``(gains (frames, K) complex, variance (frames, K))``: ``variance`` is ``(G⁻¹)ₖₖ``, the
        estimate's variance per unit noise power.
    """
    spectra = torch.stack([_stft(t) for t in tracks], dim=-1)  # (2, bins, frames, K)
    columns = spectra.permute(2, 0, 1, 3).reshape(spectra.shape[2], -1, len(tracks))
    mix = _stft(target).permute(2, 0, 1).reshape(columns.shape[0], -1, 1)
    normal = columns.mH @ columns
    ridge = 1e-6 * normal.diagonal(dim1=-2, dim2=-1).real.mean(-1).clamp_min(1e-20)
    normal = normal + ridge[:, None, None] * torch.eye(len(tracks))
    gains = torch.linalg.solve(normal, columns.mH @ mix)[..., 0]
    variance = torch.linalg.inv(normal).diagonal(dim1=-2, dim2=-1).real
    return gains.numpy(), variance.numpy()


def frame_energy(energy: np.ndarray, frames: int) -> np.ndarray:
    """Sum of per-sample ``energy`` over ``2·FRAME_HOP`` samples centred on each STFT frame."""
    n = energy.shape[0]
    padded = np.zeros(frames * FRAME_HOP + 2 * FRAME_HOP)
    padded[FRAME_HOP: FRAME_HOP + n] = energy[: frames * FRAME_HOP + FRAME_HOP]
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    first = np.arange(frames) * FRAME_HOP
    return cumulative[first + 2 * FRAME_HOP] - cumulative[first]


def fit_compressor(audio: np.ndarray, gains_db: np.ndarray, weights: np.ndarray,
                   sample_rate: int) -> CompressorGuess | None:
    """The grid compressor that best explains one track's frame gains, or None.

    Args:
        audio: ``(C, n)`` the track after trim and EQ (:func:`post_eq`).
        gains_db: ``(frames,)`` the track's frame gains in dB.
        weights: ``(frames,)`` reliability of each frame gain, ≥ 0.
        sample_rate: Hz.
    """
    frames = gains_db.shape[0]
    energy = np.sum(audio**2, axis=0)
    per_frame = frame_energy(energy, frames)
    weights = np.where(per_frame > per_frame.max() * 10.0 ** (ACTIVE_FLOOR_DB / 10.0), weights, 0.0)
    if weights.sum() <= 0.0:
        return None
    weights = weights / weights.sum()
    flat_db = float(np.sum(weights * gains_db))
    spread = float(np.sum(weights * (gains_db - flat_db) ** 2))
    if spread < MIN_SPREAD_DB2:
        return None
    power = detector_power(audio, sample_rate)
    level_db = 10.0 * np.log10(float(np.sum(power * energy) / max(float(energy.sum()), 1e-30)))
    static_cache: dict[tuple[float, float, float], np.ndarray] = {}

    def score(setting: tuple[float, float, float, float, float]) -> tuple[float, float]:
        """``(weighted residual dB², fader change dB)`` of one ``(threshold, ratio, knee, attack, release)``."""
        threshold_db, ratio, knee_db, attack_ms, release_ms = setting
        key = (threshold_db, ratio, knee_db)
        if key not in static_cache:
            curve = BlockCompressor({"threshold_db": threshold_db, "ratio": ratio, "attack_ms": 10.0,
                                     "release_ms": 100.0, "knee_db": knee_db, "makeup_db": 0.0}, sample_rate)
            static_cache[key] = curve.target_from_power(power.copy())
        gain = smoothed_gain(static_cache[key], attack_ms, release_ms, sample_rate)
        model_db = 10.0 * np.log10(np.maximum(frame_energy(energy * gain**2, frames), 1e-30)
                                   / np.maximum(per_frame, 1e-30))
        offset = float(np.sum(weights * (gains_db - model_db)))
        return float(np.sum(weights * (gains_db - model_db - offset) ** 2)), offset

    grid = [(level_db - below, ratio, KNEE_DB, attack_ms, release_ms)
            for below in THRESHOLDS_BELOW_LEVEL_DB for ratio in RATIOS for attack_ms, release_ms in ATTACK_RELEASE_MS]
    scores = [score(setting) for setting in grid]
    best_index = int(np.argmin([residual for residual, _ in scores]))
    if 1.0 - scores[best_index][0] / spread < REFINE_FROM:
        return None
    setting, (residual, offset) = _refine(score, grid[best_index], scores[best_index])
    explained = 1.0 - residual / spread
    if explained < MIN_EXPLAINED:
        return None
    threshold_db, ratio, knee_db, attack_ms, release_ms = setting
    return CompressorGuess(threshold_db, ratio, attack_ms, release_ms, knee_db, offset, explained)


REFINE_ROUNDS = 3
"""Rounds of the coordinate search that refines the best grid compressor."""

REFINE_FROM = 0.4
"""Grid compressors explaining less than this share are not refined (refining rarely adds 0.2)."""


def _refine(score, setting: tuple[float, ...], scored: tuple[float, float]):
    """Coordinate search from a grid point: each setting in turn moved by its step (threshold ±2 dB,
    ratio ×/÷1.25, knee ±3 dB, attack and release ×/÷1.6) while that lowers the residual; steps halve
    each round. Returns ``(setting, (residual, fader change))``."""
    spec = {name: TRACK.spec(f"compressor.{name}") for name in ("threshold_db", "ratio", "knee_db", "attack_ms",
                                                               "release_ms")}
    limits = [(spec[name].minimum, spec[name].maximum) for name in spec]
    steps = [("add", 2.0), ("mul", 1.25), ("add", 3.0), ("mul", 1.6), ("mul", 1.6)]
    best, best_score = tuple(setting), scored
    for round_index in range(REFINE_ROUNDS):
        for i, (kind, step) in enumerate(steps):
            size = step / 2**round_index if kind == "add" else step ** (1.0 / 2**round_index)
            for direction in (1, -1):
                while True:
                    value = best[i] + direction * size if kind == "add" else best[i] * size**direction
                    value = float(np.clip(value, *limits[i]))
                    if value == best[i] or (i == 1 and value <= 1.0):
                        break
                    candidate = (*best[:i], value, *best[i + 1:])
                    candidate_score = score(candidate)
                    if candidate_score[0] >= best_score[0]:
                        break
                    best, best_score = candidate, candidate_score
    return best, best_score


def guess_compressors(settings: MixSettings, stems: Sequence[np.ndarray], target: np.ndarray,
                      sample_rate: int) -> list[CompressorGuess | None]:
    """For every track of ``settings`` (compressors off), the compressor the mix shows, or None.

    Args:
        settings: the start (EQ, fader, pan, width of every track).
        stems: ``(C, n)`` each; target: the aligned ``(2, n)`` mix (same excerpt).
        sample_rate: Hz.
    """
    is_stereo = np.array([s.shape[0] == 2 for s in stems])
    matrices = pan_matrix(np.asarray(settings.track, dtype=np.float64), is_stereo)
    processed = [post_eq(stem, settings.track[k], sample_rate) for k, stem in enumerate(stems)]
    tracks = [matrices[k][:, : a.shape[0]] @ a for k, a in enumerate(processed)]
    gains, variance = frame_gains(tracks, target)
    magnitude = np.abs(gains)
    reliability = np.where(magnitude > 1e-4, magnitude**2 / np.maximum(variance, 1e-30), 0.0)
    gains_db = 20.0 * np.log10(np.maximum(magnitude, 1e-6))
    return [fit_compressor(processed[k], gains_db[:, k], reliability[:, k], sample_rate) for k in range(len(stems))]


def with_compressors(settings: MixSettings, guesses: Sequence[CompressorGuess | None]) -> MixSettings:
    """``settings`` with each guessed compressor switched on and its fader raised to keep the level."""
    out = settings.clipped()
    for k, guess in enumerate(guesses):
        if guess is None:
            continue
        for name in ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db"):
            out.track[k, TRACK.index(f"compressor.{name}")] = getattr(guess, name)
        out.track[k, TRACK.index("gain_db")] += guess.fader_change_db
    return out.clipped()
