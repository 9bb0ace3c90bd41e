"""``automix show``: the console of a mix.json as a table, as flat JSON and as a PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_user_error
from typer.testing import CliRunner

from automix import cli, engine
from automix.console.schema import MASTER, TRACK
from automix.console.settings import MixSettings, load_params
from automix.show import describe_compressor, describe_eq, describe_pan, flatten

WIDE = {"COLUMNS": "250"}
"""A wide console, so no cell of the table is folded onto two lines."""


def show(*args: str | Path):
    return CliRunner().invoke(cli.app, ["show", *map(str, args)], env=WIDE)


@pytest.fixture(scope="module")
def mix_json(tmp_path_factory: pytest.TempPathFactory, synth) -> Path:
    """A mix.json written by the default mixer for the five-stem test song."""
    root = tmp_path_factory.mktemp("show")
    stems = synth.write_song(root / "stems", duration_s=1.0)
    result = engine.mix(stems, root / "mix.wav")
    assert result.params_path is not None
    return result.params_path


def _edited(mix_json: Path, folder: Path, track: str, **eq: dict[str, float]) -> Path:
    """A copy of ``mix_json`` with some of one track's EQ bands replaced."""
    data = json.loads(mix_json.read_text(encoding="utf-8"))
    data["tracks"][track]["eq"].update(eq)
    path = folder / "edited.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_json_is_the_settings_of_mix_json_flattened(mix_json: Path) -> None:
    result = show(mix_json, "--json")
    assert result.exit_code == 0, result.output
    flat = json.loads(result.stdout)
    data = json.loads(mix_json.read_text(encoding="utf-8"))
    assert list(flat["tracks"]) == list(data["tracks"])
    for name, track in data["tracks"].items():
        shown = flat["tracks"][name]
        assert shown["gain_db"] == track["gain_db"]
        assert shown["pan"] == track["pan"]
        assert shown["width"] == track["width"]
        assert shown["trim_db"] == track["trim_db"]
        assert shown["send.reverb_db"] == track["send"]["reverb_db"]
        assert shown["compressor.ratio"] == track["compressor"]["ratio"]
        assert shown["eq.band_2.freq_hz"] == track["eq"]["band_2"]["freq_hz"]
        assert shown["role"] == track["role"]
        assert set(shown) == {"role", *TRACK.names}
    assert flat["master"]["gain_db"] == data["master"]["gain_db"]
    assert flat["master"]["target_lufs"] == data["master"]["target_lufs"]
    assert flat["master"]["compressor.threshold_db"] == data["master"]["compressor"]["threshold_db"]
    assert flat["fx"]["reverb.decay_s"] == data["fx"]["reverb"]["decay_s"]


def test_table_shows_each_track_with_its_numbers(mix_json: Path) -> None:
    result = show(mix_json)
    assert result.exit_code == 0, result.output
    settings = load_params(mix_json)
    lines = result.stdout.splitlines()
    for name in settings.track_names:
        row = next(line for line in lines if line.lstrip().startswith(name))
        assert settings.roles[name] in row
        assert f"{settings.get(name, 'gain_db'):+.1f}".rstrip("0").rstrip(".") in row
        assert describe_pan(settings.get(name, "pan")) in row
        assert "n/a" in row  # gain reduction: not in mix.json
    assert "master bus" in result.stdout
    assert f"{settings.target_lufs:g} LUFS" in result.stdout


def test_an_eq_band_is_described_with_its_numbers(mix_json: Path, tmp_path: Path) -> None:
    edited = _edited(mix_json, tmp_path, "lead_vocal.wav", highpass={"freq_hz": 90.0},
                     band_2={"freq_hz": 646.0, "gain_db": -5.0, "q": 4.0},
                     low_shelf={"freq_hz": 100.0, "gain_db": 0.0, "q": 0.707},
                     band_1={"freq_hz": 200.0, "gain_db": 0.0, "q": 0.707},
                     band_3={"freq_hz": 2500.0, "gain_db": 0.0, "q": 0.707},
                     band_4={"freq_hz": 7000.0, "gain_db": 0.0, "q": 0.707},
                     high_shelf={"freq_hz": 8000.0, "gain_db": 0.0, "q": 0.707})
    result = show(edited)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "lead_vocal.wav" in line)
    assert "high-pass 90 Hz; -5 dB at 646 Hz, Q 4" in row


def test_eq_and_compressor_words() -> None:
    settings = MixSettings.neutral(["a.wav"])
    assert describe_eq(settings.track[0]) == "flat"
    settings.set(0, "eq.band_1.gain_db", 0.01)  # inaudible: prints as 0 dB, not described
    assert describe_eq(settings.track[0]) == "flat"
    for name, value in {"eq.low_shelf.gain_db": 2.5, "eq.low_shelf.freq_hz": 120.0,
                        "eq.band_3.gain_db": 1.5, "eq.band_3.freq_hz": 2500.0, "eq.band_3.q": 0.707,
                        "eq.high_shelf.gain_db": -3.0, "eq.high_shelf.freq_hz": 10000.0}.items():
        settings.set(0, name, value)
    assert describe_eq(settings.track[0]) == (
        "low shelf +2.5 dB below 120 Hz; +1.5 dB at 2.5 kHz, Q 0.71; high shelf -3 dB above 10 kHz")
    assert describe_compressor(settings.track[0]) == "off"
    for name, value in {"compressor.ratio": 3.64, "compressor.threshold_db": -19.62, "compressor.attack_ms": 20.0,
                        "compressor.release_ms": 120.0, "compressor.makeup_db": 1.45}.items():
        settings.set(0, name, value)
    assert describe_compressor(settings.track[0]) == "3.6:1 at -19.6 dB, 20/120 ms, make-up +1.4 dB"
    assert describe_compressor(settings.track[0], detail=False) == "3.6:1 at -19.6 dB"
    settings.set_master("eq.highpass.freq_hz", 30.0)
    assert describe_eq(settings.master, MASTER) == "high-pass 30 Hz"
    assert [describe_pan(p) for p in (-1.0, -0.3, 0.0, 0.004, 0.5)] == ["L100", "L30", "C", "C", "R50"]
    assert flatten(settings)["master"]["eq.highpass.freq_hz"] == 30.0


