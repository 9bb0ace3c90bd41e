"""The command line: every flag, bad inputs (one-line error + exit 2), render round trip.

In-process through Typer's CliRunner (fast), plus one subprocess run of ``python -m automix``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_helpers import assert_user_error, run
from signals import sine as _signal_sine

from automix import engine
from automix.console.loudness import integrated_lufs, true_peak_dbtp
from automix.io import load_audio

ROOT = Path(__file__).resolve().parents[1]


def summary(result) -> dict:
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1  # exactly one JSON object
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, synth):
    """One rules mix of the test song, shared by the render tests: (stems_dir, mix.wav, mix.json)."""
    root = tmp_path_factory.mktemp("mixed")
    stems = synth.write_song(root / "stems")
    result = run("mix", stems, "-o", root / "mix.wav", "--quiet")
    assert result.exit_code == 0, result.output
    return stems, root / "mix.wav", root / "mix.json"


# ---- mix: every flag --------------------------------------------------------------------------

def test_mix_defaults_write_wav_and_json(song_dir, tmp_path):
    result = run("mix", song_dir, "-o", tmp_path / "out" / "mix.wav")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # logs and the summary go to stderr
    assert "resampled bass.wav from 48000 Hz to 44100 Hz" in result.stderr
    assert "mixed 5 stems with forest" in result.stderr
    audio, sr = load_audio(tmp_path / "out" / "mix.wav")
    assert sf.info(str(tmp_path / "out" / "mix.wav")).subtype == "PCM_24" and sr == 44100
    assert abs(integrated_lufs(audio, sr) + 14.0) <= 0.5 and true_peak_dbtp(audio, sr) <= -0.95
    params = json.loads((tmp_path / "out" / "mix.json").read_text())
    assert params["mixer"] == "forest" and set(params["tracks"]) == {p.name for p in song_dir.iterdir()}
    assert params["tracks"]["kick.wav"]["role"] == "kick"


def test_mix_json_quiet_params_model_levels_bitdepth_rate(song_dir, tmp_path):
    result = run("mix", song_dir, "-o", tmp_path / "m.wav", "--params", tmp_path / "p" / "settings.json",
                 "--model", "equal-loudness", "--target-lufs", "-20", "--ceiling", "-3", "--bit-depth", "16",
                 "--sample-rate", "48000", "--device", "cpu", "--quiet", "--json")
    assert result.stderr == ""  # --quiet
    data = summary(result)
    assert data["mixer"] == "equal-loudness" and data["sample_rate"] == 48000
    assert data["params"] == str(tmp_path / "p" / "settings.json")
    assert abs(data["loudness_lufs"] + 20.0) <= 0.5 and data["true_peak_dbtp"] <= -3.0
    info = sf.info(str(tmp_path / "m.wav"))
    assert info.subtype == "PCM_16" and info.samplerate == 48000
    audio, sr = load_audio(tmp_path / "m.wav")
    assert abs(integrated_lufs(audio, sr) - data["loudness_lufs"]) < 0.05
    params = json.loads((tmp_path / "p" / "settings.json").read_text())
    assert params["master"]["target_lufs"] == -20.0 and params["master"]["ceiling_dbtp"] == -3.0
    assert params["sample_rate"] == 48000


def test_mix_seed_changes_random_mixer(song_dir, tmp_path):
    def gains(seed: str, name: str) -> list[float]:
        assert run("mix", song_dir, "-o", tmp_path / name, "-m", "random", "--seed", seed, "-q").exit_code == 0
        tracks = json.loads((tmp_path / name).with_suffix(".json").read_text())["tracks"]
        return [t["gain_db"] for t in tracks.values()]

    first, again, other = gains("1", "a.wav"), gains("1", "b.wav"), gains("2", "c.wav")
    assert first == again and first != other


def test_mix_force_and_bit_depth_32f(song_dir, tmp_path):
    out = tmp_path / "mix.wav"
    assert run("mix", song_dir, "-o", out, "-q", "-m", "mono").exit_code == 0
    assert_user_error(run("mix", song_dir, "-o", out, "-q"), "exists", "--force")
    result = run("mix", song_dir, "-o", out, "-q", "--force", "--bit-depth", "32f")
    assert result.exit_code == 0, result.output
    assert sf.info(str(out)).subtype == "FLOAT"
    assert json.loads(out.with_suffix(".json").read_text())["mixer"] == "forest"


def test_mix_stems_out(song_dir, tmp_path):
    data = summary(run("mix", song_dir, "-o", tmp_path / "mix.wav", "--stems-out", tmp_path / "tracks", "--json",
                       "-m", "mono"))
    files = sorted(p.name for p in (tmp_path / "tracks").iterdir() if p.name != "reverb_return.wav")
    assert files == ["bass.wav", "hats.wav", "kick.wav", "lead_vocal.wav", "pad.wav"]
    assert len(data["stem_files"]) == 6 and data["stem_files"][-1].endswith("reverb_return.wav")
    assert not load_audio(tmp_path / "tracks" / "reverb_return.wav")[0].any()  # the mono mixer sends nothing
    tracks = [load_audio(tmp_path / "tracks" / f)[0] for f in files]
    assert all(t.shape == (2, tracks[0].shape[1]) for t in tracks)
    # mono mixer: a mono stem's processed track is the stem at −3 dB in both channels (same loudness)
    kick, sr = load_audio(song_dir / "kick.wav")
    np.testing.assert_array_equal(tracks[2][0], tracks[2][1])
    assert abs(integrated_lufs(tracks[2], sr) - integrated_lufs(kick, sr)) < 0.1
    # the stems already exist now: refused without --force, before any work
    assert_user_error(run("mix", song_dir, "-o", tmp_path / "new.wav", "--stems-out", tmp_path / "tracks"),
                      "tracks/bass.wav", "exists")
    assert not (tmp_path / "new.wav").exists()


def test_models_lists_builtins():
    result = run("models")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines() if line.strip()][:4] == ["rules", "mono", "equal-loudness",
                                                                           "random"]
    data = summary(run("models", "--json"))
    assert "rules" in data and "random" in data


# ---- render -----------------------------------------------------------------------------------

def test_render_round_trip_is_bit_identical(mixed, tmp_path):
    stems, mix_wav, mix_json = mixed
    data = summary(run("render", stems, mix_json, "-o", tmp_path / "again.wav", "--json"))
    assert data["params"] is None and data["mixer"] == "forest"
    assert (tmp_path / "again.wav").read_bytes() == mix_wav.read_bytes()


def test_render_flags(mixed, tmp_path):
    stems, _, mix_json = mixed
    data = summary(run("render", stems, mix_json, "-o", tmp_path / "loud.wav", "--target-lufs", "-10",
                       "--ceiling", "-0.5", "--stems-out", tmp_path / "st", "--sample-rate", "48000",
                       "--bit-depth", "32f", "--json", "-q"))
    assert abs(data["loudness_lufs"] + 10.0) <= 0.5 and data["true_peak_dbtp"] <= -0.5
    assert data["sample_rate"] == 48000 and len(list((tmp_path / "st").iterdir())) == 6  # 5 tracks + the reverb return
    assert sf.info(str(tmp_path / "loud.wav")).subtype == "FLOAT"
    assert_user_error(run("render", stems, mix_json, "-o", tmp_path / "loud.wav"), "exists")
    assert run("render", stems, mix_json, "-o", tmp_path / "loud.wav", "--force", "-q").exit_code == 0


def test_render_mismatched_folder(mixed, tmp_path, synth):
    _, _, mix_json = mixed
    other = synth.write_song(tmp_path / "other", 1.0, names={"kick": "kick2.wav"})
    line = assert_user_error(run("render", other, mix_json, "-o", tmp_path / "x.wav"))
    assert "missing kick.wav" in line and "not in the params: kick2.wav" in line
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda d: d["tracks"]["kick.wav"].update(gain_db=99), "gain_db: 99 dB is outside"),
    (lambda d: d["tracks"]["bass.wav"]["eq"]["highpass"].update(freq_hz="high"), "expected a number"),
    (lambda d: d.update(version=99), "version"),
    (lambda d: d["fx"].update(shimmer=1), "unknown setting"),
])
def test_render_rejects_bad_values(mixed, tmp_path, edit, fragment):
    stems, _, mix_json = mixed
    data = json.loads(mix_json.read_text())
    edit(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert_user_error(run("render", stems, bad, "-o", tmp_path / "x.wav"), fragment)


def test_render_missing_and_malformed_params(mixed, tmp_path):
    stems, _, _ = mixed
    assert_user_error(run("render", stems, tmp_path / "nope.json", "-o", tmp_path / "x.wav"), "not found")
    (tmp_path / "broken.json").write_text('{"format": "automix-mix", ')
    assert_user_error(run("render", stems, tmp_path / "broken.json", "-o", tmp_path / "x.wav"),
                      "not valid JSON")


# ---- bad and unusual inputs -------------------------------------------------------------------

def _sine(sr: int, seconds: float = 0.5, channels: int = 1, freq: float = 440.0, phase: float = 0.0) -> np.ndarray:
    return _signal_sine(freq, seconds, amplitude=0.3, sr=sr, channels=channels, phase=phase)


def _folder(tmp_path: Path, synth, files: dict[str, np.ndarray | bytes], sr: int = 44100) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, content in files.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            synth.write(folder / name, content, sr)
    return folder


@pytest.mark.parametrize(("files", "fragments"), [
    ({}, ["stems folder is empty"]),
    ({"readme.txt": b"hello", ".hidden.wav": b"x"}, ["no audio files"]),
    ({"a.wav": _sine(44100), "corrupt.wav": b"RIFF\x10\x00\x00\x00WAVEfmt garbage"}, ["corrupt.wav", "decode"]),
    ({"a.wav": _sine(44100), "zero.wav": b""}, ["zero.wav", "empty file"]),
    ({"a.wav": np.where(np.arange(22050) % 50 == 5, np.nan, _sine(44100)).astype(np.float32)},
     ["a.wav", "NaN/Inf", "too damaged"]),  # 2 % of the samples: beyond repair (a few are silenced)
    ({"surround.wav": _sine(44100, channels=6)}, ["surround.wav", "6 channels"]),
    ({"silent.wav": np.zeros((1, 22050), np.float32)}, ["silent"]),
])
def test_bad_stems_folders(tmp_path, synth, files, fragments):
    folder = _folder(tmp_path, synth, files)
    assert_user_error(run("mix", folder, "-o", tmp_path / "mix.wav"), *fragments)
    assert not (tmp_path / "mix.wav").exists() and not (tmp_path / "mix.json").exists()


@pytest.mark.parametrize(("extra", "fragments"), [
    (["--bit-depth", "8"], ["--bit-depth"]),
    (["--target-lufs", "3"], ["--target-lufs 3", "outside"]),
    (["--ceiling", "-20"], ["--ceiling -20", "outside"]),
    (["--model", "nonexistent"], ["unknown model", "rules"]),
    (["--device", "tpu"], ["--device"]),
    (["--sample-rate", "1000"], ["sample rate 1000"]),
])
def test_bad_options(song_dir, tmp_path, extra, fragments):
    assert_user_error(run("mix", song_dir, "-o", tmp_path / "mix.wav", *extra), *fragments)
    assert not (tmp_path / "mix.wav").exists()


def test_bad_paths(song_dir, tmp_path):
    assert_user_error(run("mix", tmp_path / "missing", "-o", tmp_path / "m.wav"), "not found")
    assert_user_error(run("mix", song_dir / "kick.wav", "-o", tmp_path / "m.wav"), "not a folder")
    assert_user_error(run("mix", song_dir, "-o", tmp_path / "m.mp3"), ".wav or .flac")
    # unwritable output folder: a path below a regular file (works even when tests run as root)
    (tmp_path / "plain_file").write_text("x")
    assert_user_error(run("mix", song_dir, "-o", tmp_path / "plain_file" / "m.wav"), "cannot create output folder")
    if os.geteuid() != 0:  # permission bits only bind non-root users
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert_user_error(run("mix", song_dir, "-o", locked / "m.wav"), "not writable")
    # outputs that are inputs, or would be read as stems next time
    assert_user_error(run("mix", song_dir, "-o", song_dir / "kick.wav", "--force"), "outside the stems folder")
    assert_user_error(run("mix", song_dir, "-o", tmp_path / "m.wav", "--params", song_dir / "kick.wav", "--force"),
                      "input file")
    assert (song_dir / "kick.wav").stat().st_size > 1000
    assert_user_error(run("mix", song_dir, "-o", tmp_path / "m.wav", "--stems-out", tmp_path / "plain_file"),
                      "must be a folder")


def test_mixed_sample_rates_are_resampled(tmp_path, synth):
    folder = tmp_path / "in"
    folder.mkdir()
    synth.write(folder / "low.wav", _sine(8000, 1.0, freq=200.0), 8000)
    synth.write(folder / "high.wav", _sine(96000, 1.0, channels=2, freq=3000.0), 96000)
    data = summary(run("mix", folder, "-o", tmp_path / "mix.wav", "--json"))
    assert data["sample_rate"] == 96000 and data["duration_s"] == 1.0
    assert abs(data["loudness_lufs"] + 14.0) <= 0.5


def test_hundred_stems(tmp_path, synth):
    folder = tmp_path / "many"
    folder.mkdir()
    phases = np.random.default_rng(0).uniform(0, 2 * np.pi, 100)  # not all peaking together at t = 0
    for i in range(100):
        synth.write(folder / f"stem{i:03d}.wav", _sine(22050, 0.5, freq=100.0 + 37.0 * i, phase=phases[i]), 22050)
    data = summary(run("mix", folder, "-o", tmp_path / "mix.wav", "--json"))
    assert len(data["tracks"]) == 100 and abs(data["loudness_lufs"] + 14.0) <= 0.5
    assert data["true_peak_dbtp"] <= -1.0


def test_unicode_names(tmp_path, synth):
    names = ["ベース.wav", "Ünïcødé kick.flac", "voix lead — é.wav"]
    folder = _folder(tmp_path, synth, {n: _sine(44100, 0.5, freq=110.0 * (i + 1)) for i, n in enumerate(names)})
    data = summary(run("mix", folder, "-o", tmp_path / "mixé.wav", "--json"))
    assert sorted(data["tracks"]) == sorted(names)
    params = json.loads((tmp_path / "mixé.json").read_text(encoding="utf-8"))
    assert set(params["tracks"]) == set(names)
    assert params["tracks"]["Ünïcødé kick.flac"]["role"] == "kick"
    assert run("render", folder, tmp_path / "mixé.json", "-o", tmp_path / "again.wav", "-q").exit_code == 0


def test_internal_errors_exit_1_on_one_line(song_dir, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise ValueError("something broke")

    monkeypatch.setattr(engine, "mix", boom)
    result = run("mix", song_dir, "-o", tmp_path / "m.wav")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("internal error: ValueError: something broke")
    debug = run("--debug", "mix", song_dir, "-o", tmp_path / "m.wav")
    assert debug.exit_code == 1 and "Traceback" in debug.stderr


def test_python_dash_m_entry_point(song_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "automix", "mix", str(song_dir), "-o", str(tmp_path / "mix.wav"),
                           "--json", "--quiet"], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert Path(data["mix"]).is_file() and abs(data["loudness_lufs"] + 14.0) <= 0.5
    bad = subprocess.run([sys.executable, "-m", "automix", "mix", str(tmp_path / "nope"), "-o", "x.wav"],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0


def test_streamed_mix_equals_in_memory_mix(song_dir, tmp_path):
    """Stems streamed from disk (scratch files for the mix) give the same samples as loaded stems."""
    from automix import engine

    results = {}
    for stream in (False, True):
        out = tmp_path / f"s{int(stream)}"
        results[stream] = engine.mix(song_dir, out / "mix.wav", stems_out=out / "stems", stream=stream,
                                     bit_depth="32f")
    memory, streamed = results[False], results[True]
    a, _ = sf.read(memory.mix_path, always_2d=True)
    b, _ = sf.read(streamed.mix_path, always_2d=True)
    assert a.shape == b.shape and np.max(np.abs(a - b)) <= 1e-6
    assert abs(memory.loudness_lufs - streamed.loudness_lufs) <= 1e-6
    for p, q in zip(memory.stem_files, streamed.stem_files):
        assert np.max(np.abs(sf.read(p)[0] - sf.read(q)[0])) <= 1e-6
    # the streamed mix's JSON re-renders (streamed again) to the same file, bit for bit
    again = engine.render(song_dir, streamed.params_path, tmp_path / "again.wav", stream=True, bit_depth="32f")
    assert np.array_equal(sf.read(again.mix_path)[0], b)


def test_stems_out_tracks_and_reverb_return_sum_to_the_master_bus_input(song_dir, tmp_path):
    """A DAW can finish the mix: the written tracks plus the reverb return, through the master
    bus, give the rendered mix (before finalize)."""
    from automix.console.render import _Strip, render_console
    from automix.console.schema import MASTER
    from automix.console.settings import load_params
    from automix.io import load_stems

    data = summary(run("mix", song_dir, "-o", tmp_path / "mix.wav", "--stems-out", tmp_path / "tracks", "--json"))
    written = [load_audio(p)[0] for p in sorted((tmp_path / "tracks").iterdir())]
    reverb = load_audio(tmp_path / "tracks" / "reverb_return.wav")[0]
    assert len(written) == 6 and 20 * np.log10(np.sqrt(np.mean(reverb.astype(np.float64) ** 2))) > -60.0  # rules sends

    settings = load_params(Path(data["params"]))
    stems, rate, _ = load_stems(song_dir)
    mix_before_finalize = render_console([s.audio for s in stems], rate, settings)
    master = _Strip(settings.master, MASTER, 2, rate)
    output_gain = master.compressor.makeup * 10.0 ** (settings.master[MASTER.index("gain_db")] / 20.0)
    from_stems = master.process(np.sum(written, axis=0).astype(np.float64), 1.0, np.eye(2) * output_gain)
    error = np.sum((from_stems - mix_before_finalize) ** 2) / np.sum(mix_before_finalize.astype(np.float64) ** 2)
    assert 10 * np.log10(error) < -80.0, 10 * np.log10(error)
