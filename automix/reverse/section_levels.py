"""How loud each fitted track sits in the target mix, frame by frame and section by section.

Every track is rendered alone through the fitted console (its EQ, compressor, fader, pan, reverb
send and the master strip) and scaled by the finalize gain of the whole fit, so the solo renders
sum to what ``automix render`` makes of the fit (exactly while the master is linear). Per frame
of :data:`automix.mixers.sections.FRAME_S` the target is fitted by least squares as a
combination of the solo renders, jointly for all tracks and over both channels: the gain of
track ``k`` is how much louder (> 1) or quieter the track sits in the target than in the fit.
Pooling the frames of a section gives one gain per section and track, the least-squares fader
offset that brings the fit to the target there (the waveform residual cannot rise: the static
setting, gain 1, is one of the candidates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from automix.console.finalize import finalize
from automix.console.render import render_console
from automix.console.settings import MixSettings
from automix.mixers.riding import PLAYING_DB
from automix.mixers.sections import FRAME_S

MAX_FIT_SAMPLES = 2_000_000
"""Samples per channel the least squares reads (an evenly strided subset beyond this): products
of two signals average the same over a strided subset, and 16 solo renders of a 3-minute song
stay a few hundred MB."""

RIDGE = 1e-6
"""Tikhonov weight (relative to the mean diagonal of each frame's Gram matrix): keeps a frame where
a track is silent solvable without moving the others' gains."""


@dataclass(frozen=True)
class TrackFrames:
    """Per-frame products of the solo renders and the target (the normal equations of the fit).

    Attributes:
        gram: ``(frames, K, K)`` float64, ``Σ_{c,t} y_k y_j`` over each frame's samples.
        cross: ``(frames, K)`` float64, ``Σ_{c,t} y_k · target``.
        frame_s: frame length in seconds.
    """

    gram: np.ndarray
    cross: np.ndarray
    frame_s: float

    @property
    def power(self) -> np.ndarray:
        """``(K, frames)`` energy of each solo render per frame (the Gram diagonal)."""
        return np.diagonal(self.gram, axis1=1, axis2=2).T


def solo_settings(settings: MixSettings, track: int) -> MixSettings:
    """``settings`` with only track ``track`` (and its lanes) on the console."""
    name = settings.track_names[track]
    solo = settings.clipped()
    solo.track_names = [name]
    solo.track = solo.track[track: track + 1].copy()
    solo.automation = {name: solo.automation[name]} if name in solo.automation else {}
    return solo


def solo_renders(stems: Sequence[np.ndarray], settings: MixSettings, sample_rate: int,
                 stride: int) -> np.ndarray:
    """Every track alone through the console, times the finalize gain of their sum.

    Returns:
        ``(K, 2, ceil(n / stride))`` float32: samples ``0, stride, 2·stride, …`` of each render.
    """
    rendered = []
    total = np.zeros((2, stems[0].shape[1]), dtype=np.float64)
    for k, stem in enumerate(stems):
        alone = render_console([stem], sample_rate, solo_settings(settings, k))
        total += alone
        rendered.append(alone[:, ::stride])
    _, report = finalize(total.astype(np.float32), sample_rate, settings.target_lufs, settings.ceiling_dbtp)
    gain = np.float32(10.0 ** (report.gain_db / 20.0))
    return np.stack(rendered) * gain


def track_frames(stems: Sequence[np.ndarray], settings: MixSettings, target: np.ndarray,
                 sample_rate: int) -> TrackFrames:
    """The per-frame normal equations of the target ``(2, n)`` on the solo renders of ``settings``.

    The last partial frame is left out (a section boundary is placed to a frame anyway).
    """
    n = stems[0].shape[1]
    stride = max(1, -(-n // MAX_FIT_SAMPLES))
    ys = solo_renders(stems, settings, sample_rate, stride)
    frame = min(max(1, round(FRAME_S * sample_rate / stride)), ys.shape[-1])
    frames = ys.shape[-1] // frame
    length = frames * frame
    t = np.zeros((2, length), dtype=np.float32)
    strided = target[:, ::stride][:, :length]
    t[:, : strided.shape[1]] = strided
    y = ys[..., :length].reshape(ys.shape[0], 2, frames, frame)
    gram = np.einsum("kcfl,jcfl->fkj", y, y, dtype=np.float64)
    cross = np.einsum("kcfl,cfl->fk", y, t.reshape(2, frames, frame), dtype=np.float64)
    return TrackFrames(gram, cross, frame * stride / sample_rate)


def solve_gains(gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """Least-squares gains ``(..., K)`` from normal equations ``gram (..., K, K)``, ``cross (..., K)``."""
    diagonal = np.diagonal(gram, axis1=-2, axis2=-1)
    ridge = RIDGE * np.maximum(diagonal.mean(axis=-1), 1e-30)
    eye = np.eye(gram.shape[-1])
    return np.linalg.solve(gram + ridge[..., None, None] * eye, cross[..., None])[..., 0]


def playing(power: np.ndarray) -> np.ndarray:
    """``(K, M)`` bool: where a track's energy is within ``PLAYING_DB`` of its own loudest (of ``power (K, M)``)."""
    loudest = power.max(axis=1, keepdims=True)
    return (power > loudest * 10.0 ** (-PLAYING_DB / 10.0)) & (power > 0)


def gains_db(gains: np.ndarray, plays: np.ndarray) -> np.ndarray:
    """``20·log10(gain)`` ``(K, M)`` where the track plays and its gain is positive, NaN elsewhere."""
    valid = plays & (gains > 0)
    return np.where(valid, 20.0 * np.log10(np.where(valid, gains, 1.0)), np.nan)


def frame_gains_db(frames: TrackFrames) -> np.ndarray:
    """``(K, frames)`` level of each track in the target against the fit (dB), NaN where unknown."""
    return gains_db(solve_gains(frames.gram, frames.cross).T, playing(frames.power))


def section_gains_db(frames: TrackFrames, bounds: Sequence[tuple[int, int]]) -> np.ndarray:
    """``(K, sections)`` least-squares fader offset (dB) per section ``(first_frame, end_frame)``,
    NaN where the track does not play (or the fit gives it no positive gain)."""
    gram = np.stack([frames.gram[a:b].sum(axis=0) for a, b in bounds])
    cross = np.stack([frames.cross[a:b].sum(axis=0) for a, b in bounds])
    lengths = np.array([b - a for a, b in bounds], dtype=np.float64)
    power = np.diagonal(gram, axis1=1, axis2=2).T / lengths  # mean power: sections differ in length
    return gains_db(solve_gains(gram, cross).T, playing(power))
