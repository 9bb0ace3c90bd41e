"""Reading a MIDI file per channel: an excerpt's events, the song's length, its composer's name and balance.

Controllers, pitch bend and notes are read with mido, all tracks merged, in seconds; a file
carries a balance decision (:func:`balance_problem`) when at least two channels play and a
volume (CC7) or pan (CC10) message, or clearly different velocities, sets them apart.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

from automix.data.fluid import MidiEvent
from automix.errors import AutomixError

CC_VOLUME, CC_PAN, CC_BANK_MSB, CC_BANK_LSB = 7, 10, 0, 32
VELOCITY_SPREAD_MIN = 16  # median velocities of two channels this far apart (≈ 3 dB) are a balance


@dataclass
class ChannelPlay:
    """What one MIDI channel does in an excerpt.

    ``controls`` (CC and pitch-bend events, seconds from the excerpt start) apply to the
    channel whatever program plays; ``notes`` maps each program to its note on/off events, so
    a program change affects only the notes started after it.
    """

    channel: int
    controls: list[MidiEvent] = field(default_factory=list)
    notes: dict[int, list[MidiEvent]] = field(default_factory=dict)

    def n_notes(self, program: int | None = None) -> int:
        """Note-ons of one program (all programs when ``None``)."""
        lists = self.notes.values() if program is None else [self.notes.get(program, [])]
        return sum(1 for events in lists for ev in events if ev.kind == "on")


def _fix_key_signatures(data: bytes) -> bytes:
    """Clamp key-signature meta events (``FF 59 02 sf mi``) to a valid key: some game files carry
    mode 255, which mido refuses, and a key signature does not change how a file sounds."""
    def fix(m: re.Match[bytes]) -> bytes:
        sf_ = int.from_bytes(m.group(1), "big", signed=True)
        return b"\xff\x59\x02" + bytes([max(-7, min(7, sf_)) & 0xFF, 1 if m.group(2)[0] == 1 else 0])

    return re.sub(rb"\xff\x59\x02(.)(.)", fix, data, flags=re.DOTALL)


def _read_midi(path: Path) -> mido.MidiFile:
    try:
        try:
            return mido.MidiFile(str(path), clip=True)
        except mido.KeySignatureError:
            data = _fix_key_signatures(Path(path).read_bytes())
            return mido.MidiFile(file=io.BytesIO(data), clip=True)
    except (OSError, ValueError, EOFError, KeyError, IndexError, mido.KeySignatureError) as exc:
        raise AutomixError(f"cannot read MIDI file {path}: {exc}") from exc


def read_channels(path: Path, start_s: float = 0.0, duration_s: float | None = None) -> dict[int, ChannelPlay]:
    """Per-channel events of ``path`` inside ``[start_s, start_s + duration_s)``; keys are 0–15.

    Controllers sent before the window are replayed at time 0 in their original order (so
    RPN sequences such as a pitch-bend range survive); the last pitch bend likewise. Notes that
    started before the window are left out. Bank selects are dropped: programs are GM
    (bank 0, drums bank 128 on channel 10).
    """
    midi = _read_midi(path)
    end_s = float("inf") if duration_s is None else start_s + duration_s
    plays = {ch: ChannelPlay(ch) for ch in range(16)}
    program = dict.fromkeys(range(16), 0)
    bend: dict[int, int] = {}
    sounding: dict[tuple[int, int], int] = {}  # (channel, note) -> program it started with
    now_s = 0.0
    for msg in midi:  # all tracks merged; msg.time is seconds since the previous message
        now_s += msg.time
        if now_s >= end_s:
            break
        if msg.is_meta or not hasattr(msg, "channel"):
            continue
        ch, t, inside = msg.channel, max(now_s - start_s, 0.0), now_s >= start_s
        play = plays[ch]
        if msg.type == "program_change":
            program[ch] = msg.program
        elif msg.type == "control_change" and msg.control not in (CC_BANK_MSB, CC_BANK_LSB):
            play.controls.append(MidiEvent(t, "cc", msg.control, msg.value))
        elif msg.type == "pitchwheel":
            if inside:
                play.controls.append(MidiEvent(t, "bend", msg.pitch + 8192))
            else:
                bend[ch] = msg.pitch + 8192
        elif msg.type == "note_on" and msg.velocity > 0:
            if inside:
                play.notes.setdefault(program[ch], []).append(MidiEvent(t, "on", msg.note, msg.velocity))
                sounding[(ch, msg.note)] = program[ch]
        elif msg.type in ("note_on", "note_off"):
            started = sounding.pop((ch, msg.note), None)
            if started is not None:
                play.notes[started].append(MidiEvent(t, "off", msg.note))
    for ch, value in bend.items():
        plays[ch].controls.insert(0, MidiEvent(0.0, "bend", value))
    return {ch: play for ch, play in plays.items() if play.n_notes() > 0}


def song_length_s(path: Path) -> float:
    """Duration of a MIDI file in seconds (to its last event)."""
    return float(_read_midi(path).length)


def balance_problem(path: Path) -> str | None:
    """Why a MIDI file carries no balance decision of its composer, or ``None`` when it does.

    Kept: at least two channels with notes, and a CC7 or CC10 message on a playing channel,
    or median note velocities of two playing channels at least :data:`VELOCITY_SPREAD_MIN` apart.
    """
    try:
        plays = read_channels(path)
    except AutomixError as exc:
        return f"unreadable ({exc})"
    if len(plays) < 2:
        return f"{len(plays)} channel(s) with notes"
    if any(ev.kind == "cc" and ev.a in (CC_VOLUME, CC_PAN) for play in plays.values() for ev in play.controls):
        return None
    medians = [float(np.median([ev.b for evs in p.notes.values() for ev in evs if ev.kind == "on"]))
               for p in plays.values()]
    if max(medians) - min(medians) >= VELOCITY_SPREAD_MIN:
        return None
    return f"no CC7/CC10 and channel velocities within {max(medians) - min(medians):.0f}"


# Copyright texts that name no composer: sequencer defaults, converters, placeholders.
_NOT_AN_AUTHOR = re.compile(r"(?i)<name>|holder|qmus2mid|rhapsody|fdhdfgh|all rights reserved|^\W*$")
_MONTHS = r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"


def clean_author(text: str) -> str:
    """The composer named in a MIDI copyright text (``"Copyright (C) 2006 shunter"`` → ``shunter``),
    or ``""`` for placeholders and converter stamps."""
    text = re.sub(r"&[a-z]+;", " ", text).split(";")[0]
    if _NOT_AN_AUTHOR.search(text):
        return ""
    text = re.sub(r"<[^>]*>?|\([^)]*@[^)]*\)?|\S+@\S+", " ", text)  # e-mail addresses
    text = re.sub(rf"(?i)copyright|\(c\)|©|\?|\bby\b|\b(19|20)\d\d\b|\b({_MONTHS})[a-z]*\b", " ", text)
    return " ".join(text.split()).strip(" -,.")


def meta_author(path: Path) -> str:
    """The composer named in the file's copyright meta events (:func:`clean_author`), or ``""``."""
    for track in _read_midi(path).tracks:
        for msg in track:
            if msg.type == "copyright" and (author := clean_author(msg.text)):
                return author
    return ""
