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
   the fader change; the best is refined by a coordinate search and taken if it explains at least
   :data:`MIN_EXPLAINED` of the weighted variance of the frame gains.

Compressors a plain gain explains (a sustained bass at ratio 1.6, a long release on a steady
part) stay invisible to this, as to any fit. Measured numbers: docs/style-transfer.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from automix.console.biquad import eq_sos
from automix.console.compressor import detector_power, smoothed_gain, static_gain_db
from automix.console.design import pan_matrix
from automix.console.schema import TRACK, db_to_amplitude
from automix.console.settings import MixSettings
from automix.console.torch_console import apply_eq

FRAME_S = 0.046
"""STFT frame of the frame gains (rounded to a power of two in samples, hop a quarter of it): 2048
samples at 44.1 kHz, short enough to follow a compressor on a drum hit at the frame scale, long
enough that a kick, a bass and a pad have distinct spectra within one frame."""

THRESHOLDS_BELOW_LEVEL_DB = (24.0, 20.0, 16.0, 12.0, 8.0, 4.0, 0.0)
"""Candidate thresholds, dB under the track's energy-weighted detector level."""

RATIOS = (1.5, 2.0, 3.0, 4.0, 6.0)
ATTACK_RELEASE_MS = tuple((a, r) for a in (2.0, 8.0, 30.0) for r in (60.0, 200.0, 500.0))
KNEE_DB = 6.0

MIN_EXPLAINED = 0.6
"""Share of the frame gains' weighted variance a compressor must explain to be switched on.
On the benchmark songs compressed tracks scored 0.69–0.97, uncompressed ones at most 0.55
(frame gains that wander with the reverb or with a masking track)."""

REFINE_FROM = 0.4
"""Grid compressors explaining less than this share are not refined (refining adds little)."""

REFINE_ROUNDS = 3
"""Rounds of the coordinate search that refines the best grid compressor (steps halve each round)."""

MIN_SPREAD_DB2 = 0.25
"""Frame gains varying less than this (weighted variance, dB², i.e. ±0.5 dB) need no search."""

ACTIVE_FLOOR_DB = -40.0
"""Frames this far under the track's loudest frame carry no weight."""

Setting = tuple[float, float, float, float, float]
"""``(threshold_db, ratio, knee_db, attack_ms, release_ms)`` of one candidate compressor."""


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


