"""MIDI file → instrument parts (one future stem each), with GM roles and drum-kit splitting.

A *part* is what one stem will contain: the notes of one MIDI channel while one program is
selected, with times in seconds from the start of the excerpt. Volume (CC7) and pan (CC10) are
kept aside as the arranger's balance decision; stems are rendered without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import mido

from automix.data.fluid import MidiEvent
from automix.errors import AutomixError

DRUM_CHANNEL = 9
CC_VOLUME, CC_PAN = 7, 10
# Controllers kept in stems: modulation, expression, sustain, sostenuto, soft pedal (performance).
# Volume/pan are the arranger's balance; reverb/chorus sends are dropped because stems are dry.
PERFORMANCE_CCS = frozenset({1, 11, 64, 66, 67})

# Role words that appear in stem file names, so a file name says what the stem is.
DRUM_PART_NOTES: dict[str, frozenset[int]] = {
    "kick": frozenset({35, 36}),
    "snare": frozenset({37, 38, 39, 40}),
    "hihat": frozenset({42, 44, 46}),
    "toms": frozenset({41, 43, 45, 47, 48, 50}),
    "cymbals": frozenset({49, 51, 52, 53, 55, 57, 59}),
}
DRUM_OTHER = "percussion"
_FAMILY_ROLES = (
    "piano", "mallets", "organ", "guitar", "bass", "strings", "strings", "brass",
    "woodwind", "woodwind", "lead", "pad", "fx", "ethnic", "percussion", "fx",
)
ROLES = tuple(sorted(set(_FAMILY_ROLES) | set(DRUM_PART_NOTES) | {DRUM_OTHER, "drums", "vocals", "sax"}))


def role_for_program(program: int) -> str:
    """Role word for a General MIDI program number (0–127)."""
    if not 0 <= program <= 127:
        raise AutomixError(f"GM program must be 0..127, got {program}")
    if 52 <= program <= 54:  # choir aahs, voice oohs, synth voice
        return "vocals"
    if 64 <= program <= 67:
        return "sax"
    return _FAMILY_ROLES[program // 8]


@dataclass
class Part:
    """One instrument part. ``events`` are sorted by time; times are seconds from the excerpt start."""

    name: str
    role: str
    program: int
    is_drum: bool
    events: list[MidiEvent] = field(default_factory=list)
    volume_cc: int = 100  # arranger's CC7 at the excerpt start
    pan_cc: int = 64  # arranger's CC10 at the excerpt start
    drum_part: str | None = None

    @property
    def n_notes(self) -> int:
        return sum(1 for ev in self.events if ev.kind == "on")


def midi_length_s(path: Path) -> float:
    """Duration of a MIDI file in seconds."""
    return float(mido.MidiFile(str(path)).length)


def parts_from_midi(path: Path, start_s: float = 0.0, duration_s: float | None = None) -> list[Part]:
    """Read a MIDI file and return its parts inside ``[start_s, start_s + duration_s)``.

    A channel becomes a new part whenever its program changes, so a stem never switches
    instrument. Controller and pitch-bend state at ``start_s`` is re-sent at time 0.
    """
    try:
        midi = mido.MidiFile(str(path))
    except (OSError, ValueError, EOFError) as exc:
        raise AutomixError(f"cannot read MIDI file {path}: {exc}") from exc
    end_s = float("inf") if duration_s is None else start_s + duration_s
    names = _channel_track_names(midi)
    program = {ch: 0 for ch in range(16)}
    volume = {ch: 100 for ch in range(16)}
    pan = {ch: 64 for ch in range(16)}
    state: dict[int, dict[int, int]] = {ch: {} for ch in range(16)}  # performance CCs before the window
    bend = {ch: 8192 for ch in range(16)}
    parts: dict[tuple[int, int], Part] = {}
    sounding: dict[tuple[int, int], Part] = {}  # (channel, note) -> part the note started in

    def part_for(ch: int) -> Part:
        key = (ch, program[ch] if ch != DRUM_CHANNEL else -1)
        if key not in parts:
            is_drum = ch == DRUM_CHANNEL
            role = "drums" if is_drum else role_for_program(program[ch])
            part = Part(names.get(ch, f"ch{ch + 1}"), role, program[ch], is_drum,
                        volume_cc=volume[ch], pan_cc=pan[ch])
            part.events += [MidiEvent(0.0, "cc", cc, val) for cc, val in sorted(state[ch].items())]
            if bend[ch] != 8192:
                part.events.append(MidiEvent(0.0, "bend", bend[ch]))
            parts[key] = part
        return parts[key]

    now_s = 0.0
    for msg in midi:  # merged tracks, msg.time is seconds since the previous message
        now_s += msg.time
        if now_s >= end_s:
            break
        if msg.is_meta or not hasattr(msg, "channel"):
            continue
        ch, t = msg.channel, max(now_s - start_s, 0.0)
        in_window = now_s >= start_s
        if msg.type == "program_change":
            program[ch] = msg.program
        elif msg.type == "control_change":
            if msg.control == CC_VOLUME:
                volume[ch] = msg.value
            elif msg.control == CC_PAN:
                pan[ch] = msg.value
            elif msg.control in PERFORMANCE_CCS:
                state[ch][msg.control] = msg.value
                if in_window:
                    for (pch, _), part in parts.items():
                        if pch == ch:
                            part.events.append(MidiEvent(t, "cc", msg.control, msg.value))
        elif msg.type == "pitchwheel":
            bend[ch] = msg.pitch + 8192
            if in_window and (ch, program[ch]) in parts:
                parts[(ch, program[ch])].events.append(MidiEvent(t, "bend", msg.pitch + 8192))
        elif msg.type == "note_on" and msg.velocity > 0:
            if in_window:
                part = part_for(ch)
                part.events.append(MidiEvent(t, "on", msg.note, msg.velocity))
                sounding[(ch, msg.note)] = part
        elif msg.type in ("note_on", "note_off"):
            started = sounding.pop((ch, msg.note), None)
            if started is not None:
                started.events.append(MidiEvent(t, "off", msg.note))
    result = [p for p in parts.values() if p.n_notes > 0]
    for part in result:
        part.events.sort(key=lambda ev: ev.time_s)
    return result


def _channel_track_names(midi: mido.MidiFile) -> dict[int, str]:
    """Track name of the first track that plays on each channel (MMA names tracks e.g. ``Chord-Piano``)."""
    names: dict[int, str] = {}
    for track in midi.tracks:
        name = next((m.name for m in track if m.type == "track_name"), "").strip()
        channels = {m.channel for m in track if not m.is_meta and hasattr(m, "channel")}
        for ch in channels:
            if name and ch not in names:
                names[ch] = name
    return names


def drum_part_for_note(note: int) -> str:
    """Which drum-kit piece a GM percussion note belongs to (kick, snare, …, percussion)."""
    return next((name for name, notes in DRUM_PART_NOTES.items() if note in notes), DRUM_OTHER)


def split_drums(part: Part) -> list[Part]:
    """Split a drum part into one part per kit piece (kick, snare, hihat, toms, cymbals, percussion).

    Controller events go to every piece; pieces without notes are dropped.
    """
    if not part.is_drum:
        return [part]
    pieces: dict[str, Part] = {}
    controls = [ev for ev in part.events if ev.kind not in ("on", "off")]
    for ev in part.events:
        if ev.kind not in ("on", "off"):
            continue
        piece = drum_part_for_note(ev.a)
        if piece not in pieces:
            pieces[piece] = replace(part, role=piece, drum_part=piece, events=list(controls))
        pieces[piece].events.append(ev)
    order = [*DRUM_PART_NOTES, DRUM_OTHER]
    result = [pieces[name] for name in order if name in pieces and pieces[name].n_notes > 0]
    for piece in result:
        piece.events.sort(key=lambda ev: ev.time_s)
    return result
