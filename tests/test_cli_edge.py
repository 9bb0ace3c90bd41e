"""Adversarial command-line cases: usage errors on one line, output paths that collide, odd
files (unreadable, pipes, folders), hostile params JSON, and the true-peak ceiling of integer
output formats. Generated audio only; every case fails before heavy work or mixes 1–2 s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from cli_helpers import assert_user_error, run
from signals import sine as _signal_sine

from automix.cli_common import mix_summary
from automix.console.loudness import true_peak_dbtp
from automix.console.settings import load_params
from automix.errors import AutomixError, ParamsError
from automix.io import decode as audio_io
from automix.io import scan_folder

SR = 44100


def _tone(seconds: float = 1.0, freq_hz: float = 220.0, channels: int = 1, amp: float = 0.3) -> np.ndarray:
    x = _signal_sine(freq_hz, seconds, amplitude=amp, sr=SR, dtype=np.float64)
    x += 0.01 * np.random.default_rng(int(freq_hz)).standard_normal(x.size)
    return np.tile(x, (channels, 1)).astype(np.float32)


@pytest.fixture
def stems(tmp_path: Path) -> Path:
    folder = tmp_path / "stems"
    folder.mkdir()
    sf.write(folder / "kick.wav", _tone(1.0, 60.0).T, SR)
    sf.write(folder / "vox.flac", _tone(1.0, 440.0, 2).T, SR)
    return folder


# ---- usage errors: one line, exit 2 -------------------------------------------------------------

@pytest.mark.parametrize(("args", "fragments"), [
    (["mix", "{stems}"], ["Missing option '--out'", "mix --help"]),
    (["mix", "{stems}", "-o", "{tmp}/m.wav", "--sample-rate", "abc"], ["--sample-rate"]),
    (["mix", "{stems}", "-o", "{tmp}/m.wav", "--bogus"], ["No such option: --bogus"]),
    (["mix", "{stems}", "-o", "{tmp}/m.wav", "--seed", "-1"], ["--seed"]),
    (["no-such-command"], ["No such command"]),
    (["style-transfer", "{stems}", "--ref", "{stems}/kick.wav", "-o", "{tmp}/m.wav", "--refine", "-1"], ["--refine"]),
    (["reverse", "{stems}", "--mix", "{stems}/kick.wav", "-o", "{tmp}/p.json", "--steps", "-1"], ["--steps"]),
    (["eval", "--dataset", "{stems}", "--out", "{tmp}/r", "--seed", "-3"], ["--seed"]),
    (["data", "synth", "--songs", "abc"], ["--songs"]),
    (["train"], ["Missing option '--config'"]),
])
def test_usage_errors_are_one_line(stems, tmp_path, args, fragments):
    args = [a.format(stems=stems, tmp=tmp_path) for a in args]
    assert_user_error(run(*args), *fragments)


def test_no_arguments_still_prints_help():
    result = run()
    assert "Usage:" in result.output and "mix" in result.output and "Traceback" not in result.output


def test_data_command_errors_are_one_line(tmp_path):
    # AutomixError from `data synth` used to escape as a traceback with exit 1
    assert_user_error(run("data", "synth", "--songs", "0", "--out", tmp_path / "synth"), "--songs")


# ---- outputs that collide with each other or with the stems folder ------------------------------

def test_outputs_that_would_overwrite_each_other_are_refused(stems, tmp_path):
    out = tmp_path / "out"
    # the processed kick would replace the mix (silently with --force)
    assert_user_error(run("mix", stems, "-o", out / "kick.wav", "--stems-out", out, "-f"),
                      "written twice", "the mix")
    assert_user_error(run("mix", stems, "-o", out / "m.wav", "--stems-out", out / "s", "--params",
                          out / "s" / "kick.wav"), "written twice", "the params file")
    assert_user_error(run("mix", stems, "-o", out / "m.wav", "--stems-out", out / "m.wav"), "--stems-out is also")
    # processed stems next to the originals would be mixed as stems next time
    assert_user_error(run("mix", stems, "-o", out / "m.wav", "--stems-out", stems, "-f"), "outside the stems folder")
    assert not out.exists() and sorted(p.name for p in stems.iterdir()) == ["kick.wav", "vox.flac"]


def test_params_with_an_audio_name_in_the_stems_folder_is_refused(stems, tmp_path):
    # JSON named p.wav next to the stems would fail the next mix ("cannot decode")
    assert_user_error(run("mix", stems, "-o", tmp_path / "m.wav", "--params", stems / "p.wav"), "read as a stem")
    assert not (stems / "p.wav").exists()


def test_names_longer_than_the_file_system_allows(stems, tmp_path):
    long = "a" * 300
    assert_user_error(run("mix", stems, "-o", tmp_path / f"{long}.wav"), "File name too long")
    assert_user_error(run("mix", stems, "-o", tmp_path / "m.wav", "--stems-out", tmp_path / long), "too long")
    assert_user_error(run("mix", tmp_path / long, "-o", tmp_path / "m.wav"), "too long")
    assert_user_error(run("render", stems, tmp_path / f"{long}.json", "-o", tmp_path / "m.wav"), "too long")
    assert_user_error(run("eval", tmp_path / f"{long}.wav"), "too long")
    # the safety net for commands whose own checks miss it: an OSError naming a path is a user error
    assert_user_error(run("eval", "--dataset", tmp_path / long, "--out", tmp_path / "r"), "File name too long")


def test_data_synth_onto_a_file_is_a_user_error(tmp_path):
    (tmp_path / "taken").write_text("x")
    assert_user_error(run("data", "synth", "--out", tmp_path / "taken", "--songs", "1", "--seconds", "1"),
                      "taken", "File exists")


# ---- odd input files ----------------------------------------------------------------------------

def test_unreadable_stem_says_so(stems, tmp_path, monkeypatch):
    # chmod 000 does not bind root (CI runs as root), so the open itself is made to fail
    real_open = open
    locked = stems / "kick.wav"

    def fake_open(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(audio_io, "open", fake_open, raising=False)
    assert_user_error(run("mix", stems, "-o", tmp_path / "m.wav"), "kick.wav", "cannot read", "Permission denied")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_named_pipe_is_skipped_not_waited_on(stems, tmp_path):
    os.mkfifo(stems / "pipe.wav")  # opening it for reading would block forever
    files, notes = scan_folder(stems)
    assert [f.name for f in files] == ["kick.wav", "vox.flac"] and "skipped pipe.wav (not a regular file)" in notes
    assert_user_error(run("eval", stems / "pipe.wav"), "not a regular file")


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MP3")
def test_corrupt_mp3_is_not_called_missing(stems, tmp_path):
    # libsndfile says "File does not exist or is not a regular file (possibly a pipe?)" here
    (stems / "broken.mp3").write_bytes(b"ID3" + np.random.default_rng(0).bytes(3000))
    assert_user_error(run("mix", stems, "-o", tmp_path / "m.wav"), "broken.mp3", "corrupt or not audio")


def test_folders_given_as_files(stems, tmp_path):
    assert_user_error(run("eval", stems), "is a folder")
    assert_user_error(run("render", stems, stems, "-o", tmp_path / "m.wav"), "is a folder", "mix.json")


def test_eval_target_too_short_is_a_user_error(stems, tmp_path):
    sf.write(tmp_path / "click.wav", np.array([[0.5, 0.5]]), SR)
    assert_user_error(run("eval", stems / "vox.flac", "--target", tmp_path / "click.wav"), "overlap for only 1 samples")


@pytest.mark.parametrize("model", ["", "/", ".", "./"])
def test_empty_model_names(stems, tmp_path, model):
    assert_user_error(run("mix", stems, "-o", tmp_path / "m.wav", "-m", model), "--model")


def test_empty_method_name_in_eval(stems, tmp_path):
    assert_user_error(run("eval", "--dataset", stems, "--out", tmp_path / "r", "--methods", "mono,/"), "--methods")


# ---- params JSON ----------------------------------------------------------------------------------

def _params(tmp_path: Path, edit) -> Path:
    data = {"format": "automix-mix", "version": 1, "sample_rate": None, "mixer": "manual",
            "tracks": {"kick.wav": {"gain_db": 0.0, "pan": 0.0}}}
    text = edit(data)
    path = tmp_path / "p.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text if isinstance(text, str) else json.dumps(data), encoding="utf-8")
    return path


def test_params_json_hostile_values(tmp_path):
    huge = _params(tmp_path, lambda d: json.dumps(d).replace('"pan": 0.0', '"pan": 1' + "0" * 400))
    with pytest.raises(ParamsError, match="pan: number too large"):
        load_params(huge)
    deep = _params(tmp_path, lambda d: "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ParamsError, match="nested too deeply"):
        load_params(deep)
    nested = '{"a": ' * 990 + "1" + "}" * 990  # deep enough for the parser or for reading the settings
    deep_setting = _params(tmp_path, lambda d: json.dumps(d)[:-1] + f', "fx": {nested}}}')
    with pytest.raises(ParamsError, match="nested too deeply"):
        load_params(deep_setting)
    wrong_type = _params(tmp_path, lambda d: d["tracks"]["kick.wav"].update(eq=5))
    with pytest.raises(ParamsError, match=r"\.eq: expected an object, got a number"):
        load_params(wrong_type)
    bom = _params(tmp_path, lambda d: b"\xef\xbb\xbf" + json.dumps(d).encode())  # Windows Notepad
    assert load_params(bom).track_names == ["kick.wav"]


def test_render_huge_number_exits_2(stems, tmp_path):
    params = _params(tmp_path, lambda d: json.dumps(d).replace('"pan": 0.0', '"pan": 1' + "0" * 400))
    assert_user_error(run("render", stems, params, "-o", tmp_path / "m.wav"), "number too large")


# ---- the ceiling holds for the written file, whatever the sample format ------------------------

@pytest.mark.parametrize(("name", "bit_depth", "ceiling"), [("m.wav", "16", "-1"), ("m.flac", "16", "0"),
                                                              ("m.wav", "24", "-0.1")])
def test_integer_output_stays_under_the_ceiling(tmp_path, name, bit_depth, ceiling):
    # Full-scale square waves (one a float stem with opposite polarity per channel), pushed into
    # the limiter: before the fix, rounding to 16-bit samples put the true peak 0.0003 dB over.
    folder = tmp_path / "hot"
    folder.mkdir()
    n = np.arange(SR)
    square = np.where(np.sin(2 * np.pi * 100.0 * n / SR) >= 0, 1.0, -1.0)
    sf.write(folder / "sq.wav", square, SR, subtype="PCM_16")
    sf.write(folder / "sq2.wav", np.stack([square, -square], 1), SR, subtype="FLOAT")
    result = run("mix", folder, "-o", tmp_path / name, "--bit-depth", bit_depth, "--ceiling", ceiling,
                 "--target-lufs", "-5", "--json")
    assert result.exit_code == 0, result.output
    audio, sr = sf.read(tmp_path / name, dtype="float32", always_2d=True)
    assert true_peak_dbtp(audio.T, sr) <= float(ceiling)
    assert json.loads(result.stdout)["true_peak_dbtp"] <= float(ceiling)


def test_summary_explains_a_missed_loudness_target():
    result = SimpleNamespace(params_path=None, stem_files=[], tracks=["a", "b"], mixer="rules", mix_path="m.wav",
                             loudness_lufs=-30.9, true_peak_dbtp=-1.0, duration_s=2.0, seconds=1.0,
                             target_lufs=-14.0, ceiling_dbtp=-1.0, stems_out=None, limiter_max_reduction_db=12.0)
    lines = mix_summary(result, "mixed").splitlines()
    assert lines[1] == ("note: 16.9 LU under the -14 LUFS target: reaching it would take more than 12 dB of "
                        "limiting at the -1 dBTP ceiling")
    result.limiter_max_reduction_db = 3.0
    assert mix_summary(result, "mixed").splitlines()[1] == "note: 16.9 LU under the -14 LUFS target"
    result.loudness_lufs = -14.2
    assert "\n" not in mix_summary(result, "mixed")
    result.tracks = ["a"]
    assert mix_summary(result, "mixed").startswith("mixed 1 stem with rules")


def test_check_model_name_api():
    from automix.engine import check_model_name

    assert check_model_name("rules") == "rules"
    with pytest.raises(AutomixError, match="--methods"):
        check_model_name(" ", "--methods")
