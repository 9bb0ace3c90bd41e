"""Reverse with fader rides: a mix whose lead drops halfway gets a fitted per-section fader lane
that reproduces the drop; a steady mix stays static; ``--static`` forbids rides."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from automix.console.automation import Lane
from automix.console.schema import TRACK
from automix.console.settings import MixSettings, load_params
from automix.errors import AutomixError
from automix.reverse import render_fit, reverse
from automix.reverse.section_levels import section_gains_db, track_frames

SR = 16000  # a quarter of the console's cost at 44.1 kHz; the stems have nothing above 6 kHz
DURATION_S = 18.0  # two sections of 9 s (sections are at least 6 s long)
RIDE_AT_S = 9.0
DROP_DB = 9.0
LEAD_FADER_DB = -2.0


@dataclass(frozen=True)
class Song:
    folder: Path
    names: list[str]
    audio: list[np.ndarray]


@pytest.fixture(scope="module")
def song(synth, tmp_path_factory) -> Song:
    """Kick, bass, lead and a stereo pad, 18 s, written to a stems folder."""
    stems = {"bass.wav": synth.bass(DURATION_S, SR), "kick.wav": synth.kick(DURATION_S, SR),
             "lead.wav": synth.lead(DURATION_S, SR), "pad.wav": synth.pad(DURATION_S, SR)}
    folder = tmp_path_factory.mktemp("ride") / "stems"
    folder.mkdir()
    for name, audio in stems.items():
        synth.write(folder / name, audio, SR)
    names = sorted(stems)
    return Song(folder, names, [stems[n] for n in names])


def _truth(names: list[str], ridden: bool) -> MixSettings:
    """Fixed faders and a panned lead; with ``ridden`` the lead drops DROP_DB at RIDE_AT_S over 0.5 s."""
    settings = MixSettings.neutral(names)
    settings.track[:, TRACK.index("gain_db")] = [-6.0, -3.0, LEAD_FADER_DB, -8.0]
    settings.set("lead.wav", "pan", 0.3)
    if ridden:
        points = (LEAD_FADER_DB, LEAD_FADER_DB, LEAD_FADER_DB - DROP_DB)
        settings.automation = {"lead.wav": {"gain_db": Lane((0.0, RIDE_AT_S - 0.25, RIDE_AT_S + 0.25), points)}}
    return settings


def _section_error_db(song: Song, truth: MixSettings, mix: np.ndarray) -> float:
    """Largest |level of a track in ``mix`` − its level in the target| over the two true sections
    (dB), each level measured against the tracks as ``truth`` renders them."""
    frames = track_frames(song.audio, truth, mix, SR)
    half = round(RIDE_AT_S / frames.frame_s)
    return float(np.nanmax(np.abs(section_gains_db(frames, [(0, half), (half, frames.gram.shape[0])]))))


def _static(settings: MixSettings) -> MixSettings:
    static = settings.clipped()
    static.automation, static.sections = {}, []
    return static


def test_a_fader_drop_in_the_mix_is_fitted_as_a_ride(song, synth, tmp_path):
    truth = _truth(song.names, ridden=True)
    target = render_fit(song.audio, truth, SR)
    mix_file = synth.write(tmp_path / "mix.wav", target, SR)
    out = tmp_path / "fit.json"
    result = reverse(song.folder, mix_file, out, steps=0)  # the start only: rides do not need the gradient fit

    rides = result.rides
    assert rides is not None and rides.fitted and rides.ridden == ["lead.wav"]
    fitted = load_params(out)
    assert set(fitted.automation) == {"lead.wav"}
    lane = fitted.automation["lead.wav"]["gain_db"]
    assert max(lane.values) - min(lane.values) == pytest.approx(DROP_DB, abs=1.5)
    assert lane.values[0] > lane.values[-1]  # a drop, not a lift
    assert [s.start_s for s in fitted.sections] == pytest.approx([0.0, RIDE_AT_S], abs=0.5)
    assert json.loads(out.read_text())["version"] == 2

    # Per-section track levels: the ridden fit matches the target, the static fit cannot.
    ridden_error_db = _section_error_db(song, truth, render_fit(song.audio, fitted, SR))
    static_error_db = _section_error_db(song, truth, render_fit(song.audio, _static(fitted), SR))
    assert static_error_db > 3.0 and ridden_error_db < 1.0, (static_error_db, ridden_error_db)
    assert rides.error_static_db > 3.0 and rides.error_ridden_db is not None and rides.error_ridden_db < 1.0
    assert rides.residual_db is not None and rides.residual_static_db is not None
    assert result.residual_db == pytest.approx(rides.residual_db)
    assert rides.residual_db < rides.residual_static_db - 1.0
    print(f"\nride fit: drop {max(lane.values) - min(lane.values):.2f} dB (truth {DROP_DB}), section error "
          f"static {static_error_db:.2f} dB, ridden {ridden_error_db:.2f} dB; {result.report()}")
    data = result.to_json()
    assert data["rides"]["fitted"] and data["rides"]["tracks"] == ["lead.wav"] and json.dumps(data)
    assert "rides: lead.wav" in result.report()


def test_a_steady_mix_gets_no_automation(song, synth, tmp_path):
    target = render_fit(song.audio, _truth(song.names, ridden=False), SR)
    mix_file = synth.write(tmp_path / "mix.wav", target, SR)
    out = tmp_path / "fit.json"
    result = reverse(song.folder, mix_file, out, steps=0)
    assert result.rides is not None and not result.rides.fitted
    data = json.loads(out.read_text())
    assert data["version"] == 1 and "sections" not in data
    assert not any("automation" in track for track in data["tracks"].values())
    assert result.to_json()["rides"]["fitted"] is False and "rides: none" in result.report()


def test_cli_static_forbids_rides(monkeypatch, tmp_path):
    import typer
    from typer.testing import CliRunner

    import automix.reverse
    from automix.style_cli import reverse_command

    seen: dict[str, object] = {}

    def fake_reverse(*args, **kwargs):
        seen.update(kwargs)
        raise AutomixError("stop here")

    monkeypatch.setattr(automix.reverse, "reverse", fake_reverse)
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("reverse")(reverse_command)
    (tmp_path / "stems").mkdir()
    for flags, automate in (([], True), (["--static"], False)):
        result = CliRunner().invoke(app, ["reverse", str(tmp_path / "stems"), "--mix", "m.wav", "-o", "p.json",
                                          *flags])
        assert result.exit_code == 2 and "stop here" in result.output
        assert seen["automate"] is automate
