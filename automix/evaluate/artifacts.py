"""What a mix adds that its target lacks: measures of the residual after level matching.

A console mix of the right stems differs from its target by a *balance*: the residual (target
minus the level-matched mix) is music, tonal and peaky. A network that writes the audio itself
can also add noise, buzz or smearing: its residual grows flatter, and it sounds where the target
is silent. Two numbers say which (the end-to-end baselines' known failure, measured rather than
assumed):

* ``residual_flatness_db``: spectral flatness of the residual's average power spectrum,
  30 Hz–16 kHz (10·log10 of geometric over arithmetic mean; 0 dB = white noise, music ≈ −20 dB
  or lower).
* ``quiet_leak_db``: in the frames where the target is nearly silent (≥ :data:`QUIET_BELOW_DB`
  under its loud frames), the level-matched mix's level minus the target's (dB; 0 = as quiet as
  the target, positive = the mix sounds where the target does not).
"""

from __future__ import annotations

import math

import numpy as np

FLATNESS_FFT = 2048
FLATNESS_BAND_HZ = (30.0, 16000.0)
FRAME_S = 0.05
QUIET_BELOW_DB = 40.0
"""A target frame this far under the target's loud frames (95th percentile) counts as silent."""
MIN_QUIET_FRAMES = 10
"""Fewer silent frames than this (0.5 s) and ``quiet_leak_db`` is not reported."""
FLOOR_DB = -120.0
"""Level (dB re the target's mean power) given to digital silence, so two silences compare equal."""

_TINY = 1e-20


def matched_gain(mix: np.ndarray, target: np.ndarray) -> float:
    """The scalar gain ``g`` minimising ``‖target − g·mix‖²`` (linear; 0 for a silent mix)."""
    energy = float(np.sum(mix * mix))
    return float(np.sum(mix * target)) / energy if energy > 0.0 else 0.0


def spectral_flatness_db(mono: np.ndarray, sample_rate: int) -> float:
    """Flatness (dB, ≤ 0) of the average power spectrum of ``mono`` ``(N,)`` in :data:`FLATNESS_BAND_HZ`."""
    n_frames = max(1, mono.shape[0] // FLATNESS_FFT)
    frames = np.zeros((n_frames, FLATNESS_FFT))
    usable = min(mono.shape[0], n_frames * FLATNESS_FFT)
    frames.reshape(-1)[:usable] = mono[:usable]
    psd = (np.abs(np.fft.rfft(frames * np.hanning(FLATNESS_FFT), axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(FLATNESS_FFT, 1.0 / sample_rate)
    band = psd[(freqs >= FLATNESS_BAND_HZ[0]) & (freqs <= min(FLATNESS_BAND_HZ[1], sample_rate / 2))] + _TINY
    return float(10.0 * (np.mean(np.log10(band)) - math.log10(float(band.mean()))))


def _frame_power(mono: np.ndarray, sample_rate: int) -> np.ndarray:
    size = max(1, round(FRAME_S * sample_rate))
    count = mono.shape[0] // size
    return np.mean(mono[: count * size].reshape(count, size) ** 2, axis=1)


def residual_measures(mix: np.ndarray, target: np.ndarray, sample_rate: int) -> dict[str, float]:
    """``residual_flatness_db`` and (when the target has silent stretches) ``quiet_leak_db``.

    Args:
        mix, target: ``(C, N)`` audio of the same song (the common beginning is compared; channels
            are folded to mono, which is enough for noise and leakage).
        sample_rate: Hz.

    Returns:
        The measures that are defined: none for a silent target, no flatness when the mix
        matches the target to within numerical noise (nothing left to be flat).
    """
    n = min(mix.shape[-1], target.shape[-1])
    x = np.asarray(mix, dtype=np.float64).reshape(-1, mix.shape[-1])[:, :n].mean(axis=0)
    y = np.asarray(target, dtype=np.float64).reshape(-1, target.shape[-1])[:, :n].mean(axis=0)
    target_power = float(np.mean(y * y)) if n else 0.0
    if target_power <= 0.0:
        return {}
    matched = matched_gain(x, y) * x
    residual = y - matched
    out: dict[str, float] = {}
    if float(np.mean(residual * residual)) > 1e-12 * target_power:
        out["residual_flatness_db"] = spectral_flatness_db(residual, sample_rate)
    target_frames = _frame_power(y, sample_rate)
    if target_frames.size:
        target_db = 10.0 * np.log10(target_frames / target_power + _TINY).clip(min=FLOOR_DB)
        quiet = target_db <= np.percentile(target_db, 95) - QUIET_BELOW_DB
        if int(quiet.sum()) >= MIN_QUIET_FRAMES:
            mix_frames = _frame_power(matched, sample_rate)[quiet]
            target_quiet = target_frames[quiet]
            mix_db = max(FLOOR_DB, 10.0 * math.log10(float(mix_frames.mean()) / target_power + _TINY))
            quiet_db = max(FLOOR_DB, 10.0 * math.log10(float(target_quiet.mean()) / target_power + _TINY))
            out["quiet_leak_db"] = mix_db - quiet_db
    return out
