"""Hydrogen demo songs: drum kits whose instrument volumes and pans were set by their authors.

A ``.h2song`` (XML) holds the kit's instruments (volume, pan, gain, velocity layers of WAV/FLAC
samples), patterns of notes (tick position, velocity 0–1, pan, pitch) and a pattern sequence.
:func:`render` is a small sampler that plays it with Hydrogen's mixing law, one stereo track per
instrument (family ``hydrogen``); the mix is their sum.

Hydrogen's law (its ``Sampler::renderNote``, 1.x): a note's amplitude is
``velocity × layer gain × instrument gain × component gain × kit component volume ×
instrument volume × song volume`` (linear: volume 0.5 is −6.02 dB), times the pan law's
channel gain for the resulting pan ``instrument pan + note pan × (1 − |instrument pan|)``
(default law ``RATIO_STRAIGHT_POLYGONAL``: the far side ``1 − |pan|``, the near side 1).
Timing: 48 ticks per quarter note, a column of the sequence lasts its longest pattern.

Not reproduced (none changes an author's balance): humanize (random time and velocity),
swing, lead/lag, ADSR attack/decay, mute groups, BPM timeline changes (reported in
``HumanMix.notes`` when a song uses them).
"""

from __future__ import annotations

import fnmatch
import math
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.data.human_mix import HumanMix, SourceFile, audible
from automix.data.refs import licence_for, parse_copyright
from automix.errors import AutomixError
from automix.io import resample

FAMILY = "hydrogen"
TICKS_PER_QUARTER = 48
DEFAULT_PACKAGES: tuple[str, ...] = ("hydrogen-data",)
FALLBACK_LICENCE = {"hydrogen-data": "GPL-2+"}
INTRO_FRACTION, INTRO_MAX_S = 0.10, 20.0  # same excerpt rule as the MIDI songs
DEFAULT_RELEASE_FRAMES = 1000


def _print_now(message: str) -> None:
    print(message, flush=True)


# --- the song ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One sample of an instrument, played for note velocities in ``[min_velocity, max_velocity]``."""

    path: Path
    min_velocity: float
    max_velocity: float
    gain: float = 1.0
    pitch: float = 0.0  # semitones


@dataclass
class Instrument:
    """One kit piece with its author's settings. ``components`` are lists of layers, each with its
    component gain times the kit component's volume."""

    id: str
    name: str
    volume: float
    pan: float  # −1 … +1
    gain: float
    muted: bool
    apply_velocity: bool
    pitch_offset: float
    release_frames: int
    components: list[tuple[float, list[Layer]]] = field(default_factory=list)


@dataclass(frozen=True)
class Note:
    """A note of the song: start in ticks from the song start, velocity 0–1, pan −1…1."""

    tick: int
    instrument: str
    velocity: float
    pan: float = 0.0
    pitch: float = 0.0
    length_ticks: int = -1  # −1: the whole sample
    probability: float = 1.0


@dataclass
class Song:
    """A parsed ``.h2song``: tempo, volume, pan law, instruments, notes and length in ticks."""

    title: str
    author: str
    licence: str
    bpm: float
    volume: float
    pan_law: str
    pan_law_k: float
    instruments: list[Instrument]
    notes: list[Note]
    length_ticks: int
    unsupported: list[str]

    @property
    def tick_s(self) -> float:
        return 60.0 / (self.bpm * TICKS_PER_QUARTER)


def _num(node: ET.Element | None, tag: str, default: float) -> float:
    text = node.findtext(tag) if node is not None else None
    try:
        return float(text) if text not in (None, "") else default
    except ValueError:
        return default


def ratio_pan(pan_l: float, pan_r: float) -> float:
    """Hydrogen < 1.1 stored ``pan_L``/``pan_R`` gains; the single pan they correspond to."""
    if pan_l < 0 or pan_r < 0 or (pan_l == 0 and pan_r == 0):
        return 0.0
    return pan_r / pan_l - 1.0 if pan_l >= pan_r else 1.0 - pan_l / pan_r


def _pan(node: ET.Element) -> float:
    if node.find("pan") is not None:
        return float(np.clip(_num(node, "pan", 0.0), -1.0, 1.0))
    if node.find("pan_L") is not None:
        return ratio_pan(_num(node, "pan_L", 0.5), _num(node, "pan_R", 0.5))
    return 0.0


def _kit_dir(song_path: Path, kit: str, search: Sequence[Path]) -> Path | None:
    roots = [*search, song_path.parent.parent / "drumkits", song_path.parent / "drumkits",
             Path("/usr/share/hydrogen/data/drumkits")]
    return next((root / kit for root in roots if kit and (root / kit).is_dir()), None)


def _sample_path(filename: str, kit_dir: Path | None, song_path: Path) -> Path:
    path = Path(filename)
    if path.is_absolute() and path.is_file():
        return path
    for base in (kit_dir, song_path.parent):
        if base is not None and (base / path.name).is_file():
            return base / path.name
        if base is not None and (base / filename).is_file():
            return base / filename
    raise AutomixError(f"{song_path.name}: sample {filename} not found (kit {kit_dir})")


