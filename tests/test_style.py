"""Style transfer: reference loading and validation, analysis windows, --amount blending, the pipeline."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import soundfile as sf

from automix import engine
from automix.analysis_windows import multitrack_windows, signal_windows
from automix.console.loudness import integrated_lufs
from automix.console.schema import FX, MASTER, TRACK
from automix.console.settings import MixSettings, load_params
from automix.errors import AudioLoadError, AutomixError, OutputExistsError
from automix.style import (
    REFERENCE_LUFS,
    blend_settings,
    load_reference,
    style_transfer,
)

SR = 44100


# --------------------------------------------------------------------------------------
# Analysis windows
# --------------------------------------------------------------------------------------


def test_windows_skip_a_quiet_intro():
    rng = np.random.default_rng(0)
    n = 20 * SR
    quiet_intro = np.zeros((1, n), np.float32)
    quiet_intro[0, : 8 * SR] = 0.001 * rng.standard_normal(8 * SR)  # −60 dBFS intro
    quiet_intro[0, 8 * SR:] = 0.1 * rng.standard_normal(12 * SR)
    drums = np.zeros((2, n), np.float32)
    drums[:, 12 * SR:] = 0.1 * rng.standard_normal((2, 8 * SR))  # the full arrangement starts at 12 s
    windows, starts = multitrack_windows([quiet_intro, drums], SR, 3.0, 2)
    assert len(windows) == 2 and all(len(w) == 2 for w in windows)
    assert windows[0][1].shape == (2, 3 * SR) and windows[0][0].shape == (1, 3 * SR)
    assert all(s >= 12 * SR for s in starts)  # every window has both stems playing
    assert all(b - a >= 3 * SR for a, b in itertools.pairwise(starts))  # no overlap
    ref_windows, ref_starts = signal_windows(quiet_intro, SR, 2.0, 2)
    assert all(s >= 8 * SR for s in ref_starts) and ref_windows[0].shape == (1, 2 * SR)


def test_windows_of_a_short_signal_are_padded():
    windows, starts = signal_windows(np.ones((2, SR), np.float32), SR, 3.0, 4)
    assert starts == [0] and windows[0].shape == (2, 3 * SR)
    assert np.all(windows[0][:, SR:] == 0) and np.all(windows[0][:, :SR] == 1)


# --------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------


def test_mono_reference_at_another_rate_is_stereo_at_minus_16_lufs(synth, tmp_path):
    path = synth.write(tmp_path / "ref.wav", 0.3 * synth.lead(2.0, 22050), 22050)
    ref = load_reference(path, SR)
    assert ref.shape == (2, 2 * SR) and ref.dtype == np.float32
    np.testing.assert_array_equal(ref[0], ref[1])
    assert abs(integrated_lufs(ref, SR) - REFERENCE_LUFS) < 0.05


def _bad_reference(kind: str, folder):
    path = folder / f"{kind}.wav"
    if kind == "silent":
        sf.write(str(path), np.zeros((2 * SR, 2), np.float32), SR)
    elif kind == "short":
        sf.write(str(path), 0.1 * np.ones((SR // 2, 2), np.float32), SR)
    elif kind == "corrupt":
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + bytes(range(200)))
    elif kind == "8ch":
        sf.write(str(path), 0.1 * np.random.default_rng(0).standard_normal((2 * SR, 8)).astype(np.float32), SR)
    elif kind == "missing":
        pass
    return path


@pytest.mark.parametrize(("kind", "fragment"), [
    ("silent", "silent"), ("short", "0.50 s long"), ("corrupt", "cannot decode"),
    ("8ch", "8 channels"), ("missing", "not found"),
])
def test_bad_references_are_one_line_errors(tmp_path, kind, fragment):
    path = _bad_reference(kind, tmp_path)
    with pytest.raises(AudioLoadError) as info:
        load_reference(path, SR)
    message = str(info.value)
    assert fragment in message and "\n" not in message and message.startswith("reference ")


@pytest.mark.parametrize(("kind", "fragment"), [
    ("short", "0.50 s long"), ("corrupt", "cannot decode"), ("8ch", "8 channels"), ("missing", "not found"),
])
def test_bad_reference_fails_before_the_stems_are_read(tmp_path, kind, fragment, monkeypatch):
    from automix import style

    def no_stems(*args, **kwargs):
        raise AssertionError("stems were loaded before the reference was checked")

    monkeypatch.setattr(style, "load_stems", no_stems)
    stems = tmp_path / "stems"
    stems.mkdir()
    sf.write(str(stems / "tone.wav"), 0.1 * np.ones((SR, 1), np.float32), SR)
    with pytest.raises(AudioLoadError, match=fragment):
        style.style_transfer(stems, [_bad_reference(kind, tmp_path)], tmp_path / "out.wav", model="rules")


# --------------------------------------------------------------------------------------
# --amount blending
# --------------------------------------------------------------------------------------


def _two_settings() -> tuple[MixSettings, MixSettings]:
    rng = np.random.default_rng(3)
    names = ["a.wav", "b.wav"]
    neutral = MixSettings.neutral(names)
    transferred = MixSettings(
        names,
        TRACK.from_normalised(rng.uniform(0, 1, (2, len(TRACK)))),
        FX.from_normalised(rng.uniform(0, 1, len(FX))),
        MASTER.from_normalised(rng.uniform(0, 1, len(MASTER))),
    )
    return neutral, transferred


def test_amount_zero_and_one_are_the_endpoints_bit_for_bit():
    neutral, transferred = _two_settings()
    at_zero = blend_settings(neutral, transferred, 0.0)
    at_one = blend_settings(neutral, transferred, 1.0)
    for attr in ("track", "fx", "master"):
        np.testing.assert_array_equal(getattr(at_zero, attr), getattr(neutral, attr))
        np.testing.assert_array_equal(getattr(at_one, attr), getattr(transferred, attr))


def test_amount_interpolates_in_normalised_space():
    neutral, transferred = _two_settings()
    half = blend_settings(neutral, transferred, 0.5)
    g = TRACK.index("gain_db")  # linear scale: arithmetic midpoint
    np.testing.assert_allclose(half.track[:, g], (neutral.track[:, g] + transferred.track[:, g]) / 2, atol=1e-9)
    f = TRACK.index("eq.band_2.freq_hz")  # log scale: geometric midpoint
    np.testing.assert_allclose(half.track[:, f], np.sqrt(neutral.track[:, f] * transferred.track[:, f]), rtol=1e-9)


def test_per_aspect_amounts_touch_only_their_parameters():
    neutral, transferred = _two_settings()
    eq_only = blend_settings(neutral, transferred, 0.0, eq_amount=1.0)
    width_only = blend_settings(neutral, transferred, 0.0, width_amount=1.0)
    dyn_off = blend_settings(neutral, transferred, 1.0, dynamics_amount=0.0)
    for i, name in enumerate(TRACK.names):
        want_eq = transferred if name.startswith("eq.") else neutral
        assert eq_only.track[0, i] == want_eq.track[0, i], name
        want_width = transferred if name in ("pan", "width") else neutral
        assert width_only.track[0, i] == want_width.track[0, i], name
        want_dyn = neutral if name.startswith("compressor.") else transferred
        assert dyn_off.track[0, i] == want_dyn.track[0, i], name
    for i, name in enumerate(MASTER.names):
        assert eq_only.master[i] == (transferred if name.startswith("eq.") else neutral).master[i], name
    np.testing.assert_array_equal(eq_only.fx, neutral.fx)


@pytest.mark.parametrize("kwargs", [{"amount": 1.5}, {"amount": -0.1}, {"eq_amount": 2.0},
                                    {"width_amount": float("nan")}])
def test_amount_outside_zero_one_is_refused(kwargs):
    neutral, transferred = _two_settings()
    amount = kwargs.pop("amount", 1.0)
    with pytest.raises(AutomixError, match="between 0 and 1"):
        blend_settings(neutral, transferred, amount, **kwargs)


# --------------------------------------------------------------------------------------
# The pipeline (rules mixer + refinement stand in for the trained model)
# --------------------------------------------------------------------------------------


@pytest.fixture
def short_song(tmp_path, synth):
    folder = tmp_path / "stems"
    folder.mkdir()
    synth.write(folder / "kick.wav", synth.kick(1.5))
    synth.write(folder / "pad.wav", synth.pad(1.5))
    synth.write(folder / "lead_vocal.wav", synth.lead(1.5))
    ref = tmp_path / "ref.flac"
    synth.write(ref, 0.5 * synth.pad(3.0) + synth.hats(3.0))
    return folder, ref


def test_amount_zero_renders_the_rules_mix(short_song, tmp_path):
    folder, ref = short_song
    rules = engine.mix(folder, tmp_path / "rules.wav", model="rules")
    styled = style_transfer(folder, [ref], tmp_path / "styled.wav", model="rules", refine_steps=0, amount=0.0)
    a, b = load_params(rules.params_path), load_params(styled.params_path)
    for attr in ("track", "fx", "master", "finalize"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    np.testing.assert_array_equal(sf.read(str(rules.mix_path))[0], sf.read(str(styled.mix_path))[0])


def test_style_transfer_refines_towards_the_reference(short_song, tmp_path, synth):
    folder, ref = short_song
    ref2 = synth.write(tmp_path / "ref2.wav", synth.bass(2.0))
    out = tmp_path / "out" / "mix.wav"
    result = style_transfer(folder, [ref, ref2], out, model="rules", refine_steps=3, target_lufs=-16.0)
    audio, sr = sf.read(str(out), always_2d=True)
    assert sr == SR and audio.shape == (int(1.5 * SR), 2)
    assert abs(integrated_lufs(audio.T, sr) - (-16.0)) < 0.5
    data = result.to_json()
    assert data["style"]["references"] == [str(ref), str(ref2)]
    assert data["style"]["refine"]["af_after"] < data["style"]["refine"]["af_before"]
    params = json.loads(out.with_suffix(".json").read_text())
    assert params["mixer"] == "style-transfer:rules"
    load_params(out.with_suffix(".json"))  # valid, renders with `automix render`
    with pytest.raises(OutputExistsError):
        style_transfer(folder, [ref], out, model="rules", refine_steps=0)


def test_a_bad_reference_fails_before_anything_is_written(short_song, tmp_path):
    folder, ref = short_song
    bad = _bad_reference("8ch", tmp_path)
    out = tmp_path / "mix.wav"
    with pytest.raises(AudioLoadError, match="8 channels"):
        style_transfer(folder, [ref, bad], out, model="rules")
    assert not out.exists() and not out.with_suffix(".json").exists()
    with pytest.raises(AutomixError, match="at least one reference"):
        style_transfer(folder, [], out, model="rules")
    with pytest.raises(AutomixError, match="--amount"):
        style_transfer(folder, [ref], out, model="rules", amount=2.0)


# --------------------------------------------------------------------------------------
# Command line (registered on a throwaway app; automix/cli.py registers the same functions)
# --------------------------------------------------------------------------------------


def _cli():
    import typer

    from automix.style_cli import reverse_command, style_transfer_command

    app = typer.Typer()
    app.callback()(lambda: None)  # keep sub-command names even with few commands
    app.command("style-transfer")(style_transfer_command)
    app.command("reverse")(reverse_command)
    return app


def test_cli_defaults_match_the_engine():
    import inspect

    from automix.refine import DEFAULT_REFINE_STEPS
    from automix.reverse import DEFAULT_REVERSE_STEPS
    from automix.style import DEFAULT_STYLE_MODEL
    from automix.style_cli import reverse_command, style_transfer_command

    style = inspect.signature(style_transfer_command).parameters
    assert style["refine"].default == DEFAULT_REFINE_STEPS and style["model"].default == DEFAULT_STYLE_MODEL
    assert inspect.signature(reverse_command).parameters["steps"].default == DEFAULT_REVERSE_STEPS


def test_cli_style_transfer_json_and_bad_reference(short_song, tmp_path):
    from typer.testing import CliRunner

    folder, ref = short_song
    runner = CliRunner()
    out = tmp_path / "cli.wav"
    ok = runner.invoke(_cli(), ["style-transfer", str(folder), "--ref", str(ref), "-o", str(out), "--model", "rules",
                                "--refine", "0", "--amount", "0.5", "--eq-amount", "0", "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["style"]["amounts"] == {"amount": 0.5, "eq": 0.0, "dynamics": 0.5, "width": 0.5}
    assert out.is_file()
    bad = _bad_reference("short", tmp_path)
    failed = runner.invoke(_cli(), ["style-transfer", str(folder), "--ref", str(bad), "-o", str(tmp_path / "x.wav"),
                                    "--model", "rules"])
    assert failed.exit_code == 2
    assert "error: reference short.wav" in failed.output
