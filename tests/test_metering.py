"""Gain-reduction metering (automix.console.metering) against the static curve and the renderer."""

from __future__ import annotations

import numpy as np
import pytest

from automix.console.design import pan_matrix
from automix.console.metering import compressor_input, gain_reduction
from automix.console.render import render_console
from automix.console.schema import TRACK
from automix.console.settings import MixSettings

SR = 44100


def _compressed(settings: MixSettings, ratio: float, threshold_db: float, knee_db: float = 0.0) -> None:
    for name, value in {"compressor.ratio": ratio, "compressor.threshold_db": threshold_db,
                        "compressor.knee_db": knee_db, "compressor.attack_ms": 5.0,
                        "compressor.release_ms": 50.0, "compressor.makeup_db": 0.0}.items():
        settings.set(0, name, value)


def test_steady_sine_reads_the_static_curve() -> None:
    t = np.arange(SR) / SR
    sine = (0.5 * np.sin(2 * np.pi * 1000.0 * t))[None].astype(np.float32)  # RMS -9.03 dBFS
    settings = MixSettings.neutral(["sine.wav"])
    _compressed(settings, ratio=4.0, threshold_db=-20.0)
    meter = gain_reduction(sine, settings.track[0], TRACK, SR)
    expected_db = (10 * np.log10(0.125) + 20.0) * (1 - 1 / 4)  # 8.23 dB above a hard knee
    assert meter.max_db == pytest.approx(expected_db, abs=0.1)
    assert meter.mean_db == pytest.approx(expected_db, abs=0.3)  # the first frames are the attack
    assert meter.curve_db.shape == (100,) and meter.frame_s == pytest.approx(0.01)

    settings.set(0, "trim_db", -12.0)  # now 1 dB below the threshold: nothing to do
    assert gain_reduction(sine, settings.track[0], TRACK, SR).max_db < 0.05
    settings.set(0, "trim_db", 0.0)
    settings.set(0, "compressor.ratio", 1.0)
    off = gain_reduction(sine, settings.track[0], TRACK, SR)
    assert off.max_db == 0.0 and off.mean_db == 0.0


def test_meter_matches_what_the_renderer_applies() -> None:
    rng = np.random.default_rng(3)
    envelope = np.repeat(rng.uniform(0.02, 0.9, 40), SR // 20)  # a level change every 50 ms
    noise = (rng.standard_normal(envelope.size) * envelope * 0.3)[None].astype(np.float32)
    settings = MixSettings.neutral(["noise.wav"])
    _compressed(settings, ratio=6.0, threshold_db=-24.0, knee_db=6.0)
    settings.set(0, "eq.band_2.gain_db", 9.0)
    settings.set(0, "eq.band_2.freq_hz", 1500.0)
    settings.set(0, "trim_db", 3.0)
    settings.sample_rate = SR
    _, tracks = render_console([noise], SR, settings, return_tracks=True)

    x = compressor_input(noise, settings.track[0], TRACK, SR)[0]
    left_gain = pan_matrix(settings.track[0].astype(np.float64), np.array(False))[0, 0]
    loud = np.abs(x) > 1e-3
    applied_db = -20 * np.log10(tracks[0][0, loud] / (x[loud] * left_gain))
    meter = gain_reduction(noise, settings.track[0], TRACK, SR)
    per_sample = np.repeat(meter.curve_db, round(meter.frame_s * SR))[: x.size][loud]
    # The frame value is the most reduction in its frame: never below any sample's, and close to it.
    assert np.all(per_sample >= applied_db - 1e-3)
    assert applied_db.max() == pytest.approx(meter.max_db, abs=0.01)
    assert meter.max_db > 6.0  # the test exercises real compression
