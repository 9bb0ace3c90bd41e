"""Evaluation features: loudness range, mix report, comparisons, gain/pan estimation."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
import torch

from automix.console.loudness import integrated_lufs, true_peak_dbtp
from automix.console.schema import TRACK
from automix.console.torch_console import pan_matrix
from automix.errors import AutomixError
from automix.evaluate.features import (
    GAIN_FLOOR_DB,
    balance_error_db,
    compare_to_reference,
    compare_to_target,
    estimate_gains_pans,
    loudness_range_lu,
    mix_report,
    short_term_lufs,
)
from automix.measure.bark import bark_band_centres_hz

SR = 22050


def stereo_sine(freq_hz: float, seconds: float, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return np.stack([x, x])


def at_lufs(audio: np.ndarray, lufs: float) -> np.ndarray:
    return (audio * 10 ** ((lufs - integrated_lufs(audio, SR)) / 20)).astype(np.float32)


# ---- loudness range ------------------------------------------------------------------------------


def test_lra_of_two_plateaus_is_their_difference():
    loud = at_lufs(stereo_sine(1000.0, 20.0), -20.0)
    soft = at_lufs(stereo_sine(1000.0, 20.0), -30.0)
    audio = np.concatenate([loud, soft], axis=1)
    blocks = short_term_lufs(audio, SR)
    assert blocks.size == 400 - 30 + 1  # 40 s of 100 ms hops, 3 s windows
    assert blocks[0] == pytest.approx(-20.0, abs=0.02) and blocks[-1] == pytest.approx(-30.0, abs=0.02)
    assert loudness_range_lu(audio, SR) == pytest.approx(10.0, abs=0.05)
    # A quiet section 40 LU down is removed by the relative gate (−20 LU), not counted.
    quiet = at_lufs(stereo_sine(1000.0, 15.0), -60.0)
    assert loudness_range_lu(np.concatenate([audio, quiet], axis=1), SR) == pytest.approx(10.0, abs=0.1)


def test_lra_agrees_with_pyloudnorm_on_a_crescendo():
    rng = np.random.default_rng(0)
    seconds = 20
    envelope_db = np.linspace(-30.0, -10.0, seconds * SR)  # 20 dB crescendo
    noise = rng.standard_normal((2, seconds * SR)) * 10 ** (envelope_db / 20)
    noise = noise.astype(np.float32)
    ours = loudness_range_lu(noise, SR)
    theirs = pyloudnorm.Meter(SR, filter_class="DeMan").loudness_range(noise.T.astype(np.float64))
    assert 14.0 < ours < 20.0  # the gates and percentiles take part of the 20 dB ramp
    assert ours == pytest.approx(theirs, abs=0.3)


def test_lra_unmeasurable_cases_are_zero():
    assert loudness_range_lu(stereo_sine(1000.0, 2.0, 0.5), SR) == 0.0  # shorter than 3 s
    assert loudness_range_lu(np.zeros((2, 5 * SR), np.float32), SR) == 0.0
    assert loudness_range_lu(stereo_sine(1000.0, 6.0, 0.5), SR) == pytest.approx(0.0, abs=1e-3)


# ---- mix report ----------------------------------------------------------------------------------


def test_mix_report_of_a_centred_sine():
    band = 10
    bin_hz = SR / 16384  # Bark FFT size at 22.05 kHz
    freq = round(bark_band_centres_hz()[band] / bin_hz) * bin_hz
    audio = stereo_sine(freq, 4.0, amplitude=0.5)
    report = mix_report(audio, SR)
    assert report["integrated_lufs"] == pytest.approx(integrated_lufs(audio, SR), abs=1e-9)
    # The console's meter (the abrupt end of the sine rings a little above its sample peak).
    assert report["true_peak_dbtp"] == true_peak_dbtp(audio, SR)
    assert 20 * math.log10(0.5) <= report["true_peak_dbtp"] < 20 * math.log10(0.5) + 0.5
    assert report["rms_dbfs"] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)
    assert report["crest_factor_db"] == pytest.approx(3.01, abs=0.05)
    assert report["stereo_width"] == pytest.approx(0.0, abs=1e-9)
    assert report["stereo_imbalance"] == pytest.approx(0.0, abs=1e-6)
    assert report["loudness_range_lu"] == pytest.approx(0.0, abs=1e-3)
    bark = report["bark_band_db"]
    assert len(bark) == 24 and int(np.argmax(bark)) == band
    assert bark[band] == pytest.approx(20 * math.log10(0.5), abs=0.3)


def test_mix_report_mono_and_left_only():
    x = stereo_sine(441.0, 4.0, amplitude=0.5)
    mono = mix_report(x[:1], SR)
    assert mono["stereo_width"] == pytest.approx(0.0, abs=1e-9)
    assert mono["stereo_imbalance"] == pytest.approx(0.0, abs=1e-6)
    # BS.1770: a mono file is one channel, 3.01 dB below the same signal in both channels.
    assert mono["integrated_lufs"] == pytest.approx(mix_report(x, SR)["integrated_lufs"] - 3.01, abs=0.02)
    left = x.copy()
    left[1] = 0.0
    report = mix_report(left, SR)
    assert report["stereo_imbalance"] == pytest.approx(-1.0)
    assert report["stereo_width"] == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(AutomixError, match="channels"):
        mix_report(np.zeros((3, 100), np.float32), SR)


# ---- comparisons ---------------------------------------------------------------------------------


def noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(int(seconds * SR))
    return (0.1 * np.stack([common + rng.standard_normal(common.size), common])).astype(np.float32)


def test_compare_to_reference_terms():
    ref = noise(3.0, seed=1)
    same = compare_to_reference(ref, ref, SR)
    assert same["af_loss"] == pytest.approx(0.0, abs=1e-9)
    louder = compare_to_reference(ref * 2.0, ref[:, : 2 * SR], SR)  # lengths may differ
    terms = [k for k in louder if k != "af_loss"]
    assert len(terms) == 5 and louder["af_loss"] == pytest.approx(sum(louder[k] for k in terms))
    assert louder["af_stereo_width"] == pytest.approx(0.0, abs=1e-6)
    assert louder["af_crest_factor"] < 1e-3
    # RMS doubles in both channels: 0.1 · mean over channels of (2r − r)² = 0.1 · mean(r²).
    rms = np.sqrt(np.mean(np.square(ref.astype(np.float64)), axis=1))
    assert louder["af_rms"] == pytest.approx(0.1 * np.mean(rms**2), rel=0.02)


def test_compare_to_target():
    target = noise(0.75, seed=2)
    same = compare_to_target(target, target, SR)
    assert same == pytest.approx({"sum_diff_mrstft": 0.0, "mrstft": 0.0}, abs=1e-6)
    swapped = compare_to_target(target[::-1].copy(), target, SR)
    assert swapped["sum_diff_mrstft"] == pytest.approx(0.0, abs=1e-5)
    assert swapped["mrstft"] > 0.1
    quieter = compare_to_target(target * 0.5, np.pad(target, ((0, 0), (0, 500))), SR)
    assert quieter["sum_diff_mrstft"] > 0.1 and quieter["mrstft"] > 0.1
    # Long audio: duration-weighted mean of segments (0.75 s in 0.5 s segments: 0.5 s + 0.25 s).
    mix = target * np.linspace(0.2, 1.0, target.shape[1], dtype=np.float32)
    cut = int(0.5 * SR)
    first, rest = compare_to_target(mix[:, :cut], target[:, :cut], SR), compare_to_target(
        mix[:, cut:], target[:, cut:], SR)
    segmented = compare_to_target(mix, target, SR, segment_s=0.5)
    weight = cut / target.shape[1]
    for key in segmented:
        assert segmented[key] == pytest.approx(weight * first[key] + (1 - weight) * rest[key], rel=1e-5)


# ---- gain / pan estimation -----------------------------------------------------------------------


def test_estimate_gains_pans_recovers_console_settings():
    rng = np.random.default_rng(3)
    n = 2 * SR
    is_stereo = [False, False, False, False, True, True]
    gains_db = np.array([-6.0, 0.0, -12.5, 3.0, -3.0, -9.0])
    pans = np.array([-0.7, 0.0, 0.35, 1.0, -0.5, 0.8])
    stems = [rng.standard_normal((2 if s else 1, n)).astype(np.float32) * 0.1 for s in is_stereo]
    params = torch.tensor(TRACK.defaults()).repeat(1, len(stems), 1)
    params[..., TRACK.index("gain_db")] = torch.tensor(gains_db)
    params[..., TRACK.index("pan")] = torch.tensor(pans)
    matrices = pan_matrix(params, torch.tensor([is_stereo])).numpy()[0]  # (T, 2, 2), the console's law
    mix = np.zeros((2, n))
    for matrix, stem in zip(matrices, stems):
        two = stem if stem.shape[0] == 2 else np.concatenate([stem, np.zeros_like(stem)])
        mix += matrix @ two
    est_gains, est_pans = estimate_gains_pans(stems, mix.astype(np.float32))
    assert np.abs(est_gains - gains_db).max() < 0.01
    assert np.abs(est_pans - pans).max() < 0.001


def test_estimate_gains_pans_silent_stem_and_validation():
    rng = np.random.default_rng(4)
    a = (0.1 * rng.standard_normal((1, SR))).astype(np.float32)
    silent = np.zeros((1, SR), np.float32)
    theta = (0.5 + 1) * np.pi / 4
    mix = np.concatenate([a * np.cos(theta), a * np.sin(theta)]) * 10 ** (-4 / 20)
    gains, pans = estimate_gains_pans([a, silent], mix.astype(np.float32))
    assert gains[0] == pytest.approx(-4.0, abs=0.01) and pans[0] == pytest.approx(0.5, abs=0.001)
    assert gains[1] == GAIN_FLOOR_DB and pans[1] == 0.0
    with pytest.raises(AutomixError, match="stereo mix"):
        estimate_gains_pans([a], a)


def test_balance_error_ignores_overall_level():
    true = np.array([-6.0, 0.0, -12.0, 3.0, -20.0])
    est = true + 5.0 + np.array([0.0, 0.0, 1.5, 0.0, -40.0])  # one close miss, one wild outlier
    assert balance_error_db(est, true) == pytest.approx([0.0, 0.0, 1.5, 0.0, 40.0])
    assert balance_error_db(true - 7.0, true) == pytest.approx(np.zeros(5))
    with pytest.raises(ValueError):
        balance_error_db(est[:3], true)
