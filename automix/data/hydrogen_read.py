"""Reading a Hydrogen ``.h2song`` into a :class:`Song`: the authors' kit settings and every note in order.

A ``.h2song`` (XML) holds the kit's instruments (volume, pan, gain, velocity layers of WAV/FLAC
samples), patterns of notes (tick position, velocity 0–1, pan, pitch) and a pattern sequence.
Timing: 48 ticks per quarter note, a column of the sequence lasts its longest pattern. Features
the renderer does not reproduce are listed in :attr:`Song.unsupported`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from automix.errors import AutomixError

TICKS_PER_QUARTER = 48
DEFAULT_RELEASE_FRAMES = 1000


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
