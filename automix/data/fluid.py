"""Minimal ctypes binding to libfluidsynth that renders every MIDI channel to its own stereo output.

Why ctypes and not the fluidsynth CLI: one synth per process loads the SoundFonts once, and
``fluid_synth_process`` with ``synth.audio-groups`` = channels writes each channel to its own
buffer, so all stems of a song come out of one pass.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from automix.data.native import open_library
from automix.errors import AutomixError

MAX_CHANNELS = 32  # MIDI channels (and stereo outputs) per synth; a song uses at most this many stems
CHANNEL_TYPE_MELODIC = 0
CHANNEL_TYPE_DRUM = 1


@dataclass(frozen=True)
class MidiEvent:
    """One timed event for a synth channel. ``kind`` is on, off, cc or bend; ``a``/``b`` are its data."""

    time_s: float
    kind: str
    a: int = 0
    b: int = 0


@dataclass
class ChannelSpec:
    """What a synth channel plays: a preset of a loaded SoundFont plus its events (sorted by time)."""

    soundfont: Path
    bank: int
    program: int
    is_drum: bool
    events: list[MidiEvent]


@functools.cache
def _library() -> ctypes.CDLL:
    """The library with its signatures, loaded on first use (importing automix needs no native library)."""
    vp, c, i, d = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_double
    signatures = {
        "new_fluid_settings": ([], vp),
        "delete_fluid_settings": ([vp], None),
        "fluid_settings_setint": ([vp, c, i], i),
        "fluid_settings_setnum": ([vp, c, d], i),
        "new_fluid_synth": ([vp], vp),
        "delete_fluid_synth": ([vp], None),
        "fluid_synth_sfload": ([vp, c, i], i),
        "fluid_synth_program_select": ([vp, i, i, i, i], i),
        "fluid_synth_set_channel_type": ([vp, i, i], i),
        "fluid_synth_noteon": ([vp, i, i, i], i),
        "fluid_synth_noteoff": ([vp, i, i], i),
        "fluid_synth_cc": ([vp, i, i, i], i),
        "fluid_synth_pitch_bend": ([vp, i, i], i),
                "fluid_synth_process": ([vp, i, i, ctypes.POINTER(vp), i, ctypes.POINTER(vp)], i),
        "fluid_set_log_function": ([i, vp, vp], vp),
    }
    lib = open_library("fluidsynth", "libfluidsynth.so.3", "fluidsynth", signatures)
    for level in range(5):  # silence fluidsynth's console logging (sample warnings flood stderr)
        lib.fluid_set_log_function(level, None, None)
    return lib


def render_channels(channels: list[ChannelSpec], duration_s: float, sample_rate_hz: int = 44100,
                    gain: float = 0.5) -> np.ndarray:
    """Render each channel dry (reverb/chorus off) to its own stereo buffer with a fresh synth.

    A new synth per call keeps renders bit-identical whatever the process rendered before
    (a reused synth carries state across songs); dynamic sample loading makes SoundFont loads
    cost ~0.03 s, so this is cheap.
    Returns float32 ``(n_channels, 2, samples)`` with ``samples = round(duration_s * rate)``.
    Events after ``duration_s`` are ignored; notes still sounding are cut at the end.
    """
    if not 1 <= len(channels) <= MAX_CHANNELS:
        raise AutomixError(f"need 1..{MAX_CHANNELS} channels, got {len(channels)}")
    lib = _library()
    settings = lib.new_fluid_settings()
    for key, value in {
        "synth.audio-channels": MAX_CHANNELS,
        "synth.audio-groups": MAX_CHANNELS,
        "synth.midi-channels": MAX_CHANNELS,
        "synth.reverb.active": 0,
        "synth.chorus.active": 0,
        "synth.polyphony": 512,
        "synth.dynamic-sample-loading": 1,
    }.items():
        lib.fluid_settings_setint(settings, key.encode(), value)
    lib.fluid_settings_setnum(settings, b"synth.sample-rate", float(sample_rate_hz))
    lib.fluid_settings_setnum(settings, b"synth.gain", float(gain))
    synth = lib.new_fluid_synth(settings)
    if not synth:
        lib.delete_fluid_settings(settings)
        raise AutomixError("fluidsynth could not create a synthesizer")
    try:
        return _render(lib, synth, channels, round(duration_s * sample_rate_hz), sample_rate_hz)
    finally:
        lib.delete_fluid_synth(synth)
        lib.delete_fluid_settings(settings)


def _render(lib: ctypes.CDLL, synth: int, channels: list[ChannelSpec], n_samples: int,
            sample_rate_hz: int) -> np.ndarray:
    sfont_ids: dict[Path, int] = {}
    for chan, spec in enumerate(channels):
        path = Path(spec.soundfont)
        if path not in sfont_ids:
            sfid = lib.fluid_synth_sfload(synth, str(path).encode(), 0)
            if sfid < 0:
                raise AutomixError(f"fluidsynth could not load SoundFont {path}")
            sfont_ids[path] = sfid
        lib.fluid_synth_set_channel_type(synth, chan, CHANNEL_TYPE_DRUM if spec.is_drum else CHANNEL_TYPE_MELODIC)
        if lib.fluid_synth_program_select(synth, chan, sfont_ids[path], spec.bank, spec.program) != 0:
            # preset missing in this SoundFont: fall back to its first melodic/drum preset
            lib.fluid_synth_program_select(synth, chan, sfont_ids[path], 128 if spec.is_drum else 0, 0)
    n_out = 2 * len(channels)
    out = np.zeros((n_out, n_samples), dtype=np.float32)
    merged = sorted(
        ((ev.time_s, chan, ev) for chan, spec in enumerate(channels) for ev in spec.events),
        key=lambda item: (item[0], item[1]),
    )
    pointers = (ctypes.c_void_p * n_out)()
    row_bytes, base = out.strides[0], out.ctypes.data
    pos = 0

    def render_until(target: int) -> None:
        # fluid_synth_process mixes (adds) into the buffers, which start at zero
        nonlocal pos
        while pos < target:
            step = min(target - pos, 4096)
            for k in range(n_out):
                pointers[k] = base + k * row_bytes + pos * 4
            lib.fluid_synth_process(synth, step, 0, None, n_out, pointers)
            pos += step

    for time_s, chan, ev in merged:
        at = round(time_s * sample_rate_hz)
        if at >= n_samples:
            break
        render_until(at)
        if ev.kind == "on":
            lib.fluid_synth_noteon(synth, chan, ev.a, ev.b)
        elif ev.kind == "off":
            lib.fluid_synth_noteoff(synth, chan, ev.a)
        elif ev.kind == "cc":
            lib.fluid_synth_cc(synth, chan, ev.a, ev.b)
        elif ev.kind == "bend":
            lib.fluid_synth_pitch_bend(synth, chan, ev.a)
    render_until(n_samples)
    return out.reshape(len(channels), 2, n_samples)
