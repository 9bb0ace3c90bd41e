"""Reverse engineering a mix: alignment, refusal of unrelated mixes, a 3-stem fit with known settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from automix.console.loudness import integrated_lufs
from automix.console.render import render_console
from automix.console.schema import FINALIZE, TRACK
from automix.console.settings import MixSettings, load_params
from automix.errors import AutomixError, OutputExistsError
from automix.io import load_audio
from automix.reverse import align_mix, render_fit, residual_db, reverse

SR = 22050  # half the console's cost of 44.1 kHz; EQ frequencies are clamped below 0.45·fs


@pytest.fixture
def three_stems(synth):
    return {"kick.wav": synth.kick(2.0, SR), "lead.wav": synth.lead(2.0, SR), "pad.wav": synth.pad(2.0, SR)}


def _known_mix(stems: dict[str, np.ndarray]) -> MixSettings:
    """Random faders and pans, a narrowed stereo pad and a boosted band on the lead."""
    rng = np.random.default_rng(7)
    names = sorted(stems)
    settings = MixSettings.neutral(names)
    settings.track[:, TRACK.index("gain_db")] = rng.uniform(-9.0, 3.0, len(names))
    settings.track[:, TRACK.index("pan")] = rng.uniform(-0.7, 0.7, len(names))
    settings.set("pad.wav", "width", 0.6)
    settings.set("lead.wav", "eq.band_2.gain_db", 4.0)
    settings.set("lead.wav", "eq.band_2.freq_hz", 1000.0)
    return settings


def test_three_stem_mix_is_recovered(three_stems, tmp_path, synth):
    folder = tmp_path / "stems"
    folder.mkdir()
    for name, audio in three_stems.items():
        synth.write(folder / name, audio, SR)
    truth = _known_mix(three_stems)
    names = truth.track_names
    mixed = render_console([three_stems[n] for n in names], SR, truth)
    lag = 220  # the bounce starts 10 ms late
    mix_file = synth.write(tmp_path / "mix.wav", np.concatenate([np.zeros((2, lag), np.float32), mixed], 1), SR)

    out = tmp_path / "fit.json"
    result = reverse(folder, mix_file, out, steps=12, windows=1, window_s=1.0)
    assert result.lag_samples == lag and result.correlation > 0.9
    gain, pan = TRACK.index("gain_db"), TRACK.index("pan")
    fitted = load_params(out)  # a valid mix.json
    gain_error_db = np.abs(fitted.track[:, gain] - truth.track[:, gain])
    pan_error = np.abs(fitted.track[:, pan] - truth.track[:, pan])
    assert np.median(gain_error_db) <= 0.5, gain_error_db
    assert np.median(pan_error) <= 0.05, pan_error
    assert result.residual_db <= -20.0 and result.residual_db < result.residual_db_initial
    assert result.loss_after < result.loss_before

    # Re-rendering the JSON (what `automix render` does) reproduces the target's level and waveform.
    assert abs(fitted.finalize[FINALIZE.index("target_lufs")] - integrated_lufs(mixed, SR)) < 0.01
    rendered = render_fit([three_stems[n] for n in names], fitted, SR)
    assert abs(integrated_lufs(rendered, SR) - integrated_lufs(mixed, SR)) < 0.2
    assert residual_db(rendered, mixed) == pytest.approx(result.residual_db, abs=1e-6)
    data = result.to_json()
    assert [t["name"] for t in data["tracks"]] == names and json.dumps(data)
    assert "residual" in result.report() and "kick.wav" in result.report()

    with pytest.raises(OutputExistsError):
        reverse(folder, mix_file, out, steps=0)


def test_alignment_finds_an_early_mix(three_stems):
    stems = list(three_stems.values())
    mixed = render_console(stems, SR, MixSettings.neutral(list(three_stems)))
    aligned, alignment = align_mix(stems, mixed[:, 300:], SR)  # the mix lost its first 300 samples
    assert alignment.lag_samples == -300 and alignment.correlation > 0.95  # the 10 Hz DC blocker is not a pure gain
    np.testing.assert_array_equal(aligned[:, :300], 0)
    np.testing.assert_allclose(aligned[:, 300:], mixed[:, 300:])


def test_an_unrelated_mix_is_refused(three_stems, tmp_path, synth):
    folder = tmp_path / "stems"
    folder.mkdir()
    for name, audio in three_stems.items():
        synth.write(folder / name, audio, SR)
    other = np.concatenate([synth.bass(2.0, SR), synth.hats(2.0, SR, seed=9)])  # another song's sounds
    mix_file = synth.write(tmp_path / "other.wav", other, SR)
    with pytest.raises(AutomixError, match="does not look like a mix of these stems") as info:
        reverse(folder, mix_file, tmp_path / "fit.json", steps=0)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "fit.json").exists()


def test_cli_reverse_prints_a_fit_report(three_stems, tmp_path, synth):
    import typer
    from typer.testing import CliRunner

    from automix.style_cli import reverse_command

    folder = tmp_path / "stems"
    folder.mkdir()
    for name, audio in three_stems.items():
        synth.write(folder / name, audio, SR)
    mixed = render_console([three_stems[n] for n in sorted(three_stems)], SR, _known_mix(three_stems))
    mix_file = synth.write(tmp_path / "mix.flac", mixed, SR)
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("reverse")(reverse_command)
    result = CliRunner().invoke(app, ["reverse", str(folder), "--mix", str(mix_file), "-o", str(tmp_path / "p.json"),
                                      "--steps", "0"])
    assert result.exit_code == 0, result.output
    assert "residual" in result.output and "pad.wav" in result.output
    unrelated = synth.write(tmp_path / "other.wav", synth.hats(2.0, SR, seed=5), SR)
    refused = CliRunner().invoke(app, ["reverse", str(folder), "--mix", str(unrelated), "-o",
                                       str(tmp_path / "q.json")])
    assert refused.exit_code == 2 and "does not look like a mix" in refused.output


def _write_stems(folder, stems, synth):
    folder.mkdir()
    for name, audio in stems.items():
        synth.write(folder / name, audio, SR)
    return folder


def test_a_polarity_inverted_mix_fits_like_the_original(three_stems, tmp_path, synth):
    folder = _write_stems(tmp_path / "stems", three_stems, synth)
    mixed = render_console([three_stems[n] for n in sorted(three_stems)], SR, _known_mix(three_stems))
    plain = reverse(folder, synth.write(tmp_path / "mix.wav", mixed, SR), tmp_path / "a.json", steps=0)
    flipped = reverse(folder, synth.write(tmp_path / "inv.wav", -mixed, SR), tmp_path / "b.json", steps=0)
    assert any("polarity-inverted" in n for n in flipped.notes)
    assert not any("polarity-inverted" in n for n in plain.notes)
    assert flipped.lag_samples == plain.lag_samples == 0
    assert flipped.residual_db == pytest.approx(plain.residual_db, abs=0.01)
    np.testing.assert_allclose(flipped.gains_db, plain.gains_db, atol=0.01)


def test_periodic_stems_align_at_zero_not_one_period_later():
    t = np.arange(2 * SR) / SR
    # 100 and 200 Hz repeat every 441 samples at 22.05 kHz: one period later fits almost as well.
    tones = [np.sin(2 * np.pi * f * t)[None].astype(np.float32) * a for f, a in ((100.0, 0.3), (200.0, 0.2))]
    mixed = np.concatenate([0.7 * tones[0] + 0.2 * tones[1], 0.3 * tones[0] + 0.8 * tones[1]])
    _, alignment = align_mix(tones, mixed, SR)
    assert alignment.lag_samples == 0 and alignment.correlation > 0.999


def test_an_excerpt_of_the_mix_is_refused_with_its_length(three_stems, tmp_path, synth):
    folder = _write_stems(tmp_path / "stems", three_stems, synth)
    mixed = render_console([three_stems[n] for n in sorted(three_stems)], SR, _known_mix(three_stems))
    excerpt = synth.write(tmp_path / "excerpt.wav", mixed[:, : SR // 2], SR)
    with pytest.raises(AutomixError, match=r"the mix is 0\.5 s long, the stems 2\.0 s"):
        reverse(folder, excerpt, tmp_path / "fit.json", steps=0)


def test_settings_are_not_written_under_an_audio_name(three_stems, tmp_path, synth):
    folder = _write_stems(tmp_path / "stems", three_stems, synth)
    mixed = render_console([three_stems[n] for n in sorted(three_stems)], SR, _known_mix(three_stems))
    mix_file = synth.write(tmp_path / "mix.wav", mixed, SR)
    with pytest.raises(AutomixError, match="name the file .json"):
        reverse(folder, mix_file, folder / "fit.wav", steps=0)
    assert sorted(p.name for p in folder.iterdir()) == sorted(three_stems)


def test_a_fit_worse_than_the_bar_writes_nothing(three_stems, tmp_path, synth, monkeypatch):
    import automix.reverse.command

    folder = _write_stems(tmp_path / "stems", three_stems, synth)
    mixed = render_console([three_stems[n] for n in sorted(three_stems)], SR, _known_mix(three_stems))
    mix_file = synth.write(tmp_path / "mix.wav", mixed, SR)
    monkeypatch.setattr(automix.reverse.command, "MAX_RESIDUAL_DB", -200.0)  # no fit is this good: the guard must act
    with pytest.raises(AutomixError, match=r"does not reproduce the mix \(residual -\d+\.\d dB"):
        reverse(folder, mix_file, tmp_path / "fit.json", steps=0)
    assert not (tmp_path / "fit.json").exists()


@pytest.mark.parametrize("lag", [2, 5, 10, 20])
def test_a_small_lag_is_found_exactly_in_a_noisy_bass_heavy_mix(synth, lag):
    stems = [synth.bass(2.0, SR), synth.pad(2.0, SR), synth.kick(2.0, SR)]
    # A plain sum of the stems (the console's DC blocker would shift bass phase, hence the best lag).
    mixed = sum(np.broadcast_to(s, (2, s.shape[1])) * g for s, g in zip(stems, (0.8, 0.5, 0.6))).astype(np.float32)
    rng = np.random.default_rng(lag)
    noise = rng.standard_normal(mixed.shape).astype(np.float32) * 0.5 * np.sqrt(np.mean(mixed**2))  # unexplained
    late = np.concatenate([np.zeros((2, lag), np.float32), mixed + noise], axis=1)
    _, alignment = align_mix(stems, late, SR)
    assert alignment.lag_samples == lag and 0.8 < alignment.correlation < 0.95, alignment


def _tonal_song(folder, synth):
    """A held 55 Hz bass sine (which the rules mixer's high-passes turn by tens of degrees),
    noise hats and a kick: a plain gain cannot follow the bass, a few ms of lag can mimic it."""
    t = np.arange(2 * SR) / SR
    stems = {"bass.wav": (0.5 * np.sin(2 * np.pi * 55.0 * t))[None].astype(np.float32),
             "hats.wav": synth.hats(2.0, SR, seed=3), "kick.wav": synth.kick(2.0, SR)}
    return _write_stems(folder, stems, synth), stems


def test_a_rules_mix_of_tonal_stems_aligns_at_zero_with_its_own_polarity(tmp_path, synth):
    from automix import engine

    folder, stems = _tonal_song(tmp_path / "stems", synth)
    result = engine.mix(folder, tmp_path / "mix.wav", bit_depth="32f")
    mixed, _ = load_audio(result.mix_path)
    audio = [stems[n] for n in sorted(stems)]
    _, alignment = align_mix(audio, mixed, SR)
    assert alignment.lag_samples == 0 and not alignment.inverted and alignment.correlation > 0.9, alignment
    _, flipped = align_mix(audio, -mixed, SR)
    assert flipped.lag_samples == 0 and flipped.inverted


def test_the_start_is_written_when_the_fit_reproduces_the_mix_worse(three_stems, tmp_path, synth, monkeypatch):
    from automix.reverse import command

    folder = _write_stems(tmp_path / "stems", three_stems, synth)
    mixed = render_console([three_stems[n] for n in sorted(three_stems)], SR, _known_mix(three_stems))
    mix_file = synth.write(tmp_path / "mix.wav", mixed, SR)
    real_fit = command.fit_settings

    def drifting_fit(*args, **kwargs):  # the fit's faders end 6 dB off: its waveform is worse than the start's
        result = real_fit(*args, **kwargs)
        result.settings.track[:, TRACK.index("gain_db")] += 6.0 * np.array([1.0, -1.0, 1.0])
        return result

    monkeypatch.setattr(command, "fit_settings", drifting_fit)
    result = reverse(folder, mix_file, tmp_path / "fit.json", steps=2, windows=1, window_s=1.0)
    assert any(n.startswith("kept the start") for n in result.notes)
    assert result.residual_db == result.residual_db_initial
    rendered = render_fit([three_stems[n] for n in sorted(three_stems)], load_params(tmp_path / "fit.json"), SR)
    assert residual_db(rendered, mixed) == pytest.approx(result.residual_db_initial, abs=1e-6)
