"""The residual's artifact measures: noise reads flat, a balance difference tonal, leakage positive."""

import numpy as np
import pytest

from automix.evaluate.artifacts import matched_gain, residual_measures, spectral_flatness_db

SR = 22050


def _tones(seconds: float = 3.0, gains=(1.0, 0.5)) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * SR)) / SR
    a, b = np.sin(2 * np.pi * 220.0 * t), np.sin(2 * np.pi * 1375.0 * t)
    return gains[0] * a + gains[1] * b, a + b


def test_matched_gain_recovers_a_scale():
    x = np.random.default_rng(0).standard_normal(1000)
    assert matched_gain(x, 0.3 * x) == pytest.approx(0.3)
    assert matched_gain(np.zeros(10), x[:10]) == 0.0


def test_white_noise_is_flat_and_a_tone_is_not():
    rng = np.random.default_rng(1)
    assert spectral_flatness_db(rng.standard_normal(SR * 2), SR) > -3.0
    tone, _ = _tones()
    assert spectral_flatness_db(tone, SR) < -20.0


def test_noise_added_to_the_target_gives_a_flatter_residual_than_a_balance_change():
    mix_balance, target = _tones(gains=(1.0, 0.5))  # the second tone 6 dB down: a balance difference
    noisy = target + 0.05 * np.random.default_rng(2).standard_normal(target.size)
    balance = residual_measures(mix_balance[None], target[None], SR)["residual_flatness_db"]
    noise = residual_measures(noisy[None], target[None], SR)["residual_flatness_db"]
    assert balance < -20.0
    assert noise > -6.0


def test_an_exact_scaled_copy_leaves_no_residual_to_measure():
    _, target = _tones()
    out = residual_measures(0.25 * target[None], target[None], SR)
    assert "residual_flatness_db" not in out


def test_quiet_leak_reads_sound_where_the_target_is_silent():
    _, target = _tones(seconds=4.0)
    target[target.size // 2:] = 0.0  # the second half silent
    clean = residual_measures(0.5 * target[None], target[None], SR)
    hiss = 0.5 * target + 1e-2 * np.random.default_rng(3).standard_normal(target.size)
    leaky = residual_measures(hiss[None], target[None], SR)
    assert clean["quiet_leak_db"] == pytest.approx(0.0, abs=1e-6)
    assert leaky["quiet_leak_db"] > 60.0  # −120 dB floor vs hiss about −37 dB re the target


def test_no_quiet_frames_means_no_leak_and_a_silent_target_nothing():
    mix, target = _tones()
    assert "quiet_leak_db" not in residual_measures(mix[None], target[None], SR)
    assert residual_measures(mix[None], np.zeros((1, mix.size)), SR) == {}
