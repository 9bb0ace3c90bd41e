"""MIDI songs whose composers set each channel's level and pan, rendered per channel with fluidsynth.

Sources are Debian packages shipping General MIDI music (:data:`DEFAULT_PACKAGES`, documented
with their counts in ``docs/real-sources-midi.md``). WAD files (Freedoom) are searched for music
lumps; the MIDI ones are taken, MUS ones are skipped. A file is kept only when it carries a
balance decision (:func:`balance_problem`): at least two channels with notes, and a volume (CC7)
or pan (CC10) message or clearly different velocities between channels.

:func:`render` plays an excerpt with every channel's own controllers (CC7 volume, CC11
expression, CC10 pan, the rest), velocities, program changes and pitch bend, dry (reverb and
chorus off), each MIDI channel to its own stereo track; the mix is their sum.

Gain law (measured with fluidsynth 2.3 on FluidR3_GM, MuseScore_General_Lite and TimGM6mb):
the SoundFont default modulators make CC7, CC11 and velocity each an attenuation of
``40·log10(value/127)`` dB (CC7 64 vs 127: −11.9 dB; fluidsynth's default CC7 is 100, i.e.
−4.2 dB). CC10 is a constant-power pan, :func:`automix.data.human_mix.energy_pan` ≈
``(cc − 64)/64`` for a mono-sample preset (stereo-sample presets such as the pianos keep their
own spread on top).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import re
import struct
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

from automix.data import soundfonts
from automix.data.fluid import MAX_CHANNELS, ChannelSpec, MidiEvent, render_channels
from automix.data.human_mix import HumanMix, SourceFile, audible
from automix.data.refs import licence_for, parse_copyright
from automix.errors import AutomixError

FAMILY = "midi"
DRUM_CHANNEL = 9  # MIDI channel 10
CC_VOLUME, CC_PAN, CC_BANK_MSB, CC_BANK_LSB = 7, 10, 0, 32
MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".rmi")
WAD_SUFFIX = ".wad"
VELOCITY_SPREAD_MIN = 16  # median velocities of two channels this far apart (≈ 3 dB) are a balance
INTRO_FRACTION, INTRO_MAX_S = 0.10, 20.0  # the excerpt skips this much of a long song's intro
RENDER_GAIN = 0.5  # fluidsynth's synth.gain (its default is 0.2; 0.5 keeps songs near −20 LUFS)
GM_FONTS = ("FluidR3_GM", "MuseScore_General_Lite", "TimGM6mb")

# Packages searched (see docs/real-sources-midi.md for the ones tried with nothing usable).
DEFAULT_PACKAGES: tuple[str, ...] = (
    "openttd-openmsx", "simutrans-data", "freedoom", "freedink-data", "planetblupi-music-midi",
    "kobodeluxe-data", "liquidwar-data", "mma", "solfege", "pianobooster",
)
# Licence when the package's copyright file has no machine-readable stanza for the file
# (read from each package's copyright file by hand).
FALLBACK_LICENCE: dict[str, str] = {
    "openttd-openmsx": "GPL-2.0",
    "simutrans-data": "Artistic-1.0",
    "freedoom": "BSD-3-Clause (freedoom-license)",
    "freedink-data": "GPL-3+",  # replacement music; 1003/2/dance/insper/lively/love: zlib-style, below
    "planetblupi-music-midi": "GPL-3+",
    "kobodeluxe-data": "GPL-2+",
    "liquidwar-data": "GPL-2+",
    "mma": "GPL-2+",
    "solfege": "GPL-3+",
    "pianobooster": "GPL-3+",
}
# Per-file licences and composers that the copyright files state in prose (package, glob, value).
_FILE_LICENCE = (
    ("freedink-data", "*/Sound/1003.mid", "Zlib (Seth A. Robinson)"),
    ("freedink-data", "*/Sound/2.mid", "Zlib (Seth A. Robinson)"),
    ("freedink-data", "*/Sound/dance.mid", "Zlib (Seth A. Robinson)"),
    ("freedink-data", "*/Sound/insper.mid", "Zlib (Seth A. Robinson)"),
    ("freedink-data", "*/Sound/lively.mid", "Zlib (Seth A. Robinson)"),
    ("freedink-data", "*/Sound/love.mid", "Zlib (Seth A. Robinson)"),
    ("freedink-data", "*/Sound/13.mid", "public domain"),
)
_FILE_AUTHOR = (  # from openmsx readme.txt "Credits" and freedink README-REPLACEMENTS.txt
    ("openttd-openmsx", "*_redfarn.mid", "Jim Redfarn"),
    ("openttd-openmsx", "*imuh3.mid", "imuh3"),
    ("openttd-openmsx", "*/flying_scotsman.mid", "imuh3"),
    ("openttd-openmsx", "*/train_filled_with_cash.mid", "imuh3"),
    ("openttd-openmsx", "*/chuggachugga.mid", "imuh3"),
    ("openttd-openmsx", "*/busy_schedule.mid", "mimm"),
    ("openttd-openmsx", "*/the_fast_route.mid", "mimm"),
    ("openttd-openmsx", "*/modern_motion.mid", "Kyle Timmerman"),
    ("openttd-openmsx", "*/keep_on_rolling.mid", "Trolley Trev"),
    ("openttd-openmsx", "*/tttheme2.mid", "-lucas-"),
    ("openttd-openmsx", "*/*_run*.mid", "Tistou Blomberg"),
    ("openttd-openmsx", "*/harp_harmony.mid", "Tistou Blomberg"),
    ("openttd-openmsx", "*/wood_whistles.mid", "Tistou Blomberg"),
    ("openttd-openmsx", "*/linns_basket.mid", "Tistou Blomberg"),
    ("openttd-openmsx", "*/relax_song.mid", "Tistou Blomberg"),
    ("openttd-openmsx", "*/chemistry_lab.mid", "Tistou Blomberg"),
    ("freedink-data", "*/Sound/7.mid", "Joshua O'Leary"),
    ("freedink-data", "*/Sound/12.mid", "Joshua O'Leary"),
    ("freedink-data", "*/Sound/18.mid", "Joshua O'Leary"),
    ("freedink-data", "*/Sound/1003.mid", "Seth A. Robinson"),
    ("freedink-data", "*/Sound/2.mid", "Seth A. Robinson"),
    ("freedink-data", "*/Sound/dance.mid", "Seth A. Robinson"),
    ("freedink-data", "*/Sound/insper.mid", "Seth A. Robinson"),
    ("freedink-data", "*/Sound/lively.mid", "Seth A. Robinson"),
    ("freedink-data", "*/Sound/love.mid", "Seth A. Robinson"),
    ("mma", "*", "Bob van der Poel"),
)

_GM_NAMES = (  # General MIDI level 1 program names, 0–127, in snake case
    "acoustic_grand_piano bright_acoustic_piano electric_grand_piano honky_tonk_piano electric_piano_1 "
    "electric_piano_2 harpsichord clavinet celesta glockenspiel music_box vibraphone marimba xylophone "
    "tubular_bells dulcimer drawbar_organ percussive_organ rock_organ church_organ reed_organ accordion "
    "harmonica tango_accordion acoustic_guitar_nylon acoustic_guitar_steel electric_guitar_jazz "
    "electric_guitar_clean electric_guitar_muted overdriven_guitar distortion_guitar guitar_harmonics "
    "acoustic_bass electric_bass_finger electric_bass_pick fretless_bass slap_bass_1 slap_bass_2 synth_bass_1 "
    "synth_bass_2 violin viola cello contrabass tremolo_strings pizzicato_strings orchestral_harp timpani "
    "string_ensemble_1 string_ensemble_2 synth_strings_1 synth_strings_2 choir_aahs voice_oohs synth_voice "
    "orchestra_hit trumpet trombone tuba muted_trumpet french_horn brass_section synth_brass_1 synth_brass_2 "
    "soprano_sax alto_sax tenor_sax baritone_sax oboe english_horn bassoon clarinet piccolo flute recorder "
    "pan_flute blown_bottle shakuhachi whistle ocarina lead_square lead_sawtooth lead_calliope lead_chiff "
    "lead_charang lead_voice lead_fifths lead_bass_lead pad_new_age pad_warm pad_polysynth pad_choir pad_bowed "
    "pad_metallic pad_halo pad_sweep fx_rain fx_soundtrack fx_crystal fx_atmosphere fx_brightness fx_goblins "
    "fx_echoes fx_sci_fi sitar banjo shamisen koto kalimba bagpipe fiddle shanai tinkle_bell agogo "
    "steel_drums woodblock taiko_drum melodic_tom synth_drum reverse_cymbal guitar_fret_noise breath_noise "
    "seashore bird_tweet telephone_ring helicopter applause gunshot"
)
GM_PROGRAMS: tuple[str, ...] = tuple(_GM_NAMES.split())
if len(GM_PROGRAMS) != 128:  # pragma: no cover - guards the table above
    raise AutomixError(f"GM program table has {len(GM_PROGRAMS)} names, not 128")


def _print_now(message: str) -> None:
    print(message, flush=True)


# --- reading a MIDI file ----------------------------------------------------------------------


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


# --- finding files in packages ----------------------------------------------------------------


def wad_music_lumps(wad: Path) -> list[tuple[str, bytes]]:
    """``(lump name, data)`` of the music lumps (``D_*``) of a Doom WAD; MIDI or MUS data."""
    data = wad.read_bytes()
    if len(data) < 12 or data[:4] not in (b"IWAD", b"PWAD"):
        raise AutomixError(f"{wad} is not a WAD file")
    n_lumps, dir_offset = struct.unpack_from("<ii", data, 4)
    lumps = []
    for i in range(n_lumps):
        offset, size, raw_name = struct.unpack_from("<ii8s", data, dir_offset + 16 * i)
        name = raw_name.split(b"\0")[0].decode("ascii", errors="replace")
        if name.startswith("D_") and size > 0:
            lumps.append((name, data[offset:offset + size]))
    return lumps


def _unpacked(package: str, cache_dir: Path, log: Callable[[str], None]) -> Path:
    """The package's files under ``cache_dir/unpacked/<package>`` (downloaded and unpacked once)."""
    root = cache_dir / "unpacked" / package
    if (root / ".unpacked").is_file():
        return root
    debs_dir = cache_dir / "debs"
    debs_dir.mkdir(parents=True, exist_ok=True)
    debs = sorted(debs_dir.glob(f"{package}_*.deb"))
    if not debs:
        log(f"{package}: apt-get download")
        proc = subprocess.run(["apt-get", "download", package], cwd=debs_dir, capture_output=True, text=True,
                              check=False)
        debs = sorted(debs_dir.glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not debs:
            raise AutomixError(f"apt-get download {package} failed: {proc.stderr.strip()[-300:]}")
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    (root / ".unpacked").write_text(debs[-1].name + "\n")
    return root


def _candidates(root: Path) -> list[tuple[Path, str]]:
    """(MIDI file on disk, path inside the package) for plain MIDI files and WAD music lumps."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = "/" + str(path.relative_to(root))
        if path.suffix.lower() in MIDI_SUFFIXES:
            found.append((path, rel))
        elif path.suffix.lower() == WAD_SUFFIX:
            out_dir = root.parent.parent / "lumps" / root.name / path.stem
            for name, data in wad_music_lumps(path):
                target = out_dir / f"{name}.mid" if data[:4] == b"MThd" else out_dir / f"{name}.mus"
                if not target.is_file():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                found.append((target, f"{rel}!{name}"))
    return found


def _match(package: str, path: str, table: tuple[tuple[str, str, str], ...]) -> str | None:

    return next((value for pkg, pattern, value in table if pkg == package and fnmatch.fnmatch(path, pattern)),
                None)


@dataclass
class PackageSurvey:
    """What one package held: kept sources and dropped files with the reason."""

    package: str
    n_files: int
    kept: list[SourceFile]
    dropped: list[tuple[str, str]]


def survey_package(package: str, cache_dir: Path, seen: dict[str, str] | None = None,
                   log: Callable[[str], None] = _print_now) -> PackageSurvey:
    """Find, check and describe the MIDI music of one package (``seen``: content hash → source path,
    shared across packages so a song shipped twice is kept once)."""
    seen = {} if seen is None else seen
    root = _unpacked(package, Path(cache_dir), log)
    copyright_files = sorted(root.glob("usr/share/doc/*/copyright"))
    stanzas = parse_copyright(copyright_files[0].read_text(errors="replace")) if copyright_files else []
    fallback = FALLBACK_LICENCE.get(package, "see package copyright")
    kept, dropped = [], []
    candidates = _candidates(root)
    for path, source_path in candidates:
        if path.suffix == ".mus":
            dropped.append((source_path, "MUS lump (not converted)"))
            continue
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest in seen:
            dropped.append((source_path, f"duplicate of {seen[digest]}"))
            continue
        seen[digest] = source_path
        problem = balance_problem(path)
        if problem:
            dropped.append((source_path, problem))
            continue
        file_path = source_path.split("!")[0]
        licence = _match(package, file_path, _FILE_LICENCE) or licence_for(file_path, stanzas, fallback)
        author = _match(package, file_path, _FILE_AUTHOR) or meta_author(path)
        title = source_path.split("!")[-1] if "!" in source_path else Path(source_path).stem
        kept.append(SourceFile(FAMILY, package, path, source_path.lstrip("/"), licence, author, title))
    log(f"{package}: {len(candidates)} MIDI files, {len(kept)} kept")
    return PackageSurvey(package, len(candidates), kept, dropped)


def find_sources(cache_dir: Path, packages: Sequence[str] | None = None,
                 log: Callable[[str], None] = _print_now) -> list[SourceFile]:
    """MIDI songs with a composer's balance from ``packages`` (default :data:`DEFAULT_PACKAGES`).

    Downloads and unpacked files live in ``cache_dir`` and are reused on the next call.
    """
    seen: dict[str, str] = {}
    sources: list[SourceFile] = []
    for package in DEFAULT_PACKAGES if packages is None else packages:
        survey = survey_package(package, Path(cache_dir), seen, log)
        for source_path, reason in survey.dropped:
            log(f"  drop {source_path}: {reason}")
        sources += survey.kept
    return sources


# --- rendering --------------------------------------------------------------------------------


def excerpt_start_s(length_s: float, max_seconds: float) -> float:
    """Where the excerpt starts: 10 % into the song (at most 20 s), 0 if the song fits whole."""
    if length_s <= max_seconds:
        return 0.0
    return min(INTRO_FRACTION * length_s, INTRO_MAX_S, length_s - max_seconds)


def track_name(channel: int, program: int) -> str:
    """``drums`` on MIDI channel 10, else the GM program's name (``acoustic_bass``)."""
    return "drums" if channel == DRUM_CHANNEL else GM_PROGRAMS[program]


def _voices(plays: dict[int, ChannelPlay]) -> tuple[list[tuple[int, int]], list[str]]:
    """(channel, program) pairs to give a synth channel each, at most :data:`MAX_CHANNELS`.

    When a song switches programs too often, a channel's least-played programs are folded into
    its most-played one (their notes then sound with that program).
    """
    notes: list[str] = []
    voices = [(ch, prog) for ch, play in sorted(plays.items()) for prog in sorted(play.notes)]
    while len(voices) > MAX_CHANNELS:
        multi = [(plays[ch].n_notes(p), ch, p) for ch, p in voices if len(plays[ch].notes) > 1]
        _, ch, prog = min(multi)
        main = max(plays[ch].notes, key=lambda p: (plays[ch].n_notes(p), p != prog))
        plays[ch].notes[main] = sorted(plays[ch].notes[main] + plays[ch].notes.pop(prog), key=lambda e: e.time_s)
        voices.remove((ch, prog))
        notes.append(f"channel {ch + 1}: program {prog} played with program {main} (synth channel limit)")
    return voices, notes


def _events(controls: list[MidiEvent], notes: list[MidiEvent]) -> list[MidiEvent]:
    # controls first at equal times, so a note at t=0 hears the replayed volume and pan
    return sorted([*controls, *notes], key=lambda ev: (ev.time_s, ev.kind in ("on", "off")))


def choose_soundfont(seed: int) -> soundfonts.SoundFont:
    """The GM SoundFont for ``seed`` among the installed :data:`GM_FONTS`."""
    installed = [soundfonts.by_name(n) for n in GM_FONTS if soundfonts.by_name(n).path.is_file()]
    if not installed:
        raise AutomixError("no GM SoundFont installed; apt-get install fluid-soundfont-gm "
                           "musescore-general-soundfont-small timgm6mb-soundfont")
    return installed[int(np.random.default_rng([seed, 16]).integers(len(installed)))]


def render(source: SourceFile, sample_rate: int = 44100, max_seconds: float = 30.0,
           soundfont: str | None = None, seed: int = 0) -> HumanMix:
    """Render an excerpt of at most ``max_seconds`` of ``source``: one track per playing channel.

    Each track is ``(2, N)`` float32, the channel soloed with the file's own volume, expression,
    pan, velocities, programs and pitch bend, dry; the mix is the sum of the audible tracks.
    ``soundfont`` is a path or a :mod:`automix.data.soundfonts` name; by default one of
    :data:`GM_FONTS` chosen by ``seed``. The excerpt starts at :func:`excerpt_start_s`.
    """
    if max_seconds <= 0 or sample_rate <= 0:
        raise AutomixError("max_seconds and sample_rate must be > 0")
    font = choose_soundfont(seed).path if soundfont is None else _font_path(soundfont)
    length_s = song_length_s(source.path)
    start_s = excerpt_start_s(length_s, max_seconds)
    duration_s = min(max_seconds, length_s - start_s)
    if duration_s <= 0:
        raise AutomixError(f"{source.source_path}: empty song")
    plays = read_channels(source.path, start_s, duration_s)
    if not plays:
        raise AutomixError(f"{source.source_path}: no notes in the excerpt at {start_s:.1f} s")
    voices, notes = _voices(plays)
    specs = []
    for ch, prog in voices:
        drum = ch == DRUM_CHANNEL
        specs.append(ChannelSpec(font, 128 if drum else 0, prog, drum, _events(plays[ch].controls, plays[ch].notes[prog])))
    raw = render_channels(specs, duration_s, sample_rate, gain=RENDER_GAIN)
    tracks: list[tuple[str, np.ndarray]] = []
    for ch, play in sorted(plays.items()):
        audio = sum(raw[i] for i, (vch, _) in enumerate(voices) if vch == ch)
        main = max(play.notes, key=play.n_notes)
        name = track_name(ch, main)
        if not audible(audio, sample_rate):
            notes.append(f"channel {ch + 1} ({name}) inaudible: dropped")
            continue
        tracks.append((name, audio.astype(np.float32)))
    if not tracks:
        raise AutomixError(f"{source.source_path}: no audible channel")
    mix = np.sum([audio for _, audio in tracks], axis=0).astype(np.float32)
    notes.append(f"soundfont {Path(font).name}; excerpt {start_s:.2f}–{start_s + duration_s:.2f} s "
                 f"of {length_s:.1f} s")
    return HumanMix(source, sample_rate, tracks, mix, offset_s=start_s, notes=notes)


def _font_path(soundfont: str) -> Path:
    path = Path(soundfont)
    if path.suffix.lower() in (".sf2", ".sf3"):
        if not path.is_file():
            raise AutomixError(f"SoundFont {path} not found")
        return path
    font = soundfonts.by_name(soundfont)
    if not font.path.is_file():
        raise AutomixError(f"SoundFont {font.name} not installed ({font.path}); apt-get install {font.package}")
    return font.path
