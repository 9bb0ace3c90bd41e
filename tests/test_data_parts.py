"""MIDI → parts: channel/program splitting, excerpt windows, arranger CC7/CC10, drum-kit splitting."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

from automix.data.parts import ROLES, drum_part_for_note, parts_from_midi, role_for_program, split_drums
from automix.errors import AutomixError

TICKS_PER_BEAT = 480  # at the default 120 bpm one beat is 0.5 s


def _write_midi(path: Path) -> Path:
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    bass = mido.MidiTrack([mido.MetaMessage("track_name", name="Bass"),
                           mido.Message("program_change", channel=0, program=33),
                           mido.Message("control_change", channel=0, control=7, value=90),
                           mido.Message("control_change", channel=0, control=10, value=20)])
    for _ in range(8):  # eight half-second notes
        bass += [mido.Message("note_on", channel=0, note=40, velocity=100, time=0),
                 mido.Message("note_off", channel=0, note=40, time=TICKS_PER_BEAT)]
    keys = mido.MidiTrack([mido.Message("program_change", channel=1, program=0),
                           mido.Message("note_on", channel=1, note=60, velocity=80),
                           mido.Message("note_off", channel=1, note=60, time=TICKS_PER_BEAT),
                           mido.Message("program_change", channel=1, program=48),  # switch to strings
                           mido.Message("note_on", channel=1, note=64, velocity=70),
                           mido.Message("note_off", channel=1, note=64, time=TICKS_PER_BEAT)])
    drums = mido.MidiTrack([mido.MetaMessage("track_name", name="Drum")])
    for note in (36, 42, 38, 42, 36, 49, 38, 75):
        drums += [mido.Message("note_on", channel=9, note=note, velocity=100),
                  mido.Message("note_off", channel=9, note=note, time=TICKS_PER_BEAT // 2)]
    midi.tracks += [bass, keys, drums]
    midi.save(str(path))
    return path


def test_roles_from_gm_programs() -> None:
    assert [role_for_program(p) for p in (0, 25, 33, 48, 53, 56, 65, 73, 81, 89)] == [
        "piano", "guitar", "bass", "strings", "vocals", "brass", "sax", "woodwind", "lead", "pad"]
    assert all(role_for_program(p) in ROLES for p in range(128))
    with pytest.raises(AutomixError):
        role_for_program(128)


def test_parts_split_by_channel_and_program(tmp_path: Path) -> None:
    parts = parts_from_midi(_write_midi(tmp_path / "song.mid"))
    by_name = {(p.name, p.program): p for p in parts}
    assert sorted(p.role for p in parts) == ["bass", "drums", "piano", "strings"]
    bass = by_name[("Bass", 33)]
    assert bass.n_notes == 8 and bass.volume_cc == 90 and bass.pan_cc == 20
    assert all(ev.kind != "cc" or ev.a not in (7, 10) for ev in bass.events)  # balance kept out of stems
    strings = next(p for p in parts if p.role == "strings")
    assert strings.n_notes == 1 and strings.events[0].time_s == pytest.approx(0.5)


def test_excerpt_window_shifts_times(tmp_path: Path) -> None:
    parts = parts_from_midi(_write_midi(tmp_path / "song.mid"), start_s=1.0, duration_s=1.5)
    bass = next(p for p in parts if p.role == "bass")
    onsets = [ev.time_s for ev in bass.events if ev.kind == "on"]
    assert onsets == pytest.approx([0.0, 0.5, 1.0])
    assert bass.volume_cc == 90  # state before the window is carried in
    assert not any(p.role in ("piano", "strings") for p in parts)  # their notes end before 1 s


def test_drum_split_into_kit_pieces(tmp_path: Path) -> None:
    drums = next(p for p in parts_from_midi(_write_midi(tmp_path / "song.mid")) if p.is_drum)
    pieces = split_drums(drums)
    assert [(p.role, p.n_notes) for p in pieces] == [("kick", 2), ("snare", 2), ("hihat", 2), ("cymbals", 1),
                                                     ("percussion", 1)]
    assert sum(p.n_notes for p in pieces) == drums.n_notes
    assert drum_part_for_note(45) == "toms" and drum_part_for_note(81) == "percussion"
