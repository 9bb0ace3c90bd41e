"""Automation lanes (issue 15): curves, mix.json, and both render paths applying them alike."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from signals import sine

from automix.console import eq_ride
from automix.console.automation import STEP_SMOOTHING_MS, Lane, lane_curve
from automix.console.render import render_console
from automix.console.schema import FX, MASTER, SCHEMA_VERSION, TRACK
from automix.console.settings import AUTOMATION_VERSION, MixSettings, Section, dumps, from_json
from automix.console.torch_console import automation_curves, mix_console
from automix.errors import AutomixError, ParamsError

SR = 22050
N = 2 * SR


def _stems() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    noise = (rng.standard_normal((1, N)) * 0.1).astype(np.float32)
    chord = np.stack([sine(220.0, 2.0, amplitude=0.2, sr=SR), sine(330.0, 2.0, amplitude=0.2, sr=SR)])
    return [noise, chord, sine(110.0, 2.0, amplitude=0.3, sr=SR, channels=1)]


def _automated(rng: np.random.Generator, dynamics: bool) -> MixSettings:
    settings = MixSettings.neutral(["noise.wav", "chord.wav", "bass.wav"])
    settings.track = TRACK.from_normalised(rng.uniform(0.15, 0.85, (3, len(TRACK))))
    settings.fx = FX.from_normalised(rng.uniform(0.15, 0.85, len(FX)))
    settings.master = MASTER.from_normalised(rng.uniform(0.15, 0.85, len(MASTER)))
    if not dynamics:
        for i in range(3):
            settings.set(i, "compressor.ratio", 1.0)
        settings.set_master("compressor.ratio", 1.0)
    settings.automation = {
        "noise.wav": {"gain_db": Lane((0.2, 0.9, 1.6), (0.0, -18.0, 3.0)),
                      "send.reverb_db": Lane((0.5, 1.0), (-60.0, -6.0), "step"),
                      "eq.band_2.gain_db": Lane((0.3, 1.2), (-12.0, 12.0))},
        "chord.wav": {"pan": Lane((0.0, 1.9), (-1.0, 0.8)),
                      "eq.low_shelf.gain_db": Lane((0.5, 1.0), (10.0, -10.0), "step"),
                      "eq.high_shelf.gain_db": Lane((0.2, 1.8), (-15.0, 15.0))},
        "bass.wav": {"gain_db": Lane((1.0,), (-4.0,)), "pan": Lane((0.3, 1.2), (0.5, -0.5), "step")},
    }
    settings.master_automation = {"gain_db": Lane((0.0, 2.0), (0.0, -6.0))}
    return settings


def _torch_mix(stems: list[np.ndarray], settings: MixSettings) -> np.ndarray:
    x = torch.zeros(1, len(stems), 2, N)
    for i, s in enumerate(stems):
        x[0, i, : s.shape[0]] = torch.from_numpy(s)
    is_stereo = torch.tensor([[s.shape[0] == 2 for s in stems]])

    def one(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(values[None]).float()

    with torch.no_grad():
        return mix_console(x, is_stereo, one(settings.track), one(settings.fx), one(settings.master), SR,
                           automation=automation_curves([settings], N, SR))[0].numpy()


def _error_db(reference: np.ndarray, other: np.ndarray) -> float:
    diff = np.sum((reference.astype(np.float64) - other) ** 2)
    return 10 * math.log10(diff / np.sum(reference.astype(np.float64) ** 2) + 1e-30)


def test_lane_curves() -> None:
    lane = Lane((1.0, 2.0), (0.0, -10.0))
    curve = lane_curve(lane, 0, 4 * 100, 100)
    assert curve[0] == 0.0 and curve[100] == 0.0  # held before the first breakpoint
    assert curve[150] == pytest.approx(-5.0) and curve[200] == -10.0 and curve[-1] == -10.0
    step = lane_curve(Lane((1.0, 2.0), (0.0, -10.0), "step"), 0, 4 * 1000, 1000)
    ramp = int(STEP_SMOOTHING_MS)
    assert np.all(step[:2000] == 0.0) and np.all(step[2000 + ramp:] == -10.0)
    assert np.all(np.diff(step[2000:2000 + ramp + 1]) < 0)  # a short ramp, not a click
    assert np.array_equal(lane_curve(lane, 120, 180, 100), curve[120:180])  # chunks = the whole


@pytest.mark.parametrize(("dynamics", "max_error_db"), [(False, -40.0), (True, -30.0)])
def test_both_render_paths_apply_automation_alike(dynamics: bool, max_error_db: float) -> None:
    stems = _stems()
    for seed in range(4):
        settings = _automated(np.random.default_rng(seed), dynamics)
        rendered = render_console(stems, SR, settings, block_size=4096, workers=1)
        assert _error_db(rendered, _torch_mix(stems, settings)) < max_error_db
        static = settings.clipped()
        static.automation, static.master_automation = {}, {}
        # The lanes are audible: the static mix is far from the automated one.
        assert _error_db(rendered, render_console(stems, SR, static, block_size=4096, workers=1)) > -10.0


def test_block_size_and_workers_do_not_change_an_automated_mix() -> None:
    stems = _stems()
    settings = _automated(np.random.default_rng(9), True)
    a = render_console(stems, SR, settings, block_size=4096, workers=1)
    b = render_console(stems, SR, settings, block_size=4096, workers=2)
    c = render_console(stems, SR, settings, block_size=1000, workers=2)
    assert np.array_equal(a, b)
    assert _error_db(a, c) < -100.0


def test_fader_ramp_is_applied_per_sample() -> None:
    tone = sine(1000.0, 2.0, amplitude=0.5, sr=SR, channels=1)
    settings = MixSettings.neutral(["tone.wav"])
    settings.set(0, "eq.highpass.freq_hz", TRACK.spec("eq.highpass.freq_hz").minimum)
    settings.automation = {"tone.wav": {"gain_db": Lane((0.5, 1.5), (0.0, -20.0))}}
    _, tracks = render_console([tone], SR, settings, return_tracks=True, workers=1)
    _, flat = render_console([tone], SR, MixSettings.neutral(["tone.wav"]), return_tracks=True, workers=1)
    loud = np.abs(flat[0][0]) > 0.05
    gain_db = 20 * np.log10(tracks[0][0][loud] / flat[0][0][loud])
    expected = lane_curve(settings.automation["tone.wav"]["gain_db"], 0, N, SR)[loud]
    assert np.max(np.abs(gain_db - expected)) < 1e-3  # no block-wise steps (zipper noise)


def test_moving_one_breakpoint_changes_the_audio_only_around_it() -> None:
    stems = _stems()
    settings = MixSettings.neutral(["noise.wav", "chord.wav", "bass.wav"])  # linear chain, no reverb
    settings.automation = {"chord.wav": {"gain_db": Lane((0.4, 1.0, 1.6), (0.0, -12.0, 0.0))}}
    before = render_console(stems, SR, settings, workers=1)
    settings.automation = {"chord.wav": {"gain_db": Lane((0.4, 1.1, 1.6), (0.0, -12.0, 0.0))}}
    after = render_console(stems, SR, settings, workers=1)
    diff = np.abs(before.astype(np.float64) - after).max(axis=0)
    assert np.all(diff[: int(0.4 * SR)] == 0.0)  # nothing before the previous breakpoint
    assert diff[int(1.0 * SR):int(1.1 * SR)].max() > 0.01  # a real change where the breakpoint moved
    # After the next breakpoint only the tail of the master's 10 Hz high-pass (an IIR filter)
    # remembers the change, far below hearing.
    assert diff[int(1.6 * SR):].max() < 1e-4 * np.abs(before).max()


def _eq_settings(names: list[str]) -> MixSettings:
    """Random settings with every track's compressor working hard (threshold −30…−20 dB, ratio 8), no reverb."""
    rng = np.random.default_rng(21)
    settings = MixSettings.neutral(names)
    settings.track = TRACK.from_normalised(rng.uniform(0.15, 0.85, (len(names), len(TRACK))))
    for i in range(len(names)):
        settings.set(i, "compressor.threshold_db", float(rng.uniform(-30.0, -20.0)))
        settings.set(i, "compressor.ratio", 8.0)
        settings.set(i, "send.reverb_db", -60.0)
    return settings


