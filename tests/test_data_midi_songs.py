"""MIDI songs with a composer's balance: filter, WAD lumps, and a per-channel render with known CC7/CC10."""

from __future__ import annotations

import ctypes.util
import struct
from pathlib import Path

import mido
import numpy as np
import pytest

from automix.console.loudness import integrated_lufs
from automix.data import midi_songs, soundfonts
from automix.data.human_mix import SourceFile, energy_pan
from automix.errors import AutomixError

HAVE_FLUIDSYNTH = ctypes.util.find_library("fluidsynth") is not None
HAVE_FONT = soundfonts.by_name("FluidR3_GM").path.is_file()
needs_synth = pytest.mark.skipif(not (HAVE_FLUIDSYNTH and HAVE_FONT),
                                 reason="needs apt packages fluidsynth and fluid-soundfont-gm")
BASS = 32  # GM acoustic bass: a mono-sample preset in FluidR3_GM, so CC10 alone sets its pan


def _write_midi(path: Path, channels: list[dict], seconds: float = 3.0) -> Path:
    """One track per channel: optional program/CC7/CC10, then one long note (or ``notes``)."""
    midi = mido.MidiFile(ticks_per_beat=480)  # 120 bpm: 960 ticks a second
    for spec in channels:
        track = mido.MidiTrack()
        ch = spec["channel"]
        track.append(mido.Message("program_change", channel=ch, program=spec.get("program", 0)))
        for cc, key in ((7, "volume"), (10, "pan")):
            if key in spec:
                track.append(mido.Message("control_change", channel=ch, control=cc, value=spec[key]))
        for note, velocity in spec.get("notes", [(45, 100)]):
            track.append(mido.Message("note_on", channel=ch, note=note, velocity=velocity))
            track.append(mido.Message("note_off", channel=ch, note=note, time=int(960 * seconds / len(spec.get("notes", [0])))))
        midi.tracks.append(track)
    midi.save(str(path))
    return path


def _source(path: Path) -> SourceFile:
    return SourceFile("midi", "test", path, path.name, "CC0", "", path.stem)


def test_filter_keeps_balanced_files_and_drops_others(tmp_path: Path) -> None:
    balanced = _write_midi(tmp_path / "a.mid", [{"channel": 0, "volume": 127}, {"channel": 1, "volume": 64}])
    panned = _write_midi(tmp_path / "b.mid", [{"channel": 0, "pan": 0}, {"channel": 1}])
    velocities = _write_midi(tmp_path / "c.mid", [{"channel": 0, "notes": [(45, 110)]},
                                                  {"channel": 1, "notes": [(45, 60)]}])
    flat = _write_midi(tmp_path / "d.mid", [{"channel": 0}, {"channel": 1}])
    solo = _write_midi(tmp_path / "e.mid", [{"channel": 0, "volume": 90}])
    assert midi_songs.balance_problem(balanced) is None
    assert midi_songs.balance_problem(panned) is None
    assert midi_songs.balance_problem(velocities) is None
    assert "no CC7/CC10" in (midi_songs.balance_problem(flat) or "")
    assert "1 channel" in (midi_songs.balance_problem(solo) or "")
    (tmp_path / "f.mid").write_bytes(b"not midi")
    assert "unreadable" in (midi_songs.balance_problem(tmp_path / "f.mid") or "")


def _wad(path: Path, lumps: list[tuple[str, bytes]]) -> Path:
    body, directory, offset = b"", b"", 12
    for name, data in lumps:
        directory += struct.pack("<ii8s", offset + len(body), len(data), name.encode())
        body += data
    path.write_bytes(b"IWAD" + struct.pack("<ii", len(lumps), 12 + len(body)) + body + directory)
    return path


def test_find_sources_reads_midi_files_and_wad_lumps_offline(tmp_path: Path) -> None:
    # a package already "downloaded and unpacked" in the cache: no apt needed
    root = tmp_path / "cache" / "unpacked" / "fakepkg"
    music = root / "usr/share/games/fake/music"
    music.mkdir(parents=True)
    (root / ".unpacked").write_text("fakepkg.deb\n")
    doc = root / "usr/share/doc/fakepkg"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nCopyright: someone\nLicense: GPL-2+\n\n"
                                   "Files: music/*\nCopyright: composer\nLicense: CC-BY-SA-4.0\n")
    _write_midi(music / "song.mid", [{"channel": 0, "volume": 100}, {"channel": 1, "pan": 20}])
    _write_midi(music / "flat.mid", [{"channel": 0}, {"channel": 1}])
    lump = _write_midi(tmp_path / "lump.mid", [{"channel": 0, "volume": 90}, {"channel": 2, "pan": 100}])
    _wad(root / "usr/share/games/fake/game.wad",
         [("D_SONG", lump.read_bytes()), ("D_OLD", b"MUS\x1a" + bytes(12)), ("MAP01", b"x")])
    log: list[str] = []
    found = midi_songs.find_sources(tmp_path / "cache", ["fakepkg"], log=log.append)
    assert sorted(s.title for s in found) == ["D_SONG", "song"]
    licences = {s.title: s.licence for s in found}
    assert licences == {"song": "CC-BY-SA-4.0", "D_SONG": "GPL-2+"}
    assert {s.source_path for s in found} == {"usr/share/games/fake/music/song.mid",
                                              "usr/share/games/fake/game.wad!D_SONG"}
    assert any("flat.mid: no CC7/CC10" in line for line in log)
    assert any("D_OLD: MUS lump" in line for line in log)
    again = midi_songs.find_sources(tmp_path / "cache", ["fakepkg"], log=lambda _: None)
    assert [s.path for s in again] == [s.path for s in found]  # idempotent, from the cache