def read_song(path: Path, kit_dirs: Sequence[Path] = ()) -> Song:
    """Parse a ``.h2song``; sample files are looked up in the instrument's kit folder."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise AutomixError(f"cannot read Hydrogen song {path}: {exc}") from exc
    if root.tag != "song":
        raise AutomixError(f"{path} is not a Hydrogen song (root <{root.tag}>)")
    unsupported = []
    components = {c.findtext("id"): _num(c, "volume", 1.0) for c in root.iter("drumkitComponent")}
    instruments = []
    for node in root.findall("instrumentList/instrument"):
        kit = _kit_dir(path, node.findtext("drumkit") or "", kit_dirs)
        comps: list[tuple[float, list[Layer]]] = []
        # 0.9.x songs list <layer> directly under <instrument>; later ones inside <instrumentComponent>
        groups = node.findall("instrumentComponent") or [node]
        for comp in groups:
            gain = _num(comp, "gain", 1.0) if comp is not node else 1.0
            gain *= components.get(comp.findtext("component_id") or "0", 1.0)
            layers = [Layer(_sample_path(layer.findtext("filename") or "", kit, path),
                            _num(layer, "min", 0.0), _num(layer, "max", 1.0),
                            _num(layer, "gain", 1.0), _num(layer, "pitch", 0.0))
                      for layer in comp.findall("layer") if (layer.findtext("filename") or "").strip()]
            if layers:
                comps.append((gain, layers))
        if _num(node, "muteGroup", -1) != -1:
            unsupported.append(f"mute group on {node.findtext('name')}")
        instruments.append(Instrument(
            node.findtext("id") or "", node.findtext("name") or "instrument", _num(node, "volume", 1.0),
            _pan(node), _num(node, "gain", 1.0), (node.findtext("isMuted") or "false") == "true",
            (node.findtext("applyVelocity") or "true") == "true", _num(node, "pitchOffset", 0.0),
            int(_num(node, "Release", DEFAULT_RELEASE_FRAMES)), comps))
    patterns = {p.findtext("name"): p for p in root.findall("patternList/pattern")}
    virtual = {v.findtext("name"): [x.text for x in v.findall("virtual")]
               for v in root.findall("virtualPatternList/pattern")}

    def flatten(names: list[str | None]) -> list[str]:
        out: list[str] = []
        todo = list(names)
        while todo:  # a virtual pattern plays the patterns it names (which may be virtual too)
            name = todo.pop()
            if name and name not in out:
                out.append(name)
                todo += virtual.get(name, [])
        return [n for n in out if n in patterns]

    notes: list[Note] = []
    tick = 0
    for group in root.findall("patternSequence/group"):
        names = flatten([p.text for p in group.findall("patternID")])
        if not names:
            continue
        for name in names:
            for n in patterns[name].findall("noteList/note"):
                notes.append(Note(tick + int(_num(n, "position", 0)), n.findtext("instrument") or "",
                                  _num(n, "velocity", 0.8), _pan(n), _num(n, "pitch", 0.0),
                                  int(_num(n, "length", -1)), _num(n, "probability", 1.0)))
        tick += int(max(_num(patterns[name], "size", 4 * TICKS_PER_QUARTER) for name in names))
    if _num(root, "swing_factor", 0.0) > 0:
        unsupported.append("swing")
    if _num(root, "humanize_time", 0.0) > 0 or _num(root, "humanize_velocity", 0.0) > 0:
        unsupported.append("humanize")
    if root.find("BPMTimeLine/newBPM") is not None:
        unsupported.append("BPM timeline")
    author = re.sub(r"<[^>]*>?|\S+@\S+", " ", root.findtext("author") or "")
    return Song(root.findtext("name") or path.stem, " ".join(author.split()), root.findtext("license") or "",
                _num(root, "bpm", 120.0), _num(root, "volume", 1.0), root.findtext("pan_law_type") or
                "RATIO_STRAIGHT_POLYGONAL", _num(root, "pan_law_k_norm", 4 / 3), instruments,
                sorted(notes, key=lambda n: n.tick), tick, unsupported)


# --- pan law ----------------------------------------------------------------------------------


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


# --- rendering --------------------------------------------------------------------------------


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


# --- finding songs ----------------------------------------------------------------------------


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


def balance_problem(song: Song) -> str | None:
    """Why a song carries no balance of its author (fewer than two playing, unmuted instruments)."""
    playing = {n.instrument for n in song.notes}
    live = [i for i in song.instruments if i.id in playing and not i.muted and i.components]
    return None if len(live) >= 2 else f"{len(live)} playing instrument(s)"


def find_sources(cache_dir: Path, packages: Sequence[str] | None = None,
                 log: Callable[[str], None] = _print_now) -> list[SourceFile]:
    """Hydrogen songs (``*.h2song``) in ``packages`` (default :data:`DEFAULT_PACKAGES`) whose kits
    are present; downloads and unpacked files are cached in ``cache_dir``."""
    sources = []
    for package in DEFAULT_PACKAGES if packages is None else packages:
        root = _unpacked(package, Path(cache_dir), log)
        copyright_files = sorted(root.glob("usr/share/doc/*/copyright"))
        stanzas = parse_copyright(copyright_files[0].read_text(errors="replace")) if copyright_files else []
        kits = sorted({p.parent.parent for p in root.rglob("drumkits/*/drumkit.xml")})
        songs = sorted(root.rglob("*.h2song"))
        kept = 0
        for path in songs:
            rel = "/" + str(path.relative_to(root))
            try:
                song = read_song(path, kits)
            except AutomixError as exc:
                log(f"  drop {rel}: {exc}")
                continue
            if problem := balance_problem(song):
                log(f"  drop {rel}: {problem}")
                continue
            song_licence = song.licence if song.licence and not fnmatch.fnmatch(song.licence.lower(), "*unknown*") else ""
            licence = song_licence or licence_for(rel, stanzas, FALLBACK_LICENCE.get(package, "see package copyright"))
            sources.append(SourceFile(FAMILY, package, path, rel.lstrip("/"), licence, song.author, song.title))
            kept += 1
        log(f"{package}: {len(songs)} songs, {kept} kept, {len(kits)} kit folder(s)")
    return sources