def test_a_flat_eq_lane_renders_as_the_static_setting() -> None:
    stems = _stems()
    settings = _eq_settings(["noise.wav", "chord.wav", "bass.wav"])
    static = render_console(stems, SR, settings, block_size=3000, workers=1)
    ridden = {"noise.wav": "eq.band_2.gain_db", "chord.wav": "eq.low_shelf.gain_db", "bass.wav": "eq.band_1.gain_db"}
    settings.automation = {track: {name: Lane((0.7,), (float(settings.track[i, TRACK.index(name)]),))}
                           for i, (track, name) in enumerate(ridden.items())}
    flat = render_console(stems, SR, settings, block_size=3000, workers=1)
    # Only rounding: the band runs after the other sections instead of among them. The compressors
    # are working, so a detector that missed the ridden band would be off by decibels.
    assert np.max(np.abs(flat.astype(np.float64) - static)) < 1e-6 * np.abs(static).max()


def test_moving_one_eq_breakpoint_changes_the_audio_only_around_it() -> None:
    stems = _stems()
    settings = MixSettings.neutral(["noise.wav", "chord.wav", "bass.wav"])  # linear chain, no reverb
    settings.set(1, "eq.band_1.freq_hz", 250.0)  # on the chord's 220/330 Hz
    settings.automation = {"chord.wav": {"eq.band_1.gain_db": Lane((0.4, 1.0, 1.6), (0.0, -12.0, 0.0))}}
    before = render_console(stems, SR, settings, workers=1)
    settings.automation = {"chord.wav": {"eq.band_1.gain_db": Lane((0.4, 1.1, 1.6), (0.0, -12.0, 0.0))}}
    after = render_console(stems, SR, settings, workers=1)
    diff = np.abs(before.astype(np.float64) - after).max(axis=0)
    assert np.all(diff[: int(0.4 * SR)] == 0.0)  # the same coefficients up to the previous breakpoint
    assert diff[int(1.0 * SR):int(1.1 * SR)].max() > 0.01
    # After the next breakpoint only the band's own ringing (a Q 0.7 bell) and the master's
    # 10 Hz high-pass remember the change, far below hearing.
    assert diff[int(1.65 * SR):].max() < 1e-4 * np.abs(before).max()


