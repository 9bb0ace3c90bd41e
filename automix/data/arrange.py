"""Song arrangements for synthetic multitracks: MMA grooves on random chord charts, plus a
generated lead melody, or excerpts of the OpenMSX General MIDI songs.

Everything random comes from the ``numpy.random.Generator`` passed in, so a song is a pure
function of its seed.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import mido
import numpy as np

from automix.data.fluid import MidiEvent
from automix.data.parts import Part, midi_length_s, parts_from_midi, role_for_program
from automix.errors import AutomixError

MMA_STDLIB = Path("/usr/share/mma/lib/stdlib")
OPENMSX_DIR = Path("/usr/share/games/openttd/baseset/openmsx")
MMA_LICENCE = "GPL-2 (MMA groove library, mma package)"
OPENMSX_LICENCE = "GPL-2.0 (openttd-openmsx)"

# Groove families (MMA stdlib file names) never used for train/val songs.
TEST_GROOVE_FAMILIES = frozenset({"bossanova", "polka", "ska", "zydeco", "tango", "bluegrass", "dixie", "trance"})
_SKIP_FAMILIES = frozenset({"metronome", "metronome3", "metronome6", "metronome68", "none"})
_SKIP_GROOVE = re.compile(r"(intro|end|fill|break)", re.IGNORECASE)
NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
# (semitones above the key root, chord quality) for each bar
MAJOR_PROGRESSIONS = (
    ((0, ""), (7, ""), (9, "m"), (5, "")),
    ((0, ""), (9, "m"), (5, ""), (7, "")),
    ((2, "m7"), (7, "7"), (0, "maj7"), (0, "maj7")),
    ((0, ""), (5, ""), (0, ""), (7, "")),
    ((9, "m"), (5, ""), (0, ""), (7, "")),
    ((0, ""), (4, "m"), (5, ""), (7, "7")),
    ((0, "7"), (0, "7"), (0, "7"), (0, "7"), (5, "7"), (5, "7"), (0, "7"), (0, "7"),
     (7, "7"), (5, "7"), (0, "7"), (7, "7")),
)
MINOR_PROGRESSIONS = (
    ((0, "m"), (8, ""), (3, ""), (10, "")),
    ((0, "m"), (5, "m"), (7, "m"), (0, "m")),
    ((0, "m"), (10, ""), (8, ""), (10, "")),
    ((0, "m7"), (5, "m7"), (10, "7"), (3, "maj7")),
    ((0, "m"), (8, ""), (5, "m"), (7, "7")),
)
_CHORD_TONES = {"": (0, 4, 7), "m": (0, 3, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10)}
LEAD_PROGRAMS = (0, 11, 24, 26, 29, 40, 52, 53, 56, 65, 66, 68, 71, 73, 80, 81)


@dataclass
class Arrangement:
    """Parts of one song plus a JSON-able description of where they came from."""

    parts: list[Part]
    source: dict = field(default_factory=dict)


@lru_cache(maxsize=1)
def groove_families(lib_dir: Path = MMA_STDLIB) -> dict[str, tuple[str, ...]]:
    """Main grooves (no intros/endings/fills) of every MMA stdlib file, keyed by file stem."""
    families: dict[str, tuple[str, ...]] = {}
    for path in sorted(Path(lib_dir).glob("*.mma")):
        if path.stem in _SKIP_FAMILIES:
            continue
        text = path.read_text(errors="replace")
        names = re.findall(r"^\s*defgroove\s+(\S+)", text, flags=re.IGNORECASE | re.MULTILINE)
        names = [n for n in names if not _SKIP_GROOVE.search(n)]
        if names:
            families[path.stem] = tuple(dict.fromkeys(names))
    if not families:
        raise AutomixError(f"no MMA grooves found under {lib_dir}; apt-get install mma")
    return families


def families_for_split(split: str) -> list[str]:
    """Groove families a song of ``split`` may use: test uses only the held-out families."""
    names = sorted(groove_families())
    if split == "test":
        return [n for n in names if n in TEST_GROOVE_FAMILIES]
    return [n for n in names if n not in TEST_GROOVE_FAMILIES]


def openmsx_files_for_split(split: str) -> list[Path]:
    """OpenMSX MIDI files for a split: every fifth file (sorted) is held out for test."""
    files = sorted(OPENMSX_DIR.glob("*.mid"))
    held = set(files[2::5])
    return [f for f in files if (f in held) == (split == "test")]


def _tempo_range_bpm(family: str) -> tuple[int, int]:
    if any(w in family for w in ("slow", "ballad", "lullaby", "hymn", "spiritual")):
        return 60, 92
    if any(w in family for w in ("fast", "quick", "jive", "bebop", "polka")):
        return 140, 200
    return 84, 150


def chord_chart(rng: np.random.Generator, key_root: int, minor: bool, n_bars: int,
                jazzy: bool) -> list[tuple[int, str]]:
    """A chord per bar as (root pitch class, quality), repeating a random progression."""
    progressions = MINOR_PROGRESSIONS if minor else MAJOR_PROGRESSIONS
    prog = progressions[rng.integers(len(progressions))]
    chart = []
    for bar in range(n_bars):
        offset, quality = prog[bar % len(prog)]
        if jazzy and quality in ("", "m"):
            quality = {"": "maj7", "m": "m7"}[quality] if offset != 7 else "7"
        chart.append(((key_root + offset) % 12, quality))
    return chart


def mma_arrangement(rng: np.random.Generator, split: str, duration_s: float) -> Arrangement:
    """Random groove, tempo, key and chord chart rendered to MIDI by MMA, plus a generated melody."""
    families = families_for_split(split)
    family = families[rng.integers(len(families))]
    grooves = groove_families()[family]
    groove = grooves[rng.integers(len(grooves))]
    lo, hi = _tempo_range_bpm(family)
    tempo_bpm = int(rng.integers(lo, hi + 1))
    key_root, minor = int(rng.integers(12)), bool(rng.random() < 0.35)
    jazzy = any(w in family for w in ("jazz", "swing", "bebop", "bossa", "ballad"))
    n_bars = math.ceil(duration_s * tempo_bpm / 60 / 2) + 2  # enough even for 2-beat bars
    chart = chord_chart(rng, key_root, minor, n_bars, jazzy)
    mma_seed = int(rng.integers(2**31))
    parts, bar_quarters = run_mma(groove, tempo_bpm, key_root, minor, chart, duration_s, mma_seed)
    bar_s = bar_quarters * 60.0 / tempo_bpm
    if rng.random() < 0.85:
        parts.append(melody_part(rng, chart, key_root, minor, bar_s, tempo_bpm, duration_s))
    source = {
        "kind": "mma", "groove": groove, "groove_family": family, "tempo_bpm": tempo_bpm,
        "key": NOTE_NAMES[key_root] + ("m" if minor else ""), "bar_quarters": bar_quarters, "mma_seed": mma_seed,
        "chords": [NOTE_NAMES[r] + q for r, q in chart[: math.ceil(duration_s / bar_s)]],
        "licence": MMA_LICENCE,
    }
    return Arrangement(parts, source)


def run_mma(groove: str, tempo_bpm: int, key_root: int, minor: bool, chart: list[tuple[int, str]],
            duration_s: float, mma_seed: int) -> tuple[list[Part], float]:
    """Render a chord chart with an MMA groove; return its parts and the bar length in quarter notes.

    ``mma_seed`` seeds MMA's own humanisation (random timing/velocity/skips) so output is repeatable.
    """
    if shutil.which("mma") is None:
        raise AutomixError("mma not found; apt-get install mma")
    lines = [f"RndSeed {mma_seed}", f"Tempo {tempo_bpm}", f"Groove {groove}",
             f"KeySig {NOTE_NAMES[key_root]}{' minor' if minor else ''}"]
    lines += [f"{bar + 1} {NOTE_NAMES[root]}{quality}" for bar, (root, quality) in enumerate(chart)]
    with tempfile.TemporaryDirectory(prefix="automix_mma_") as tmp:
        mma_path, mid_path = Path(tmp) / "song.mma", Path(tmp) / "song.mid"
        mma_path.write_text("\n".join(lines) + "\n")
        proc = subprocess.run(["mma", str(mma_path), "-f", str(mid_path)], check=False, capture_output=True,
                              text=True, timeout=120, cwd=tmp)
        if proc.returncode != 0 or not mid_path.is_file():
            raise AutomixError(f"mma failed for groove {groove}: {proc.stdout[-300:]} {proc.stderr[-300:]}")
        return parts_from_midi(mid_path, 0.0, duration_s), _bar_quarters(mid_path)


def _bar_quarters(mid_path: Path) -> float:
    for msg in mido.MidiFile(str(mid_path)).tracks[0]:
        if msg.type == "time_signature":
            return msg.numerator * 4.0 / msg.denominator
    return 4.0


def melody_part(rng: np.random.Generator, chart: list[tuple[int, str]], key_root: int, minor: bool,
                bar_s: float, tempo_bpm: float, duration_s: float) -> Part:
    """A lead line: scale-wise random walk on an eighth/quarter grid, chord tones on downbeats."""
    scale = MINOR_SCALE if minor else MAJOR_SCALE
    base = 60 + key_root if key_root < 6 else 48 + key_root
    pitches = [base + 12 * octave + s for octave in (-1, 0, 1) for s in scale]
    program = int(LEAD_PROGRAMS[rng.integers(len(LEAD_PROGRAMS))])
    beat_s, eighth_s = 60.0 / tempo_bpm, 30.0 / tempo_bpm
    events: list[MidiEvent] = []
    idx = len(pitches) // 2
    t = bar_s * int(rng.integers(0, 2))  # sometimes the melody enters after one bar
    rest_prob = float(rng.uniform(0.1, 0.35))
    while t < duration_s:
        bar = int(t // bar_s)
        root, quality = chart[min(bar, len(chart) - 1)]
        on_downbeat = abs(t - bar * bar_s) < 1e-6
        length_s = float(rng.choice([eighth_s, beat_s, beat_s, 2 * beat_s]))
        if rng.random() < rest_prob and not on_downbeat:
            t += length_s
            continue
        idx = int(np.clip(idx + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(pitches) - 1))
        if on_downbeat:  # move to the nearest chord tone so the line fits the harmony
            tones = {(root + tone) % 12 for tone in _CHORD_TONES[quality]}
            candidates = [i for i, p in enumerate(pitches) if p % 12 in tones]
            idx = min(candidates, key=lambda i: abs(i - idx))
        velocity = int(np.clip(rng.normal(96 if on_downbeat else 84, 8), 30, 127))
        events.append(MidiEvent(t, "on", pitches[idx], velocity))
        events.append(MidiEvent(t + 0.92 * length_s, "off", pitches[idx]))
        t += length_s
    events.sort(key=lambda ev: ev.time_s)
    return Part("melody", role_for_program(program), program, False, events, volume_cc=110)


def openmsx_arrangement(rng: np.random.Generator, split: str, duration_s: float) -> Arrangement:
    """A random excerpt of an OpenMSX General MIDI song (split-specific file list)."""
    files = openmsx_files_for_split(split)
    if not files:
        raise AutomixError(f"no OpenMSX MIDI files in {OPENMSX_DIR}; apt-get install openttd-openmsx")
    path = files[rng.integers(len(files))]
    length_s = midi_length_s(path)
    start_s = float(rng.uniform(0.0, max(length_s - duration_s, 0.0)))
    parts = parts_from_midi(path, start_s, duration_s)
    source = {"kind": "openmsx", "midi_file": path.name, "start_s": round(start_s, 3),
              "licence": OPENMSX_LICENCE}
    return Arrangement(parts, source)