def test_plot_is_a_png_of_a_sane_size(mix_json: Path, tmp_path: Path) -> None:
    from matplotlib.image import imread

    edited = _edited(mix_json, tmp_path, "kick.wav", band_2={"freq_hz": 646.0, "gain_db": -5.0, "q": 4.0})
    out = tmp_path / "console.png"
    result = show(edited, "--plot", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = imread(out).shape[:2]
    assert 800 <= width <= 3000 and 500 <= height <= 2000, (width, height)

    # The curves drawn come from the console's biquads: the edited bell reads -5 dB at 646 Hz.
    from automix.evaluate.plots import eq_curves_db

    freqs_hz, tracks_db, _ = eq_curves_db(load_params(edited))
    kick = load_params(edited).track_names.index("kick.wav")
    assert tracks_db[kick][np.argmin(np.abs(freqs_hz - 646.0))] == pytest.approx(-5.0, abs=0.1)

    again = show(edited, "--plot", out)  # an existing plot needs --force
    assert_user_error(again, "exists", "--force")
    assert show(edited, "--plot", out, "--force", "--json").exit_code == 0


@pytest.mark.parametrize("kind", ["missing", "not json", "out of range", "not a png"])
def test_bad_input_is_one_line_error(mix_json: Path, tmp_path: Path, kind: str) -> None:
    path, extra, fragment = tmp_path / "mix.json", [], ""
    if kind == "missing":
        fragment = "not found"
    elif kind == "not json":
        path.write_text('{"format": "automix-mix",', encoding="utf-8")
        fragment = "not valid JSON"
    elif kind == "out of range":
        data = json.loads(mix_json.read_text(encoding="utf-8"))
        data["tracks"]["kick.wav"]["pan"] = 3.0
        path.write_text(json.dumps(data), encoding="utf-8")
        fragment = "tracks['kick.wav'].pan"
    else:
        path, extra, fragment = mix_json, ["--plot", str(tmp_path / "console.jpg")], ".png"
    result = show(path, *extra)
    assert_user_error(result, fragment, only_line=True)
    assert not (tmp_path / "console.jpg").exists()


def _with_compressor(mix_json: Path, folder: Path, track: str) -> Path:
    """A copy of ``mix_json`` where ``track`` is compressed hard and every other strip is not."""
    data = json.loads(mix_json.read_text(encoding="utf-8"))
    for name, strip in data["tracks"].items():
        strip["compressor"]["ratio"] = 1.0
        if name == track:
            strip["compressor"].update(ratio=8.0, threshold_db=-50.0, knee_db=0.0)
    data["master"]["compressor"]["ratio"] = 1.0
    path = folder / "compressed.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_stems_meter_the_gain_reduction(mix_json: Path, tmp_path: Path) -> None:
    edited = _with_compressor(mix_json, tmp_path, "kick.wav")
    stems = mix_json.parent / "stems"
    result = show(edited, "--stems", stems, "--json")
    assert result.exit_code == 0, result.output
    flat = json.loads(result.stdout)
    kick = flat["tracks"]["kick.wav"]
    assert kick["gain_reduction.max_db"] > 10.0  # 8:1 far above its threshold
    assert 0.0 < kick["gain_reduction.mean_db"] <= kick["gain_reduction.max_db"]
    for name, track in flat["tracks"].items():
        if name != "kick.wav":
            assert track["gain_reduction.max_db"] == 0.0
    assert flat["master"]["gain_reduction.max_db"] == 0.0

    table = show(edited, "--stems", stems)
    row = next(line for line in table.stdout.splitlines() if line.lstrip().startswith("kick.wav"))
    assert f"{kick['gain_reduction.mean_db']:.1f}".rstrip("0").rstrip(".") + "/" in row
    assert "n/a" not in table.stdout.split("master bus")[0].split("kick.wav")[1].splitlines()[0]

    out = tmp_path / "console.png"
    assert show(edited, "--stems", stems, "--plot", out).exit_code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stems_that_do_not_match_are_one_line_error(mix_json: Path, tmp_path: Path, synth) -> None:
    other = synth.write_song(tmp_path / "other", duration_s=1.0, names={"kick": "drums.wav"})
    result = show(mix_json, "--stems", other)
    assert_user_error(result, "does not match", only_line=True)


def test_a_ridden_eq_band_shows_its_range(mix_json: Path, tmp_path: Path) -> None:
    edited = _edited(mix_json, tmp_path, "lead_vocal.wav", band_2={"freq_hz": 646.0, "gain_db": 0.0, "q": 1.0})
    data = json.loads(edited.read_text(encoding="utf-8"))
    data["version"] = 2
    data["tracks"]["lead_vocal.wav"]["automation"] = {"eq.band_2.gain_db": {"points": [[0.0, -4.0], [0.5, 3.0]]}}
    edited.write_text(json.dumps(data), encoding="utf-8")
    result = show(edited)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "lead_vocal.wav" in line)
    assert "-4 dB…+3 dB at 646 Hz" in row
