"""Compressors for the start of a reverse fit: found where the mix shows them, nowhere else."""

from __future__ import annotations

import numpy as np
import pytest

from automix.console.render import render_console
from automix.console.schema import TRACK
from automix.console.settings import MixSettings, load_params
from automix.reverse import choose_start, residual_db, reverse
from automix.reverse.dynamics import MIN_EXPLAINED, fit_compressor, guess_compressors, with_compressors

SR = 22050
DURATION_S = 4.0
DRUM_COMPRESSOR = {"threshold_db": -26.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 120.0, "knee_db": 6.0}


@pytest.fixture
def stems(synth) -> dict[str, np.ndarray]:
    """Bass, a pad and drums whose hits span 18 dB (a compressor on them is audible)."""
    kick = synth.kick(DURATION_S, SR, period_s=0.25)
    hit_levels = np.array([1.0, 0.25, 0.6, 0.12, 0.85, 0.4, 0.18, 0.7])
    hit = np.arange(kick.shape[1]) // int(0.25 * SR)
    drums = (kick * hit_levels[hit % hit_levels.size]).astype(np.float32)
    return {"bass.wav": synth.bass(DURATION_S, SR), "drums.wav": drums, "pad.wav": synth.pad(DURATION_S, SR)}


def _settings(names: list[str], drums_compressed: bool) -> MixSettings:
    settings = MixSettings.neutral(names)
    settings.track[:, TRACK.index("gain_db")] = [-4.0, 2.0, -6.0]
    settings.track[:, TRACK.index("pan")] = [0.0, -0.3, 0.4]
    if drums_compressed:
        for name, value in DRUM_COMPRESSOR.items():
            settings.set("drums.wav", f"compressor.{name}", value)
    return settings


def _uncompressed(settings: MixSettings) -> MixSettings:
    out = settings.clipped()
    out.track[:, TRACK.index("compressor.ratio")] = 1.0
    out.track[:, TRACK.index("compressor.threshold_db")] = 0.0
    return out


def test_the_compressed_track_is_found_and_its_dynamics_recovered(stems):
    names = sorted(stems)
    audio = [stems[n] for n in names]
    truth = _settings(names, drums_compressed=True)
    mix = render_console(audio, SR, truth)
    start = _uncompressed(truth)

    guesses = guess_compressors(start, audio, mix, SR)
    assert guesses[0] is None and guesses[2] is None  # bass and pad: plain gains
    drums = guesses[1]
    assert drums is not None and drums.explained >= MIN_EXPLAINED and drums.ratio > 1.0

    # The drums rendered with the guess are far closer to the truth than the best plain gain gets.
    _, true_tracks = render_console(audio, SR, truth, return_tracks=True)
    _, guessed_tracks = render_console(audio, SR, with_compressors(start, guesses), return_tracks=True)
    _, plain_tracks = render_console(audio, SR, start, return_tracks=True)
    plain, true = plain_tracks[1].astype(np.float64), true_tracks[1].astype(np.float64)
    best_gain = float(np.sum(plain * true) / np.sum(plain * plain))
    guessed_db = residual_db(guessed_tracks[1], true)
    plain_db = residual_db(best_gain * plain, true)
    assert guessed_db <= -15.0 and guessed_db <= plain_db - 6.0, (guessed_db, plain_db)


def test_an_uncompressed_mix_with_reverb_gets_no_compressor(stems):
    names = sorted(stems)
    audio = [stems[n] for n in names]
    truth = _settings(names, drums_compressed=False)
    truth.set("drums.wav", "send.reverb_db", -8.0)
    truth.set("pad.wav", "send.reverb_db", -10.0)
    mix = render_console(audio, SR, truth)
    assert guess_compressors(truth, audio, mix, SR) == [None, None, None]


def test_the_start_switches_the_compressor_on_when_it_explains_the_mix_better(stems):
    names = sorted(stems)
    audio = [stems[n] for n in names]
    mix = render_console(audio, SR, _settings(names, drums_compressed=True))
    settings, start, residuals = choose_start(names, audio, mix, SR, windows=1, window_s=1.0)
    base = start.removesuffix("+compressors")
    assert start == f"{base}+compressors"
    assert residuals[start] <= residuals[base] - 2.0, residuals
    ratios = settings.track[:, TRACK.index("compressor.ratio")]
    assert ratios[1] > 1.0 and ratios[0] == 1.0 and ratios[2] == 1.0


def test_steady_frame_gains_need_no_search():
    rng = np.random.default_rng(3)
    audio = rng.standard_normal((1, SR)) * 0.1
    frames = SR // 512 + 1
    gains_db = -3.0 + 0.1 * rng.standard_normal(frames)  # ±0.1 dB: a fader, not a compressor
    assert fit_compressor(audio, gains_db, np.ones(frames), SR) is None


def test_reverse_reports_the_compressor_it_found(stems, synth, tmp_path):
    names = sorted(stems)
    folder = tmp_path / "stems"
    folder.mkdir()
    for name in names:
        synth.write(folder / name, stems[name], SR)
    mix = render_console([stems[n] for n in names], SR, _settings(names, drums_compressed=True))
    mix_file = synth.write(tmp_path / "mix.wav", mix, SR)
    result = reverse(folder, mix_file, tmp_path / "fit.json", steps=4, windows=1, window_s=1.0)
    assert result.start.endswith("+compressors") and "compressors from the mix's frame gains" in result.report()
    tracks = {t["name"]: t for t in result.to_json()["tracks"]}
    assert tracks["bass.wav"]["compressor"] is None and tracks["pad.wav"]["compressor"] is None
    drums = tracks["drums.wav"]["compressor"]
    assert drums["ratio"] > 1.0 and -60.0 <= drums["threshold_db"] <= 0.0
    assert f"{drums['ratio']:.1f}:1 at" in result.report()
    assert load_params(tmp_path / "fit.json").get("drums.wav", "compressor.ratio") > 1.0