def test_excerpt_start_and_author_cleaning() -> None:
    assert midi_songs.excerpt_start_s(25.0, 30.0) == 0.0
    assert midi_songs.excerpt_start_s(100.0, 30.0) == pytest.approx(10.0)
    assert midi_songs.excerpt_start_s(400.0, 30.0) == pytest.approx(20.0)
    assert midi_songs.excerpt_start_s(33.0, 30.0) == pytest.approx(3.0)
    assert midi_songs.clean_author("Copyright (C) 2006 shunter") == "shunter"
    assert midi_songs.clean_author("Copyright © 2010 <Name>") == ""
    assert midi_songs.clean_author("QMUS2MID (C) S.Bacquet") == ""


@needs_synth
def test_render_honours_cc7_and_cc10(tmp_path: Path) -> None:
    path = _write_midi(tmp_path / "balance.mid", [
        {"channel": 0, "program": BASS, "volume": 127, "pan": 0},
        {"channel": 1, "program": BASS, "volume": 64, "pan": 127},
        {"channel": 9, "volume": 100, "notes": [(36, 100), (38, 100)] * 4},
    ])
    mix = midi_songs.render(_source(path), soundfont="FluidR3_GM")
    names = [name for name, _ in mix.tracks]
    assert names == ["acoustic_bass", "acoustic_bass", "drums"]
    loud, quiet, _ = (audio for _, audio in mix.tracks)
    assert all(audio.shape == mix.mix.shape and audio.dtype == np.float32 for _, audio in mix.tracks)
    level_db = (integrated_lufs(quiet.astype(np.float64), 44100)
                - integrated_lufs(loud.astype(np.float64), 44100))
    assert level_db == pytest.approx(40 * np.log10(64 / 127), abs=1.0)  # SF2 default CC7 law
    assert energy_pan(loud) < -0.95 and energy_pan(quiet) > 0.95
    np.testing.assert_allclose(mix.mix, sum(audio for _, audio in mix.tracks), atol=1e-6)
    assert mix.offset_s == 0.0 and mix.mix.shape[1] == pytest.approx(3.0 * 44100, abs=2)


@needs_synth
def test_program_change_stays_in_one_track_and_silent_channels_are_dropped(tmp_path: Path) -> None:
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    for program in (BASS, 0):  # one channel, two instruments in turn
        track.append(mido.Message("program_change", channel=0, program=program))
        track.append(mido.Message("note_on", channel=0, note=45, velocity=100))
        track.append(mido.Message("note_off", channel=0, note=45, time=960))
    track.append(mido.Message("control_change", channel=1, control=7, value=0))  # muted by its author
    track.append(mido.Message("note_on", channel=1, note=60, velocity=100))
    track.append(mido.Message("note_off", channel=1, note=60, time=960))
    midi.tracks.append(track)
    midi.save(str(tmp_path / "prog.mid"))
    mix = midi_songs.render(_source(tmp_path / "prog.mid"), soundfont="FluidR3_GM")
    assert [name for name, _ in mix.tracks] == ["acoustic_bass"]  # ties go to the first program
    first, second = mix.tracks[0][1][:, :44100], mix.tracks[0][1][:, 44100 + 2000:88200]
    assert np.abs(first).max() > 0.01 and np.abs(second).max() > 0.01
    assert any("inaudible" in note for note in mix.notes)


def test_render_rejects_bad_arguments(tmp_path: Path) -> None:
    path = _write_midi(tmp_path / "x.mid", [{"channel": 0, "volume": 100}, {"channel": 1}])
    with pytest.raises(AutomixError):
        midi_songs.render(_source(path), max_seconds=0)
    with pytest.raises(AutomixError):
        midi_songs.render(_source(path), soundfont=str(tmp_path / "missing.sf2"))
