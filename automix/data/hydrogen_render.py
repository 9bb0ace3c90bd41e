"""Rendering a Hydrogen song with Hydrogen's mixing law: a small sampler, one stereo track per instrument.

Hydrogen's law (its ``Sampler::renderNote``, 1.x): a note's amplitude is
``velocity × layer gain × instrument gain × component gain × kit component volume ×
instrument volume × song volume`` (linear: volume 0.5 is −6.02 dB), times the pan law's
channel gain for the resulting pan ``instrument pan + note pan × (1 − |instrument pan|)``
(default law ``RATIO_STRAIGHT_POLYGONAL``: the far side ``1 − |pan|``, the near side 1).

Not reproduced (none changes an author's balance): humanize (random time and velocity),
swing, lead/lag, ADSR attack/decay, mute groups, BPM timeline changes (reported in
``HumanMix.notes`` when a song uses them).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.data.human_mix import HumanMix, SourceFile, audible
from automix.data.hydrogen_read import Instrument, Layer, Song, read_song
from automix.errors import AutomixError
from automix.io import resample

INTRO_FRACTION, INTRO_MAX_S = 0.10, 20.0  # same excerpt rule as the MIDI songs


def pan_gains(pan: float, law: str = "RATIO_STRAIGHT_POLYGONAL", k: float = 4 / 3) -> tuple[float, float]:
    """(left, right) gains of Hydrogen's pan law ``law`` (``<parameter>_<normalisation>``).

    The parameter maps pan −1…1 to raw channel weights (ratio: the far side ``1 − |pan|``;
    linear: ``1 ∓ pan``; polar: cos/sin of ``π/4·(pan + 1)``; quadratic: ``√(1 ∓ pan)``); the
    normalisation divides them by their max (straight polygonal), their L2 norm (constant
    power), their sum (constant sum) or their k-norm.
    """
    kind, _, norm = law.upper().partition("_")
    pan = float(np.clip(pan, -1.0, 1.0))
    if kind == "LINEAR":
        left, right = 1.0 - pan, 1.0 + pan
    elif kind == "POLAR":
        theta = math.pi / 4 * (pan + 1.0)
        left, right = math.cos(theta), math.sin(theta)
    elif kind == "QUADRATIC":
        left, right = math.sqrt(1.0 - pan), math.sqrt(1.0 + pan)
    else:  # RATIO (the default)
        left, right = min(1.0, 1.0 - pan), min(1.0, 1.0 + pan)
    if norm == "CONST_POWER":
        scale = math.hypot(left, right)
    elif norm == "CONST_SUM":
        scale = left + right
    elif norm == "CONST_K_NORM":
        scale = (left**k + right**k) ** (1.0 / k)
    else:  # STRAIGHT_POLYGONAL
        scale = max(left, right)
    return left / scale, right / scale


class _Samples:
    """Sample files decoded once, as float32 ``(2, frames)`` at the render rate."""

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self._cache: dict[Path, np.ndarray] = {}

    def get(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            try:
                data, rate = sf.read(str(path), dtype="float32", always_2d=True)
            except (RuntimeError, sf.LibsndfileError) as exc:
                raise AutomixError(f"cannot read sample {path}: {exc}") from exc
            audio = np.repeat(data.T, 2, axis=0) if data.shape[1] == 1 else data.T[:2]
            self._cache[path] = resample(np.ascontiguousarray(audio), rate, self.rate_hz)
        return self._cache[path]


def _pick_layer(layers: list[Layer], velocity: float) -> Layer:
    for layer in layers:
        if layer.min_velocity <= velocity <= layer.max_velocity:
            return layer
    return min(layers, key=lambda layer: abs(layer.min_velocity - velocity))  # a hole between layers


def _repitch(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Play ``audio`` 2^(semitones/12) times faster (linear interpolation, as Hydrogen's default)."""
    if semitones == 0.0:
        return audio
    step = 2.0 ** (semitones / 12.0)
    pos = np.arange(0.0, audio.shape[1] - 1, step)
    return np.stack([np.interp(pos, np.arange(audio.shape[1]), ch) for ch in audio]).astype(np.float32)


def excerpt_start_s(length_s: float, max_seconds: float) -> float:
    """10 % into the song, at most 20 s, 0 when the song fits in ``max_seconds``."""
    if length_s <= max_seconds:
        return 0.0
    return min(INTRO_FRACTION * length_s, INTRO_MAX_S, length_s - max_seconds)


