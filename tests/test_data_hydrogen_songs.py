"""Hydrogen songs: a tiny generated .h2song + WAV kit → known per-instrument levels and pans."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from automix.console.loudness import integrated_lufs
from automix.data import hydrogen_songs as hs
from automix.data.human_mix import SourceFile, energy_pan
from automix.errors import AutomixError

RATE = 44100


def _instrument(iid: int, name: str, volume: float, pan: float, layers: list[tuple[str, float, float]]) -> str:
    xml_layers = "".join(f"<layer><filename>{f}</filename><min>{lo}</min><max>{hi}</max><gain>1</gain>"
                         f"<pitch>0</pitch></layer>" for f, lo, hi in layers)
    return (f"<instrument><id>{iid}</id><name>{name}</name><drumkit>TestKit</drumkit><volume>{volume}</volume>"
            f"<isMuted>false</isMuted><pan>{pan}</pan><gain>1</gain><applyVelocity>true</applyVelocity>"
            f"<muteGroup>-1</muteGroup><instrumentComponent><component_id>0</component_id><gain>1</gain>"
            f"{xml_layers}</instrumentComponent></instrument>")


def _note(position: int, instrument: int, velocity: float = 0.8) -> str:
    return (f"<note><position>{position}</position><velocity>{velocity}</velocity><pan>0</pan><pitch>0</pitch>"
            f"<probability>1</probability><length>-1</length><instrument>{instrument}</instrument></note>")


def _song(tmp_path: Path, instruments: list[str], notes: list[str], bpm: float = 120.0,
          sample_rate: int = RATE) -> Path:
    """demo_songs/test.h2song and drumkits/TestKit/{hit,soft}.wav, like hydrogen-data's layout."""
    kit = tmp_path / "drumkits" / "TestKit"
    kit.mkdir(parents=True)
    t = np.arange(int(0.25 * sample_rate)) / sample_rate
    hit = (0.5 * np.sin(2 * np.pi * 220 * t) * np.exp(-t / 0.08)).astype(np.float32)
    sf.write(kit / "hit.wav", hit, sample_rate)
    sf.write(kit / "soft.wav", 0.1 * hit, sample_rate)
    songs = tmp_path / "demo_songs"
    songs.mkdir()
    xml = (f"<?xml version='1.0' encoding='UTF-8'?><song><version>1.2.0</version><bpm>{bpm}</bpm>"
           f"<volume>1</volume><name>Test song</name><author>Some One &lt;one@example.org></author>"
           f"<license>CC0</license><pan_law_type>RATIO_STRAIGHT_POLYGONAL</pan_law_type>"
           f"<componentList><drumkitComponent><id>0</id><volume>1</volume></drumkitComponent></componentList>"
           f"<instrumentList>{''.join(instruments)}</instrumentList>"
           f"<patternList><pattern><name>p</name><size>192</size><noteList>{''.join(notes)}</noteList></pattern>"
           f"</patternList><virtualPatternList/><patternSequence><group><patternID>p</patternID></group>"
           f"<group><patternID>p</patternID></group></patternSequence></song>")
    path = songs / "test.h2song"
    path.write_text(xml)
    return path


def _source(path: Path) -> SourceFile:
    return SourceFile("hydrogen", "test", path, path.name, "CC0", "", "test")


def test_volume_and_pan_follow_hydrogens_laws(tmp_path: Path) -> None:
    path = _song(tmp_path,
                 [_instrument(0, "Kick", 1.0, -1.0, [("hit.wav", 0, 1)]),
                  _instrument(1, "Hat Closed", 0.5, 0.5, [("hit.wav", 0, 1)])],
                 [_note(pos, i) for pos in (0, 48, 96, 144) for i in (0, 1)])
    mix = hs.render(_source(path))
    assert [name for name, _ in mix.tracks] == ["kick", "hat_closed"]
    kick, hat = (audio for _, audio in mix.tracks)
    # two bars of 4/4 at 120 bpm: 192 ticks a bar, 48 a quarter note
    assert mix.mix.shape == (2, round(4.0 * RATE)) and kick.dtype == np.float32
    # volume is a linear gain, so 0.5 is −6.02 dB (and the hat's pan law keeps its right side at 1)
    right_db = 20 * np.log10(np.abs(hat[1]).max() / np.abs(kick[0]).max())
    assert right_db == pytest.approx(20 * math.log10(0.5), abs=0.01)
    level_db = integrated_lufs(hat.astype(np.float64), RATE) - integrated_lufs(kick.astype(np.float64), RATE)
    expected_db = 20 * math.log10(0.5) + 10 * math.log10(1 + 0.5**2)  # the hat also has 0.5 on the left
    assert level_db == pytest.approx(expected_db, abs=0.1)
    assert energy_pan(kick) == pytest.approx(-1.0, abs=1e-6)
    assert energy_pan(hat) == pytest.approx(4 / math.pi * math.atan2(1.0, 0.5) - 1, abs=1e-3)
    np.testing.assert_allclose(mix.mix, kick + hat, atol=1e-6)