def hann_stft(audio: np.ndarray, n_fft: int, hop: int) -> torch.Tensor:
    """``(C, n)`` → ``(C, bins, frames)`` complex64, Hann window, frames centred on ``t·hop``
    (the STFT of the reverse start's per-bin responses and of the frame gains)."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)


@dataclass(frozen=True)
class Frames:
    """STFT framing of the frame gains at one sample rate: ``n_fft`` and ``hop`` in samples."""

    n_fft: int
    hop: int

    @classmethod
    def at(cls, sample_rate: int) -> Frames:
        n_fft = 2 ** round(math.log2(FRAME_S * sample_rate))
        return cls(n_fft, n_fft // 4)

    def count(self, samples: int) -> int:
        """Frames of ``torch.stft(center=True)`` over ``samples``."""
        return 1 + samples // self.hop

    def block_weights(self) -> np.ndarray:
        """Mean squared Hann window over each quarter of a frame, ``(4,)``: a frame's power is
        these weights times the power of the four hop-long blocks it covers."""
        return (torch.hann_window(self.n_fft).double().numpy() ** 2).reshape(4, self.hop).mean(axis=1)

    def stft(self, audio: np.ndarray) -> torch.Tensor:
        return hann_stft(audio, self.n_fft, self.hop)

    def power(self, energy: np.ndarray, frames: int) -> np.ndarray:
        """Hann²-weighted sum of per-sample ``energy`` ``(n,)`` in each frame → ``(frames,)``.

        Frame ``t`` covers the four blocks of ``hop`` samples from ``(t − 2)·hop``; samples outside
        the signal count as 0 (``torch.stft`` reflects them instead, which only the edge frames see).
        """
        blocks = np.zeros((frames + 3) * self.hop)
        n = min(energy.shape[0], (frames + 1) * self.hop)
        blocks[2 * self.hop: 2 * self.hop + n] = energy[:n]
        sums = blocks.reshape(frames + 3, self.hop).sum(axis=1)
        weights = self.block_weights()
        return sum(weights[i] * sums[i: i + frames] for i in range(4))


def post_eq(stem: np.ndarray, track_row: np.ndarray, sample_rate: int) -> np.ndarray:
    """The stem ``(C, n)`` after trim and EQ of ``track_row`` (what the compressor's detector sees),
    ``(C, n)`` float64."""
    x = torch.from_numpy(np.ascontiguousarray(stem, dtype=np.float32))[None]
    row = torch.from_numpy(np.asarray(track_row, dtype=np.float32)[None])
    trim = torch.tensor([10.0 ** (float(track_row[TRACK.index("trim_db")]) / 20.0)], dtype=torch.float32)
    return apply_eq(x, eq_sos(row, TRACK, sample_rate), sample_rate, trim)[0].numpy().astype(np.float64)


def frame_gains(tracks: Sequence[np.ndarray], target: np.ndarray, frames: Frames) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the complex gain of every track in ``target`` by joint least squares over bins.

    Args:
        tracks: ``K`` modelled tracks, ``(2, n)`` each (after pan).
        target: ``(2, n)`` mix.
        frames: the STFT framing.

    Returns:
        ``(gains (F, K) complex, variance (F, K))``: ``variance`` is ``(G⁻¹)ₖₖ``, the estimate's
        variance per unit noise power.
    """
    spectra = torch.stack([frames.stft(t) for t in tracks], dim=-1)  # (2, bins, F, K)
    columns = spectra.permute(2, 0, 1, 3).reshape(spectra.shape[2], -1, len(tracks))
    del spectra
    mix = frames.stft(target).permute(2, 0, 1).reshape(columns.shape[0], -1, 1)
    normal = columns.mH @ columns
    ridge = 1e-6 * normal.diagonal(dim1=-2, dim2=-1).real.mean(-1).clamp_min(1e-20)
    normal = normal + ridge[:, None, None] * torch.eye(len(tracks))
    gains = torch.linalg.solve(normal, columns.mH @ mix)[..., 0]
    variance = torch.linalg.inv(normal).diagonal(dim1=-2, dim2=-1).real
    return gains.numpy(), variance.numpy()


def fit_compressor(audio: np.ndarray, gains_db: np.ndarray, weights: np.ndarray,
                   sample_rate: int) -> CompressorGuess | None:
    """The compressor that best explains one track's frame gains, or None.

    Args:
        audio: ``(C, n)`` the track after trim and EQ (:func:`post_eq`).
        gains_db: ``(F,)`` the track's frame gains in dB (``F = Frames.at(sample_rate).count(n)``).
        weights: ``(F,)`` reliability of each frame gain, ≥ 0.
        sample_rate: Hz.
    """
    frames = Frames.at(sample_rate)
    count = gains_db.shape[0]
    energy = np.sum(audio**2, axis=0)
    frame_power = frames.power(energy, count)
    weights = np.where(frame_power > frame_power.max() * 10.0 ** (ACTIVE_FLOOR_DB / 10.0), weights, 0.0)
    if weights.sum() <= 0.0:
        return None
    weights = weights / weights.sum()
    spread_db2 = float(np.sum(weights * (gains_db - np.sum(weights * gains_db)) ** 2))
    if spread_db2 < MIN_SPREAD_DB2:
        return None
    power = detector_power(audio, sample_rate)
    level_db = 10.0 * np.log10(float(np.sum(power * energy)) / max(float(energy.sum()), 1e-30))
    score = _frame_gain_score(10.0 * np.log10(power), energy, frame_power, gains_db, weights, frames, sample_rate)

    threshold = TRACK.spec("compressor.threshold_db")
    thresholds = sorted({float(np.clip(level_db - below, threshold.minimum, threshold.maximum))
                         for below in THRESHOLDS_BELOW_LEVEL_DB})
    grid: list[Setting] = [(t, ratio, KNEE_DB, attack_ms, release_ms) for t in thresholds for ratio in RATIOS
                           for attack_ms, release_ms in ATTACK_RELEASE_MS]
    scores = [score(setting) for setting in grid]
    best = int(np.argmin([residual for residual, _ in scores]))
    if 1.0 - scores[best][0] / spread_db2 < REFINE_FROM:
        return None
    setting, (residual_db2, fader_change_db) = _refine(score, grid[best], scores[best])
    explained = 1.0 - residual_db2 / spread_db2
    if explained < MIN_EXPLAINED:
        return None
    threshold_db, ratio, knee_db, attack_ms, release_ms = setting
    return CompressorGuess(threshold_db, ratio, attack_ms, release_ms, knee_db, fader_change_db, explained)


Score = Callable[[Setting], tuple[float, float]]
"""A candidate → ``(weighted residual of the frame gains, dB², fader change, dB)``."""


def _frame_gain_score(detector_db: np.ndarray, energy: np.ndarray, frame_power: np.ndarray, gains_db: np.ndarray,
                      weights: np.ndarray, frames: Frames, sample_rate: int) -> Score:
    """How well each candidate compressor predicts the frame gains (up to the fader change).

    ``detector_db`` ``(n,)`` is the track's detector level, ``energy`` ``(n,)`` its per-sample power,
    ``frame_power`` ``(F,)`` that power per frame, ``gains_db`` and ``weights`` ``(F,)`` as in
    :func:`fit_compressor`.
    """
    last_curve: dict[tuple[float, float, float], np.ndarray] = {}  # the static curve of the latest candidate

    def score(setting: Setting) -> tuple[float, float]:
        threshold_db, ratio, knee_db, attack_ms, release_ms = setting
        key = (threshold_db, ratio, knee_db)
        if key not in last_curve:
            last_curve.clear()
            last_curve[key] = db_to_amplitude(static_gain_db(detector_db, threshold_db, ratio, knee_db))
        gain = smoothed_gain(last_curve[key], attack_ms, release_ms, sample_rate)
        model_db = 10.0 * np.log10(np.maximum(frames.power(energy * gain**2, gains_db.shape[0]), 1e-30)
                                   / np.maximum(frame_power, 1e-30))
        fader_change_db = float(np.sum(weights * (gains_db - model_db)))
        return float(np.sum(weights * (gains_db - model_db - fader_change_db) ** 2)), fader_change_db

    return score


_REFINE_STEPS = (("add", 2.0), ("mul", 1.25), ("add", 3.0), ("mul", 1.6), ("mul", 1.6))
"""Coordinate steps of :func:`_refine` in :data:`Setting` order: threshold ±2 dB, ratio ×/÷1.25,
knee ±3 dB, attack and release ×/÷1.6."""


def _refine(score: Score, setting: Setting, scored: tuple[float, float]) -> tuple[Setting, tuple[float, float]]:
    """Coordinate search from a grid point: each setting moved by its step while that lowers the
    residual (within the schema ranges, ratio above 1), steps halving each round."""
    names = ("threshold_db", "ratio", "knee_db", "attack_ms", "release_ms")
    limits = [(TRACK.spec(f"compressor.{n}").minimum, TRACK.spec(f"compressor.{n}").maximum) for n in names]
    best, best_score = setting, scored
    for round_index in range(REFINE_ROUNDS):
        for i, (kind, step) in enumerate(_REFINE_STEPS):
            size = step / 2**round_index if kind == "add" else step ** (1.0 / 2**round_index)
            for direction in (1, -1):
                moved = False
                while True:
                    value = best[i] + direction * size if kind == "add" else best[i] * size**direction
                    value = float(np.clip(value, *limits[i]))
                    if value == best[i] or (i == 1 and value <= 1.0):
                        break
                    candidate: Setting = (*best[:i], value, *best[i + 1:])  # type: ignore[assignment]
                    candidate_score = score(candidate)
                    if candidate_score[0] >= best_score[0]:
                        break
                    best, best_score, moved = candidate, candidate_score, True
                if moved:
                    break  # this direction helped: the other one cannot
    return best, best_score


def guess_compressors(settings: MixSettings, stems: Sequence[np.ndarray], target: np.ndarray,
                      sample_rate: int) -> list[CompressorGuess | None]:
    """For every track of ``settings`` (compressors off), the compressor the mix shows, or None.

    Args:
        settings: the start (EQ, fader, pan, width of every track).
        stems: ``(C, n)`` each; target: the aligned ``(2, n)`` mix (same excerpt).
        sample_rate: Hz.
    """
    frames = Frames.at(sample_rate)
    if stems[0].shape[1] < frames.n_fft:  # not one whole frame
        return [None] * len(stems)
    is_stereo = np.array([s.shape[0] == 2 for s in stems])
    matrices = pan_matrix(np.asarray(settings.track, dtype=np.float64), is_stereo)
    processed = [post_eq(stem, settings.track[k], sample_rate) for k, stem in enumerate(stems)]
    tracks = [matrices[k][:, : a.shape[0]] @ a for k, a in enumerate(processed)]
    gains, variance = frame_gains(tracks, target, frames)
    magnitude = np.abs(gains)
    reliability = np.where(magnitude > 1e-4, magnitude**2 / np.maximum(variance, 1e-30), 0.0)
    gains_db = 20.0 * np.log10(np.maximum(magnitude, 1e-6))
    return [fit_compressor(processed[k], gains_db[:, k], reliability[:, k], sample_rate) for k in range(len(stems))]


def with_compressors(settings: MixSettings, guesses: Sequence[CompressorGuess | None]) -> MixSettings:
    """``settings`` with each guessed compressor switched on and its level kept: the fader is raised
    by the guess's change, and what the fader's range cannot take goes to the make-up gain."""
    out = settings.clipped()
    fader = TRACK.spec("gain_db")
    for k, guess in enumerate(guesses):
        if guess is None:
            continue
        for name in ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db"):
            out.track[k, TRACK.index(f"compressor.{name}")] = float(getattr(guess, name))
        wanted = out.track[k, TRACK.index("gain_db")] + guess.fader_change_db
        out.track[k, TRACK.index("gain_db")] = float(np.clip(wanted, fader.minimum, fader.maximum))
        out.track[k, TRACK.index("compressor.makeup_db")] += wanted - out.track[k, TRACK.index("gain_db")]
    return out.clipped()
