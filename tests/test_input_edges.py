"""Hostile inputs found by an adversarial QA pass: training configs that are not valid YAML or
not UTF-8, bad overrides and devices that must fail before the training cache is built, stems
that are a lone click or only a DC offset, and a link to a stem in the same folder. Generated
data only; nothing here trains or mixes more than 2 s of audio.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_helpers import assert_user_error, run
from signals import sine as _signal_sine

from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs
from automix.console.schema import SEND_OFF_DB, TRACK
from automix.errors import AutomixError
from automix.io import load_stems, scan_folder
from automix.mixers.rules import IMPULSIVE_PLR_DB, ROLE_STYLES, RulesMixer
from automix.mixers.stem_analysis import analyse_stem
from automix.train import loop
from automix.train.config import ConfigError, load_config

SR = 44100
SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


# ---- training configs and overrides: one line, exit 2, before any data work --------------------

def test_yaml_syntax_error_is_one_line_with_its_position(config, no_data_work):
    broken = config.with_name("broken.yaml")
    broken.write_text("steps: 5\nmodel:\n  kind: [dmc\n  sizes: {a: 1}\n", encoding="utf-8")
    line = assert_user_error(run("train", "--config", broken), f"{broken}: not valid YAML (line ", only_line=True)
    assert line.endswith(")") and "column" in line
    # the position is the one the YAML library reports, counted from 1
    bad_indent = config.with_name("indent.yaml")
    bad_indent.write_text("steps: 5\n  batch_size: 2\n", encoding="utf-8")
    assert_user_error(run("train", "--config", bad_indent), "not valid YAML (line 2, column 13: ", only_line=True)


def test_config_that_is_not_utf8_says_so(config, no_data_work):
    latin1 = config.with_name("latin1.yaml")
    latin1.write_bytes('description: "mélange à trois"\n'.encode("latin-1"))
    assert_user_error(run("train", "--config", latin1), f"error: {latin1}: not a UTF-8 text file", only_line=True)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--steps", "-1"], "--steps"),
    (["--steps", "0"], "--steps"),
    (["--device", "gpu"], "--device 'gpu'"),
    (["--out-dir", "{config}"], "a file is in the way"),
])
def test_bad_overrides_fail_before_the_training_cache(config, no_data_work, args, fragment):
    args = [a.format(config=config) for a in args]
    assert_user_error(run("train", "--config", config, *args), fragment, only_line=True)
    assert not (config.parent / "cache").exists()


@pytest.mark.parametrize(("old", "new", "fragment"), [
    ("lr: 0.003", "lr: -0.003", "lr: expected a number > 0"),
    ("seed: 0", "seed: -4", "seed: expected an integer ≥ 0"),
    ("max_tracks: 4", "max_tracks: 4\n  workers: -1", "data.workers: expected an integer ≥ 0"),
    ("max_tracks: 4", "max_tracks: 4\n  max_songs: -2", "data.max_songs"),
    ("excerpt_s: 2.0", "excerpt_s: .nan", "data.excerpt_s: expected a number > 0"),
    ("sample_rate_hz: 8000", "sample_rate_hz: 100", "data.sample_rate_hz"),
    ("fft_sizes: [256, 512]", "fft_sizes: [256, big]", "loss.fft_sizes"),
    ("steps: 6", "steps: 6.5", "steps: expected a positive integer"),
])
def test_bad_config_values_fail_before_the_training_cache(config, no_data_work, old, new, fragment):
    text = config.read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new), encoding="utf-8")
    assert_user_error(run("train", "--config", config), fragment, only_line=True)
    assert not (config.parent / "cache").exists() and not (config.parent / "run").exists()


def test_cuda_without_cuda_is_a_user_error(config, no_data_work, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert_user_error(run("train", "--config", config, "--device", "cuda"), "CUDA is not available", only_line=True)
    assert not (config.parent / "run").exists()


def test_run_checks_values_set_after_loading(config, no_data_work):
    """Code that overrides a loaded config (as the CLI does) is checked by ``run`` too."""
    cfg = load_config(config)
    cfg.steps = -1
    with pytest.raises(ConfigError, match="steps: expected a positive integer"):
        loop.run(cfg, progress=False, log=lambda m: None)
    cfg.steps = 6
    with pytest.raises(AutomixError, match="--device 'tpu'"):
        loop.run(cfg, device="tpu", progress=False, log=lambda m: None)


def test_a_run_that_fails_on_missing_data_leaves_no_output_folder(config, tmp_path):
    assert_user_error(run("train", "--config", config), only_line=True)  # data/synth of the fixture is missing
    assert not (tmp_path / "run").exists()


def test_an_output_folder_under_a_file_fails_before_the_training_cache(config, no_data_work, tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder")
    assert_user_error(run("train", "--config", config, "--out-dir", tmp_path / "blocker" / "run"),
                      "cannot create the output folder", only_line=True)


def test_shipped_configs_still_load():
    for path in sorted(SMOKE.parent.glob("*.yaml")):
        load_config(path)


# ---- rules mixer: a lone click and a DC offset are left alone --------------------------------------

def _tone(freq_hz: float, amp: float, seed: int, seconds: float = 2.0) -> np.ndarray:
    tremolo = 1.0 + _signal_sine(3.0, seconds, amplitude=0.5, sr=SR, dtype=np.float64)
    tone = _signal_sine(freq_hz, seconds, amplitude=amp, sr=SR, dtype=np.float64)
    noise = 0.01 * np.random.default_rng(seed).standard_normal(tone.size)
    return (tremolo * tone + noise).astype(np.float32)


def _write_song(folder: Path, odd: bool) -> Path:
    """guitar + bass (+ a one-sample click and a DC offset named like a bass when ``odd``)."""
    folder.mkdir(parents=True)
    n = 2 * SR
    sf.write(folder / "guitar.wav", _tone(330.0, 0.2, 1), SR, subtype="FLOAT")
    sf.write(folder / "bass.wav", _tone(55.0, 0.3, 2), SR, subtype="FLOAT")
    if odd:
        click = np.zeros(n, np.float32)
        click[SR] = 0.5
        sf.write(folder / "click.wav", click, SR, subtype="FLOAT")
        sf.write(folder / "bass_dc.wav", np.full(n, 0.1, np.float32), SR, subtype="FLOAT")
    return folder


def _settings(folder: Path):
    stems, rate, _ = load_stems(folder)
    return {s.name: s for s in stems}, RulesMixer().predict(stems, rate)


def test_click_and_dc_stems_are_not_boosted(tmp_path):
    _, settings = _settings(_write_song(tmp_path / "odd", odd=True))
    for name in ("click.wav", "bass_dc.wav"):
        # Before the fix: click trim +22.4 dB (fader −5 as "hats"), DC trim +23.3 dB and fader +1 as "bass".
        assert settings.get(name, "trim_db") + settings.get(name, "gain_db") <= 0.0
        row = settings.track[settings.track_names.index(name)]
        np.testing.assert_array_equal(row, TRACK.defaults())  # a neutral strip: no compressor make-up either
        assert any(n.startswith("left alone: ") for n in settings.notes[name]), settings.notes[name]
    assert settings.roles["bass_dc.wav"] == "silent"  # not a bass, whatever its name says
    assert "DC offset" in " ".join(settings.notes["bass_dc.wav"])
    assert "impulsive" in " ".join(settings.notes["click.wav"])
    assert settings.get("bass_dc.wav", "send.reverb_db") == SEND_OFF_DB


def test_normal_stems_keep_their_treatment_next_to_click_and_dc(tmp_path):
    stems, with_odd = _settings(_write_song(tmp_path / "odd", odd=True))
    _, plain = _settings(_write_song(tmp_path / "plain", odd=False))
    for name in ("guitar.wav", "bass.wav"):
        # the usual rules (as before this change): equal loudness, then the role's fader offset
        expected_trim = NORMALISED_STEM_LUFS - integrated_lufs(stems[name].audio, SR)
        assert with_odd.get(name, "trim_db") == pytest.approx(expected_trim, abs=1e-6)
        assert with_odd.get(name, "gain_db") == ROLE_STYLES[with_odd.roles[name]].offset_db
        # …and exactly the settings of the same song without the odd stems
        np.testing.assert_array_equal(with_odd.track[with_odd.track_names.index(name)],
                                      plain.track[plain.track_names.index(name)])
    assert with_odd.roles["bass.wav"] == "bass" and with_odd.roles["guitar.wav"] == "guitar"
    np.testing.assert_array_equal(with_odd.master, plain.master)
    assert with_odd.get("guitar.wav", "eq.highpass.freq_hz") == 90.0  # processed, not left alone


def test_dc_share_and_the_impulsive_bound():
    n = 2 * SR
    tone = _tone(330.0, 0.2, 3)[None]
    assert analyse_stem(np.full((1, n), 0.1, np.float32), SR).only_dc
    assert analyse_stem(tone, SR).dc_share < 1e-3
    # a real source on a DC offset is still a source (the offset holds ~80 % of the power here)
    offset = analyse_stem(tone + np.float32(0.3), SR)
    assert 0.5 < offset.dc_share < 0.99 and not offset.only_dc
    # a short rimshot-like hit (peak ~26 dB over its loudness) is still levelled: the bound is above it
    m = int(0.05 * SR)
    rim = np.zeros((1, n), np.float32)
    rim[0, SR:SR + m] = 0.5 * np.exp(-np.arange(m) / (0.008 * SR)) * np.random.default_rng(4).standard_normal(m)
    f = analyse_stem(rim, SR)
    assert 20.0 < f.peak_dbfs - f.lufs < IMPULSIVE_PLR_DB


# ---- a link to another stem of the folder is not mixed twice --------------------------------------

def test_link_to_a_stem_of_the_same_folder_is_skipped(tmp_path):
    folder = tmp_path / "stems"
    folder.mkdir()
    sf.write(folder / "bass.wav", _tone(55.0, 0.3, 5, 0.5), SR)
    sf.write(folder / "drums.wav", _tone(200.0, 0.3, 6, 0.5), SR)
    outside = tmp_path / "elsewhere.wav"
    sf.write(outside, _tone(440.0, 0.3, 7, 0.5), SR)
    try:
        os.symlink(folder / "bass.wav", folder / "bass_link.wav")
        os.symlink("drums.wav", folder / "a_drums_link.wav")  # relative, and before its target by name
        os.symlink(outside, folder / "keys.wav")  # a link to a file outside the folder is a real stem
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links are not available here")
    files, notes = scan_folder(folder)
    assert [p.name for p in files] == ["bass.wav", "drums.wav", "keys.wav"]
    assert notes == ["skipped a_drums_link.wav (the same file as drums.wav)",
                     "skipped bass_link.wav (the same file as bass.wav)"]
    stems, _, load_notes = load_stems(folder)
    assert [s.name for s in stems] == ["bass.wav", "drums.wav", "keys.wav"] and load_notes == notes


def test_distinct_files_with_the_same_audio_are_kept(tmp_path):
    folder = tmp_path / "stems"
    folder.mkdir()
    audio = _tone(55.0, 0.3, 8, 0.5)
    sf.write(folder / "gtr_l.wav", audio, SR)
    sf.write(folder / "gtr_r.wav", audio, SR)  # a copy, not a link: the user asked for it twice
    try:  # a hard link looks like an ordinary file: kept like a copy (benchmarks build sessions this way)
        os.link(folder / "gtr_l.wav", folder / "gtr_x.wav")
    except (OSError, NotImplementedError):
        pytest.skip("hard links are not available here")
    files, notes = scan_folder(folder)
    assert [p.name for p in files] == ["gtr_l.wav", "gtr_r.wav", "gtr_x.wav"] and notes == []


def test_a_cuda_index_beyond_the_machine_is_a_user_error(monkeypatch):
    from automix.mixers import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # pretend: one GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(AutomixError, match=r"--device cuda:3: this machine has 1 CUDA device \(cuda:0…cuda:0\)"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("device", ["cpu\n", " cpu", "cuda:", "cuda:-1"])
def test_a_device_with_stray_characters_is_refused(device):
    from automix.mixers import check_device

    with pytest.raises(AutomixError, match="choose auto, cpu, cuda, cuda:N or mps"):
        check_device(device)
