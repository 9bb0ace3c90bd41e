"""Rendering a MIDI song per channel with fluidsynth: each channel soloed with its own controllers, dry.

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

from pathlib import Path

import numpy as np

from automix.data import soundfonts
from automix.data.fluid import MAX_CHANNELS, ChannelSpec, MidiEvent, render_channels
from automix.data.human_mix import HumanMix, SourceFile, audible
from automix.data.midi_read import ChannelPlay, read_channels, song_length_s
from automix.errors import AutomixError

DRUM_CHANNEL = 9  # MIDI channel 10
INTRO_FRACTION, INTRO_MAX_S = 0.10, 20.0  # the excerpt skips this much of a long song's intro
RENDER_GAIN = 0.5  # fluidsynth's synth.gain (its default is 0.2; 0.5 keeps songs near −20 LUFS)
GM_FONTS = ("FluidR3_GM", "MuseScore_General_Lite", "TimGM6mb")

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