def _away_from_the_tone_db(y: np.ndarray, freq_hz: float, width_hz: float = 50.0) -> float:
    """Energy of ``y`` ``(n,)`` more than ``width_hz`` from ``freq_hz``, relative to all of it (dB);
    Blackman window, whose leakage is below −100 dB that far out."""
    spectrum = np.abs(np.fft.rfft(y * np.blackman(len(y)))) ** 2
    away = np.abs(np.fft.rfftfreq(len(y), 1 / SR) - freq_hz) > width_hz
    return 10 * math.log10(spectrum[away].sum() / spectrum.sum())


def _eq_ramp_on_a_tone() -> float:
    """A 1 kHz sine through a bell at 1 kHz ridden 0 → +15 dB over 1 s: sidebands during the ramp (dB)."""
    tone = sine(1000.0, 2.0, amplitude=0.25, sr=SR, channels=1)
    settings = MixSettings.neutral(["tone.wav"])
    settings.set(0, "eq.band_2.freq_hz", 1000.0)
    settings.set(0, "eq.band_2.q", 1.0)
    settings.automation = {"tone.wav": {"eq.band_2.gain_db": Lane((0.5, 1.5), (0.0, 15.0))}}
    _, tracks = render_console([tone], SR, settings, return_tracks=True, workers=1)
    return _away_from_the_tone_db(tracks[0][0, int(0.5 * SR):int(1.5 * SR)].astype(np.float64), 1000.0)


def test_an_eq_ramp_makes_no_zipper_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    # The coefficients step every EQ_UPDATE_SAMPLES: 0.02 dB at a time here, whose sidebands at
    # multiples of fs/32 ≈ 689 Hz from the tone must stay below −60 dB.
    assert _eq_ramp_on_a_tone() < -60.0
    monkeypatch.setattr(eq_ride, "EQ_UPDATE_SAMPLES", 2048)  # a coarse staircase: the measure hears it
    assert _eq_ramp_on_a_tone() > -45.0


def test_json_roundtrip_and_versions() -> None:
    settings = _automated(np.random.default_rng(1), True).clipped()
    settings.sections = [Section(0.0, 1.0, "A"), Section(1.0, 2.0, "B")]
    data = json.loads(dumps(settings))
    assert data["version"] == AUTOMATION_VERSION
    assert data["tracks"]["noise.wav"]["automation"]["gain_db"] == {
        "shape": "linear", "points": [[0.2, 0.0], [0.9, -18.0], [1.6, 3.0]]}
    assert data["master"]["automation"]["gain_db"]["points"][-1] == [2.0, -6.0]
    back = from_json(data)
    assert back.automation == settings.automation and back.master_automation == settings.master_automation
    assert back.sections == settings.sections
    assert json.loads(dumps(MixSettings.neutral(["a.wav"])))["version"] == SCHEMA_VERSION  # static: as before

    static = json.loads(dumps(MixSettings.neutral(["a.wav"])))
    static["tracks"]["a.wav"]["automation"] = {"gain_db": {"points": [[0, 0]]}}
    with pytest.raises(ParamsError, match=r"tracks\['a.wav'\].automation: needs version 2"):
        from_json(static)