def test_velocity_picks_the_layer_and_scales_it(tmp_path: Path) -> None:
    layers = [("soft.wav", 0.0, 0.5), ("hit.wav", 0.5, 1.0)]
    path = _song(tmp_path, [_instrument(0, "Snare", 1.0, 0.0, layers), _instrument(1, "Kick", 1.0, 0.0, layers)],
                 [_note(0, 0, 0.4), _note(0, 1, 1.0)])
    mix = hs.render(_source(path))
    snare, kick = (audio for _, audio in mix.tracks)
    # soft layer (×0.1) at velocity 0.4 vs loud layer at velocity 1.0
    assert np.abs(snare).max() / np.abs(kick).max() == pytest.approx(0.1 * 0.4, rel=1e-3)


def test_samples_at_another_rate_are_resampled(tmp_path: Path) -> None:
    path = _song(tmp_path, [_instrument(0, "A", 1.0, 0.0, [("hit.wav", 0, 1)]),
                            _instrument(1, "B", 0.7, 0.3, [("hit.wav", 0, 1)])],
                 [_note(0, 0), _note(96, 1)], sample_rate=22050)
    mix = hs.render(_source(path), sample_rate=RATE)
    onset = np.flatnonzero(np.abs(mix.tracks[1][1][1]) > 1e-4)[0]
    assert onset == pytest.approx(round(1.0 * RATE), abs=3)  # tick 96 at 120 bpm = 1 s
    ring_s = np.flatnonzero(np.abs(mix.tracks[0][1][0, :RATE]) > 1e-4)[-1] / RATE  # first bar
    assert 0.2 < ring_s <= 0.26  # the 0.25 s sample keeps its duration


def test_pan_laws_and_old_pan_format() -> None:
    assert hs.pan_gains(0.0) == (1.0, 1.0)
    assert hs.pan_gains(1.0) == (0.0, 1.0)
    left, right = hs.pan_gains(0.0, "RATIO_CONST_POWER")
    assert left == pytest.approx(math.sqrt(0.5)) and right == pytest.approx(math.sqrt(0.5))
    assert hs.pan_gains(0.5, "LINEAR_CONST_SUM") == pytest.approx((0.25, 0.75))
    assert hs.pan_gains(-1.0, "POLAR_CONST_POWER") == pytest.approx((1.0, 0.0), abs=1e-9)
    assert hs.ratio_pan(1.0, 0.5) == pytest.approx(-0.5)
    assert hs.ratio_pan(0.5, 1.0) == pytest.approx(0.5)
    assert hs.ratio_pan(1.0, 1.0) == 0.0


def test_find_sources_offline_and_drops_single_instrument_songs(tmp_path: Path) -> None:
    root = tmp_path / "cache" / "unpacked" / "fake-hydrogen"
    data = root / "usr/share/hydrogen/data"
    _song(data, [_instrument(0, "Kick", 1.0, 0.0, [("hit.wav", 0, 1)]),
                 _instrument(1, "Snare", 0.8, -0.2, [("hit.wav", 0, 1)])], [_note(0, 0), _note(48, 1)])
    solo = (data / "demo_songs" / "test.h2song").read_text().replace("<instrument>1</instrument>",
                                                                     "<instrument>0</instrument>")
    (data / "demo_songs" / "solo.h2song").write_text(solo)
    (root / ".unpacked").write_text("fake.deb\n")
    log: list[str] = []
    found = hs.find_sources(tmp_path / "cache", ["fake-hydrogen"], log=log.append)
    assert [(s.title, s.author, s.licence, s.family) for s in found] == [("Test song", "Some One", "CC0", "hydrogen")]
    assert any("solo.h2song: 1 playing instrument" in line for line in log)


def test_bad_songs_raise(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h2song"
    bad.write_text("<notasong/>")
    with pytest.raises(AutomixError):
        hs.read_song(bad)
    path = _song(tmp_path, [_instrument(0, "A", 1.0, 0.0, [("missing.wav", 0, 1)])], [_note(0, 0)])
    with pytest.raises(AutomixError, match="missing.wav"):
        hs.read_song(path)
