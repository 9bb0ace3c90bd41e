"""Mixers that need no training, on generated stems: levels, roles, determinism, neutrality."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyloudnorm
import pytest
import scipy.fft
import scipy.signal
import torch

from automix import engine
from automix.console.biquad import highpass as highpass_sos
from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs, true_peak_dbtp
from automix.console.render import render_console
from automix.console.schema import FX, TRACK
from automix.errors import AutomixError
from automix.io import Stem, load_audio, load_stems, open_stems
from automix.mixers import (
    available_mixers,
    get_mixer,
    stem_analysis,  # the module whose ANALYSIS_BLOCK_SAMPLES is patched
)
from automix.mixers.baselines import EqualLoudnessMixer, MonoMixer, RandomMixer
from automix.mixers.descriptors import active_rms_dbfs, find_resonance, spectra, transient_db
from automix.mixers.roles import role_from_name
from automix.mixers.rules import ROLE_STYLES, RulesMixer, analyse_stems, highpass, placement
from automix.mixers.stem_analysis import analyse_stem

SR = 44100


def make_stems(synth, names=("kick.wav", "bass.wav", "pad.wav", "lead_vocal.wav", "hats.wav"), duration_s=2.0):
    audio = [synth.kick(duration_s), synth.bass(duration_s), synth.pad(duration_s), synth.lead(duration_s),
             synth.hats(duration_s)]
    return [Stem(name, a, SR, None) for name, a in zip(names, audio)]


@pytest.mark.parametrize(("target_lufs", "ceiling_dbtp"), [(-14.0, -1.0), (-20.0, -3.0)])
def test_rules_mix_hits_loudness_and_ceiling(song_dir, tmp_path, target_lufs, ceiling_dbtp):
    result = engine.mix(song_dir, tmp_path / "mix.wav", target_lufs=target_lufs, ceiling_dbtp=ceiling_dbtp)
    audio, sr = load_audio(result.mix_path)
    assert audio.shape[0] == 2
    assert abs(integrated_lufs(audio, sr) - target_lufs) <= 0.5
    assert true_peak_dbtp(audio, sr) <= ceiling_dbtp + 0.05  # 24-bit rounding only


def test_rules_balance_keeps_every_stem_audible(synth):
    stems = make_stems(synth)
    settings = RulesMixer().predict(stems, SR)
    _, tracks = render_console([s.audio for s in stems], SR, settings.rounded(), return_tracks=True)
    levels = {s.name: integrated_lufs(t, SR) for s, t in zip(stems, tracks)}
    assert max(levels.values()) - min(levels.values()) <= 15.0, levels
    # the role offsets survive the processing (at least half of each, after the compressors):
    # kick, bass and vocal sit above the hats (the authors' hats sit lowest of the roles here)
    for louder, quieter in (("lead_vocal", "hats"), ("kick", "hats"), ("bass", "hats")):
        intended_db = ROLE_STYLES[louder].offset_db - ROLE_STYLES[quieter].offset_db
        assert intended_db > 3.0
        assert levels[f"{louder}.wav"] - levels[f"{quieter}.wav"] > 0.5 * intended_db, levels


def test_roles_from_names_and_from_audio(synth):
    by_name = RulesMixer().predict(make_stems(synth), SR)
    assert by_name.roles == {"kick.wav": "kick", "bass.wav": "bass", "pad.wav": "pad",
                             "lead_vocal.wav": "lead_vocal", "hats.wav": "hats"}
    anonymous = [f"track{i}.wav" for i in range(1, 6)]
    by_audio = RulesMixer().predict(make_stems(synth, anonymous), SR)
    assert [by_audio.roles[n] for n in anonymous] == ["kick", "bass", "pad", "melodic", "hats"]
    assert by_audio.notes["track2.wav"][0].startswith("role bass from audio")
    assert by_name.notes["kick.wav"][0] == "role kick from name ('kick')"


@pytest.mark.parametrize(("name", "role"), [
    ("Bass Drum.wav", "kick"), ("LeadVox.wav", "lead_vocal"), ("synth_bass.flac", "bass"),
    ("BGV 2.wav", "backing_vocal"), ("Gtr_L.wav", "guitar"), ("ride.aiff", "hats"), ("Snare-Top.wav", "snare"),
    ("piano01.wav", "keys"), ("strings.wav", "pad"), ("sax solo.wav", "lead"), ("08_Toms.wav", "drums"),
    ("take3.wav", None),
])
def test_role_keywords(name, role):
    assert role_from_name(name)[0] == role


def test_rules_decisions_are_recorded_and_in_range(synth):
    stems = make_stems(synth)
    settings = RulesMixer().predict(stems, SR)
    assert np.all(settings.track >= TRACK.minimum()) and np.all(settings.track <= TRACK.maximum())
    for s in stems:
        notes = settings.notes[s.name]
        assert any(n.startswith("balance: trim") for n in notes) and any("high-pass" in n for n in notes)
    # trims bring every stem to the normalised loudness (before the role offsets)
    for s in stems:
        expected = NORMALISED_STEM_LUFS - integrated_lufs(s.audio, SR)
        assert settings.get(s.name, "trim_db") == pytest.approx(expected, abs=1e-6)
    # low-frequency anchors and the lead stay centred, the kick is dry, the vocal gets reverb
    for name in ("kick.wav", "bass.wav", "lead_vocal.wav"):
        assert settings.get(name, "pan") == 0.0
    assert settings.get("kick.wav", "send.reverb_db") == FX.spec("reverb.return_db").minimum
    assert settings.get("lead_vocal.wav", "send.reverb_db") > -30.0
    # compression follows the crest factor: spiky hats compressed harder than the kick, the sine bass not at all
    assert settings.get("hats.wav", "compressor.ratio") > settings.get("kick.wav", "compressor.ratio") > 1.0
    assert settings.get("bass.wav", "compressor.ratio") == 1.0
    assert settings.get("hats.wav", "eq.highpass.freq_hz") > settings.get("lead_vocal.wav", "eq.highpass.freq_hz")


def test_resonance_is_found_and_cut():
    rng = np.random.default_rng(3)
    t = np.arange(2 * SR) / SR
    noise = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(t.size))  # darkish noise
    noise /= np.std(noise)
    ringing = noise * 0.1 + 0.05 * np.sin(2 * np.pi * 1234.0 * t)
    f = analyse_stem(ringing[None].astype(np.float32), SR)
    assert f.resonance_hz == pytest.approx(1234.0, abs=6.0)
    assert f.resonance_db > 10.0
    flat_freqs = np.linspace(0, SR / 2, 4097)
    assert find_resonance(flat_freqs, np.ones_like(flat_freqs)) == (0.0, 0.0)
    for name, deepest_db in (("snare.wav", -5.0), ("guitar.wav", -3.0)):  # pitched sources: shallower cuts
        settings = RulesMixer().predict([Stem(name, ringing[None].astype(np.float32), SR)], SR)
        assert settings.get(0, "eq.band_2.freq_hz") == pytest.approx(1234.0, abs=6.0)
        assert settings.get(0, "eq.band_2.gain_db") == pytest.approx(deepest_db)


def test_highpass_protects_low_content(synth):
    low_pad = np.sin(2 * np.pi * 65.0 * np.arange(SR) / SR)[None].astype(np.float32)
    cutoff, note = highpass("pad", analyse_stem(low_pad, SR))
    assert cutoff < 0.75 * 65.0 and "lowered" in note
    cutoff, _ = highpass("pad", analyse_stem(synth.lead(1.0), SR))
    assert cutoff == 120.0


def test_placement_spreads_by_brightness(synth):
    names = ["a.wav", "b.wav", "c.wav", "d.wav"]
    freqs = [300.0, 600.0, 1200.0, 2400.0]
    t = np.arange(SR) / SR
    feats = {n: analyse_stem(np.sin(2 * np.pi * f * t)[None].astype(np.float32), SR) for n, f in zip(names, freqs)}
    pans = placement(names, dict.fromkeys(names, "keys"), feats, dict.fromkeys(names, False))
    values = [pans[n][0] for n in names]
    assert sum(values) == pytest.approx(0.0, abs=1e-9)  # balanced left/right
    assert abs(values[0]) < abs(values[2])  # brighter pair sits wider
    assert np.sign(values[0]) != np.sign(values[1])


def test_random_is_seeded(synth):
    stems = make_stems(synth)
    a = RandomMixer().predict(stems, SR, seed=7)
    b = RandomMixer().predict(stems, SR, seed=7)
    c = RandomMixer().predict(stems, SR, seed=8)
    np.testing.assert_array_equal(a.track, b.track)
    assert not np.array_equal(a.track, c.track)
    gains = a.track[:, TRACK.index("gain_db")]
    assert np.all(np.abs(gains) <= 12.0) and np.std(gains) > 1.0
    eq = EqualLoudnessMixer().predict(stems, SR)
    np.testing.assert_array_equal(a.track[:, TRACK.index("trim_db")], eq.track[:, TRACK.index("trim_db")])


def test_equal_loudness_tracks_are_equally_loud(synth):
    stems = make_stems(synth)
    settings = EqualLoudnessMixer().predict(stems, SR)
    _, tracks = render_console([s.audio for s in stems], SR, settings.rounded(), return_tracks=True)
    levels = [integrated_lufs(t, SR) for t in tracks]
    assert max(levels) - min(levels) < 0.5
    assert np.mean(levels) == pytest.approx(NORMALISED_STEM_LUFS, abs=0.5)


def test_mono_is_a_plain_sum(synth):
    stems = make_stems(synth, duration_s=1.0)
    settings = MonoMixer().predict(stems, SR)
    np.testing.assert_array_equal(settings.track, np.tile(TRACK.defaults(), (len(stems), 1)))
    mix = render_console([s.audio for s in stems], SR, settings.rounded())
    # reference: each strip's always-on DC blocker, constant-power centre (−3 dB) for mono, summed
    dc_blocker = highpass_sos(torch.tensor(TRACK.spec("eq.highpass.freq_hz").default), SR).numpy()[None]
    expected = np.zeros((2, stems[0].audio.shape[1]))
    for s in stems:
        x = scipy.signal.sosfilt(dc_blocker, s.audio.astype(np.float64), axis=-1)
        expected += x if s.is_stereo else np.vstack([x, x]) * np.sqrt(0.5)
    expected = scipy.signal.sosfilt(dc_blocker, expected, axis=-1)  # the master strip's DC blocker
    assert np.max(np.abs(mix - expected)) < 1e-5


def test_get_mixer_names_and_errors():
    assert {"rules", "mono", "equal-loudness", "random"} <= set(available_mixers())
    assert get_mixer("rules", "cpu").name == "rules"
    with pytest.raises(AutomixError, match="unknown model|available"):
        get_mixer("no-such-model", "cpu")
    with pytest.raises(AutomixError, match="--device"):
        get_mixer("rules", "tpu")


def test_loaded_stems_feed_the_mixers(song_dir):
    stems, sr, _ = load_stems(song_dir)
    settings = RulesMixer().predict(stems, sr)
    assert settings.track_names == [s.name for s in stems] and settings.sample_rate == sr


# ---- the analysis: one pass over the samples, same numbers in memory and streamed ------------------


def test_level_features_match_their_definitions(synth):
    """The fused pass gives what the separate measurements give: BS.1770 loudness (pyloudnorm's
    ITU filters), sample peak, 50 ms active RMS, 10 ms transient spread, L/R correlation."""
    rng = np.random.default_rng(5)
    n = 37 * SR // 10  # whole 100 ms hops, where pyloudnorm's block layout equals ours
    left = (0.3 * rng.standard_normal(n) * np.linspace(0.05, 1.0, n)).astype(np.float32)
    stereo = np.stack([left, 0.6 * left + (0.1 * rng.standard_normal(n)).astype(np.float32)])
    for audio in (stereo[:1], stereo, synth.kick(3.7)):
        f = analyse_stem(audio, SR)
        meter = pyloudnorm.Meter(SR, filter_class="DeMan")
        assert f.lufs == pytest.approx(meter.integrated_loudness(audio.T.astype(np.float64)), abs=1e-6)
        assert f.lufs == pytest.approx(integrated_lufs(audio, SR), abs=1e-9)
        assert f.peak_dbfs == 20 * math.log10(float(np.max(np.abs(audio))))
        assert f.active_rms_dbfs == pytest.approx(active_rms_dbfs(audio, SR), abs=1e-9)
        assert f.transient_db == pytest.approx(transient_db(audio, SR), abs=1e-9)
    l64, r64 = stereo.astype(np.float64)
    expected = np.dot(l64, r64) / np.sqrt(np.dot(l64, l64) * np.dot(r64, r64))
    assert analyse_stem(stereo, SR).stereo_correlation == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("frames", [256, 37])  # an even and an odd number of spectrum windows
def test_spectra_are_mean_and_median_of_hann_windowed_power(frames):
    rng = np.random.default_rng(frames)
    nperseg = 2 ** math.ceil(math.log2(SR / 5))  # ~0.2 s or a little more (16384 at 44.1 kHz)
    x = (0.2 * rng.standard_normal((frames + 1) * nperseg // 2)).astype(np.float32)
    freqs, mean, median = spectra(x, SR)
    windows = np.stack([x[s:s + nperseg] for s in range(0, x.size - nperseg + 1, nperseg // 2)])
    assert windows.shape[0] == frames
    power = np.abs(scipy.fft.rfft(windows * np.hanning(nperseg).astype(np.float32), axis=-1)) ** 2
    assert freqs.size == nperseg // 2 + 1
    np.testing.assert_allclose(mean, power.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(median, np.median(power, axis=0), rtol=1e-4)


def test_streamed_stems_give_the_same_features(tmp_path, synth, monkeypatch):
    """Features of stems streamed from disk equal those of the loaded stems, whatever the
    analysis block (blocks that cut frames, hops and spectrum windows included)."""
    synth.write(tmp_path / "kick.wav", synth.kick(3.3))
    synth.write(tmp_path / "pad.flac", synth.pad(3.3))
    loaded, _, _ = load_stems(tmp_path)
    whole = analyse_stems(loaded)
    monkeypatch.setattr(stem_analysis, "ANALYSIS_BLOCK_SAMPLES", 10_007)
    opened, _, _ = open_stems(tmp_path)
    try:
        streamed, blocked = analyse_stems(opened), analyse_stems(loaded)
    finally:
        for stem in opened:
            stem.close()
    assert streamed == blocked
    for name, f in whole.items():
        for field in dataclasses.fields(f):
            assert getattr(streamed[name], field.name) == pytest.approx(getattr(f, field.name), abs=1e-9)