@pytest.mark.parametrize(("lane", "fragment"), [
    ({"width": {"points": [[0, 1]]}}, "automation.width: not automatable"),
    ({"gain_db": {"points": [[1, 0], [1, -3]]}}, "points[1]: time 1 s is not after"),
    ({"gain_db": {"points": [[-1, 0]]}}, "before the song starts"),
    ({"gain_db": {"points": [[0, 40]]}}, "points[0]: 40 dB is outside"),
    ({"gain_db": {"shape": "cubic", "points": [[0, 0]]}}, "shape: \"cubic\" is not one of linear, step"),
    ({"gain_db": {"points": []}}, "points: expected a non-empty list"),
    ({"gain_db": {"points": [[0, True]]}}, "points[0]: expected [time_s, value]"),
    ({"eq.band_2.freq_hz": {"points": [[0, 700]]}}, "automation.eq.band_2.freq_hz: not automatable"),
    ({"eq.band_2.gain_db": {"points": [[0, 3], [0.5, 16]]}}, "eq.band_2.gain_db.points[1]: 16 dB is outside"),
    ({"eq.high_shelf.gain_db": {"points": [[2, 0], [1, 3]]}}, "points[1]: time 1 s is not after"),
])
def test_bad_lanes_name_the_field(lane: dict, fragment: str) -> None:
    data = json.loads(dumps(MixSettings.neutral(["a.wav"])))
    data["version"] = AUTOMATION_VERSION
    data["tracks"]["a.wav"]["automation"] = lane
    with pytest.raises(ParamsError, match="^tracks\\['a.wav'\\]") as caught:
        from_json(data)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("name", ["pan", "eq.band_3.gain_db"])
def test_a_breakpoint_after_the_song_is_refused_at_render(name: str) -> None:
    settings = MixSettings.neutral(["tone.wav"])
    settings.automation = {"tone.wav": {name: Lane((0.0, 5.0), (0.0, 1.0))}}
    with pytest.raises(AutomixError, match=rf"tracks\['tone.wav'\].automation.{name}: a breakpoint at 5 s is after"):
        render_console([sine(440.0, 1.0, sr=SR, channels=1)], SR, settings)


def _song_with_a_drop(folder, synth, drop_db: float):
    """Four steady stems of 24 s; ``lead.wav`` drops ``drop_db`` halfway through."""
    folder.mkdir(parents=True, exist_ok=True)
    sr, seconds = 22050, 24.0
    rng = np.random.default_rng(2)
    synth.write(folder / "drums.wav", (rng.standard_normal((1, int(sr * seconds))) * 0.05).astype(np.float32), sr)
    synth.write(folder / "bass.wav", sine(55.0, seconds, amplitude=0.2, sr=sr, channels=1), sr)
    synth.write(folder / "keys.wav", sine(440.0, seconds, amplitude=0.1, sr=sr, channels=2), sr)
    lead = sine(880.0, seconds, amplitude=0.1, sr=sr, channels=1)
    lead[:, lead.shape[1] // 2:] *= np.float32(10 ** (-drop_db / 20))
    synth.write(folder / "lead.wav", lead, sr)
    return folder


def _lead_against_the_rest_db(tracks_dir) -> tuple[float, float]:
    """The lead's level against the sum of the other processed tracks, first and second half (dB)."""
    import soundfile as sf

    audio = {p.stem: sf.read(str(p), always_2d=True)[0].T for p in tracks_dir.glob("*.wav") if p.stem != "reverb_return"}
    lead = audio.pop("lead")
    rest = sum(audio.values())
    half = lead.shape[1] // 2
    margin = lead.shape[1] // 8  # away from the ramp at the boundary

    def level(x: np.ndarray) -> float:
        return 10 * math.log10(np.mean(x ** 2))

    first = level(lead[:, margin:half - margin]) - level(rest[:, margin:half - margin])
    second = level(lead[:, half + margin:-margin]) - level(rest[:, half + margin:-margin])
    return first, second


def test_mix_rides_a_track_that_drops_and_leaves_steady_stems_static(tmp_path, synth) -> None:
    from cli_helpers import run

    song = _song_with_a_drop(tmp_path / "drop", synth, 10.0)
    ridden = run("mix", song, "-o", tmp_path / "ridden.wav", "--model", "rules", "--stems-out", tmp_path / "r")
    assert ridden.exit_code == 0, ridden.output
    first, second = _lead_against_the_rest_db(tmp_path / "r")
    assert abs(first - second) < 3.0, (first, second)
    data = json.loads((tmp_path / "ridden.json").read_text(encoding="utf-8"))
    assert data["version"] == AUTOMATION_VERSION and len(data["sections"]) == 2
    assert "gain_db" in data["tracks"]["lead.wav"]["automation"]
    assert any(n.startswith("ride:") for n in data["tracks"]["lead.wav"]["notes"])

    static = run("mix", song, "-o", tmp_path / "static.wav", "--model", "rules", "--stems-out", tmp_path / "s",
                 "--static")
    assert static.exit_code == 0, static.output
    first, second = _lead_against_the_rest_db(tmp_path / "s")
    assert abs(first - second) > 8.0  # the drop as the stems have it

    # Re-rendering the automated mix.json reproduces the mix bit for bit.
    again = run("render", song, tmp_path / "ridden.json", "-o", tmp_path / "again.wav")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "ridden.wav").read_bytes()

    steady = _song_with_a_drop(tmp_path / "steady", synth, 0.0)
    assert run("mix", steady, "-o", tmp_path / "steady.wav", "--model", "rules").exit_code == 0
    data = json.loads((tmp_path / "steady.json").read_text(encoding="utf-8"))
    assert data["version"] == SCHEMA_VERSION and "sections" not in data
    assert not any("automation" in t for t in data["tracks"].values())