def track_name(name: str) -> str:
    """``Hat Closed`` → ``hat_closed``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "instrument"


def render_song(song: Song, sample_rate: int, start_s: float, duration_s: float,
                seed: int = 0) -> list[tuple[Instrument, np.ndarray]]:
    """Every instrument's ``(2, N)`` float32 track over ``[start_s, start_s + duration_s)``.

    Notes that start before the window but still ring into it are included.
    """
    rng = np.random.default_rng([seed, 2])  # note probabilities
    samples = _Samples(sample_rate)
    n_out = round(duration_s * sample_rate)
    first = round(start_s * sample_rate)
    by_id = {inst.id: inst for inst in song.instruments}
    tracks = {inst.id: np.zeros((2, n_out), dtype=np.float32) for inst in song.instruments}
    for note in song.notes:
        inst = by_id.get(note.instrument)
        if inst is None or inst.muted or not inst.components:
            continue
        if note.probability < 1.0 and rng.random() >= note.probability:
            continue
        at = round(note.tick * song.tick_s * sample_rate) - first
        if at >= n_out:
            break
        pan = inst.pan + note.pan * (1.0 - abs(inst.pan))
        left, right = pan_gains(pan, song.pan_law, song.pan_law_k)
        level = (note.velocity if inst.apply_velocity else 1.0) * inst.gain * inst.volume * song.volume
        for comp_gain, layers in inst.components:
            layer = _pick_layer(layers, note.velocity)
            audio = _repitch(samples.get(layer.path), note.pitch + layer.pitch + inst.pitch_offset)
            if note.length_ticks >= 0:  # a note with a length is released after it
                stop = round(note.length_ticks * song.tick_s * sample_rate)
                fade = np.clip(1.0 - (np.arange(audio.shape[1]) - stop) / max(inst.release_frames, 1), 0.0, 1.0)
                audio = audio * fade.astype(np.float32)
            lo, hi = max(at, 0), min(at + audio.shape[1], n_out)
            if hi <= lo:
                continue
            gain = np.array([[left], [right]], dtype=np.float32) * np.float32(level * comp_gain * layer.gain)
            tracks[inst.id][:, lo:hi] += gain * audio[:, lo - at:hi - at]
    return [(inst, tracks[inst.id]) for inst in song.instruments]


def render(source: SourceFile, sample_rate: int = 44100, max_seconds: float = 30.0,
           drumkit_dir: Path | None = None, seed: int = 0) -> HumanMix:
    """Render an excerpt of at most ``max_seconds`` of a Hydrogen song, one track per instrument.

    Tracks are ``(2, N)`` float32 with the author's volume, gain, pan and the notes' velocities
    and pans; inaudible ones (muted, unused) are dropped; the mix is the sum of the tracks.
    ``drumkit_dir`` is a folder of kits searched before the song's own ``../drumkits``.
    """
    if max_seconds <= 0 or sample_rate <= 0:
        raise AutomixError("max_seconds and sample_rate must be > 0")
    song = read_song(source.path, [drumkit_dir] if drumkit_dir else [])
    length_s = song.length_ticks * song.tick_s
    if length_s <= 0 or not song.notes:
        raise AutomixError(f"{source.source_path}: empty pattern sequence")
    start_s = excerpt_start_s(length_s, max_seconds)
    duration_s = min(max_seconds, length_s - start_s)
    notes = [f"not reproduced: {', '.join(song.unsupported)}"] if song.unsupported else []
    tracks = []
    for inst, audio in render_song(song, sample_rate, start_s, duration_s, seed):
        if audible(audio, sample_rate):
            tracks.append((track_name(inst.name), audio))
        elif any(n.instrument == inst.id for n in song.notes):
            notes.append(f"{inst.name} inaudible: dropped")
    if not tracks:
        raise AutomixError(f"{source.source_path}: no audible instrument")
    mix = np.sum([audio for _, audio in tracks], axis=0).astype(np.float32)
    notes.append(f"excerpt {start_s:.2f}–{start_s + duration_s:.2f} s of {length_s:.1f} s at {song.bpm:g} bpm")
    return HumanMix(source, sample_rate, tracks, mix, offset_s=start_s, notes=notes)