def test_show_tells_the_rides(tmp_path, synth) -> None:
    from cli_helpers import run

    song = _song_with_a_drop(tmp_path / "drop", synth, 10.0)
    assert run("mix", song, "-o", tmp_path / "mix.wav", "--model", "rules").exit_code == 0
    data = json.loads((tmp_path / "mix.json").read_text(encoding="utf-8"))
    points = data["tracks"]["lead.wav"]["automation"]["gain_db"]["points"]
    low, high = min(v for _, v in points), max(v for _, v in points)
    from typer.testing import CliRunner

    from automix import cli

    shown = CliRunner().invoke(cli.app, ["show", str(tmp_path / "mix.json")], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    row = next(line for line in shown.stdout.splitlines() if line.lstrip().startswith("lead.wav"))
    assert f"{low:+.1f}".rstrip("0").rstrip(".") + "…" in row and "sections" in shown.stdout
    flat = json.loads(run("show", tmp_path / "mix.json", "--json").stdout)
    assert flat["tracks"]["lead.wav"]["automation.gain_db"] == points and high > low


def test_eval_mixes_as_mix_does_and_plots_the_lanes(tmp_path, synth) -> None:
    from automix.console.settings import load_params
    from automix.evaluate.run import evaluate_dataset

    _song_with_a_drop(tmp_path / "data" / "song0", synth, 10.0)
    out = tmp_path / "report"
    evaluate_dataset(tmp_path / "data", ["rules"], out, split=None, layout="folder")
    assert "gain_db" in load_params(out / "settings" / "song0" / "rules.json").automation["lead.wav"]
    assert (out / "plots" / "automation_song0.png").stat().st_size > 10_000
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["automate"] is True

    static = tmp_path / "static"
    evaluate_dataset(tmp_path / "data", ["rules"], static, split=None, layout="folder", automate=False)
    assert not load_params(static / "settings" / "song0" / "rules.json").automation
    assert not (static / "plots" / "automation_song0.png").exists()
    with pytest.raises(AutomixError, match="automate True → False"):
        evaluate_dataset(tmp_path / "data", ["rules"], out, split=None, layout="folder", automate=False)


def test_render_of_a_mix_json_with_an_eq_lane_is_bit_exact(tmp_path, song_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli_helpers import run

    from automix import engine

    def cut_the_pad(settings: MixSettings, stems, rate: int) -> MixSettings:
        # As a mixer that rides EQ would: a lane with values the JSON rounds (and a step).
        settings.automation.setdefault("pad.flac", {})["eq.band_1.gain_db"] = Lane(
            (0.5, 0.87654321, 1.3456789), (0.0, -6.123456789, 4.98765432), "step")
        return settings

    monkeypatch.setattr(engine, "ride_faders", cut_the_pad)
    assert run("mix", song_dir, "-o", tmp_path / "mix.wav", "--model", "rules").exit_code == 0
    data = json.loads((tmp_path / "mix.json").read_text(encoding="utf-8"))
    lane = data["tracks"]["pad.flac"]["automation"]["eq.band_1.gain_db"]
    assert data["version"] == AUTOMATION_VERSION and lane["points"][1] == [0.8765, -6.1235]  # as rounded
    again = run("render", song_dir, tmp_path / "mix.json", "-o", tmp_path / "again.wav")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "mix.wav").read_bytes()
