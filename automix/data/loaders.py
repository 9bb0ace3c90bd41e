"""Find multitrack songs on disk in several dataset layouts and split them without leaking artists.

Layouts (``find_songs(root, layout)``):

- ``automix-synth``: ``<split>/<song>/stems/*.flac`` + ``arranger_mix.flac`` + ``song.json``; the
  real-balance corpus (``automix data real``: ``mix.flac``, truth in ``song.json``) reads the same way
- ``folder``: one folder per song with stems inside (or in ``stems/``), optional ``mix.*``;
  a root that itself holds stems is one song
- ``medleydb``: ``<Song>/<Song>_RAW/*.wav``, ``<Song>_MIX.wav``, ``<Song>_METADATA.yaml``
- ``enst``: ``drummer_N/audio/<mic>/<take>.wav`` with ``dry_mix``/``wet_mix`` folders (song = take)
- ``cambridge``: ``<Song>/<Song>_Full/*.wav`` (+ optional mix file next to the ``_Full`` folder)
- ``musdb18hq``: ``train|test/<song>/{drums,bass,other,vocals}.wav`` + ``mixture.wav``
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from automix.errors import AutomixError
from automix.io import AUDIO_EXTENSIONS

LAYOUTS = ("automix-synth", "folder", "medleydb", "enst", "cambridge", "musdb18hq")
SPLITS = ("train", "val", "test")
MIX_NAMES = ("mix", "mixture", "arranger_mix", "full_mix", "master")
MUSDB_STEMS = ("drums", "bass", "other", "vocals")


@dataclass
class Song:
    """One multitrack. ``split`` is set when the layout defines it; ``meta`` holds layout extras
    (``layout``, and ``artist``/``group`` when known)."""

    name: str
    stem_paths: list[Path]
    mix_path: Path | None
    split: str | None
    meta: dict = field(default_factory=dict)


def _audio_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                  and not p.name.startswith("."))


def _is_mix_name(path: Path) -> bool:
    return path.stem.lower() in MIX_NAMES


# ---------------------------------------------------------------------------------------------
# One function per layout


def _find_synth(root: Path) -> list[Song]:
    songs = []
    for meta_path in sorted(root.glob("*/*/song.json")) + sorted(root.glob("*/song.json")):
        folder = meta_path.parent
        if folder.name.startswith("."):
            continue
        meta = json.loads(meta_path.read_text())
        split = meta.get("split") or (folder.parent.name if folder.parent.name in SPLITS else None)
        mix = folder / meta.get("mix", {}).get("file", "arranger_mix.flac")
        layout = "automix-real" if meta.get("format") == "automix-real-song" else "automix-synth"
        meta = {**meta, "layout": layout, "group": meta.get("group") or meta.get("song_id", folder.name)}
        songs.append(Song(folder.name, _audio_files(folder / "stems"), mix if mix.is_file() else None, split, meta))
    return songs


def _folder_song(folder: Path) -> Song | None:
    files = _audio_files(folder)
    stems = _audio_files(folder / "stems") or [p for p in files if not _is_mix_name(p)]
    mixes = [p for p in files if _is_mix_name(p)]
    if not stems:
        return None
    return Song(folder.name, stems, mixes[0] if mixes else None, None, {"layout": "folder"})


def _find_folder(root: Path) -> list[Song]:
    own = _folder_song(root)
    if own is not None:
        return [own]
    songs = [_folder_song(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    return [s for s in songs if s is not None]


def _find_medleydb(root: Path) -> list[Song]:
    songs = []
    for raw in sorted(root.glob("*/*_RAW")):
        folder, name = raw.parent, raw.name[: -len("_RAW")]
        mix = folder / f"{name}_MIX.wav"
        meta: dict = {"layout": "medleydb"}
        meta_file = folder / f"{name}_METADATA.yaml"
        if meta_file.is_file():
            info = yaml.safe_load(meta_file.read_text()) or {}
            meta.update({k: info[k] for k in ("artist", "title", "genre") if k in info})
        meta["group"] = meta.get("artist") or name.split("_")[0]
        songs.append(Song(name, _audio_files(raw), mix if mix.is_file() else None, None, meta))
    return songs


def _find_enst(root: Path) -> list[Song]:
    songs = []
    for audio in sorted(root.glob("drummer_*/audio")):
        drummer = audio.parent.name
        mics = [d for d in sorted(audio.iterdir()) if d.is_dir() and d.name not in ("dry_mix", "wet_mix")]
        takes = sorted({p.stem for mic in mics for p in _audio_files(mic)})
        for take in takes:
            stems = [p for mic in mics for p in _audio_files(mic) if p.stem == take]
            mix = next((audio / m / f"{take}.wav" for m in ("wet_mix", "dry_mix")
                        if (audio / m / f"{take}.wav").is_file()), None)
            songs.append(Song(f"{drummer}/{take}", stems, mix, None,
                              {"layout": "enst", "artist": drummer, "group": drummer}))
    return songs


def _find_cambridge(root: Path) -> list[Song]:
    songs = []
    for full in sorted(set(root.glob("*_Full")) | set(root.glob("*/*_Full"))):
        if not full.is_dir():
            continue
        name = full.name[: -len("_Full")]
        parent_files = [p for p in _audio_files(full.parent) if "mix" in p.stem.lower()]
        artist = name.split("_")[0]
        songs.append(Song(name, _audio_files(full), parent_files[0] if parent_files else None, None,
                          {"layout": "cambridge", "artist": artist, "group": artist}))
    return songs


def _find_musdb(root: Path) -> list[Song]:
    songs = []
    for split in ("train", "test"):
        for folder in sorted((root / split).glob("*")) if (root / split).is_dir() else []:
            stems = [folder / f"{s}.wav" for s in MUSDB_STEMS if (folder / f"{s}.wav").is_file()]
            if not stems:
                continue
            mix = folder / "mixture.wav"
            artist = folder.name.split(" - ")[0].strip()
            songs.append(Song(folder.name, stems, mix if mix.is_file() else None, split,
                              {"layout": "musdb18hq", "artist": artist, "group": artist}))
    return songs


_FINDERS: dict[str, Callable[[Path], list[Song]]] = {
    "automix-synth": _find_synth, "folder": _find_folder, "medleydb": _find_medleydb, "enst": _find_enst,
    "cambridge": _find_cambridge, "musdb18hq": _find_musdb,
}


def detect_layout(root: Path) -> str:
    """Guess the layout of ``root`` from its marker files (falls back to ``folder``)."""
    root = Path(root)
    if any(root.glob("*/*/song.json")) or any(root.glob("*/song.json")):
        return "automix-synth"
    if any(root.glob("train/*/mixture.wav")) or any(root.glob("test/*/mixture.wav")):
        return "musdb18hq"
    if any(root.glob("*/*_RAW")):
        return "medleydb"
    if any(root.glob("drummer_*/audio")):
        return "enst"
    if any(p.is_dir() for p in root.glob("*_Full")) or any(p.is_dir() for p in root.glob("*/*_Full")):
        return "cambridge"
    return "folder"


def find_songs(root: Path, layout: str = "auto") -> list[Song]:
    """All songs under ``root`` in ``layout`` (``auto`` detects it). Raises if none are found."""
    root = Path(root)
    if not root.is_dir():
        raise AutomixError(f"dataset folder not found: {root}")
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in _FINDERS:
        raise AutomixError(f"unknown dataset layout {layout!r}; choose auto or one of {', '.join(LAYOUTS)}")
    songs = [s for s in _FINDERS[layout](root) if s.stem_paths]
    if not songs:
        raise AutomixError(f"no multitrack songs found in {root} (layout {layout})")
    return songs


def default_group(song: Song) -> str:
    """Songs with the same group never land in different splits (artist where known)."""
    return str(song.meta.get("group") or song.meta.get("artist") or re.sub(r"\W+", "_", song.name))


def _assign(groups: dict[str, list[Song]], fractions: dict[str, float], seed: int) -> dict[str, list[Song]]:
    """Shuffle groups, then give each to the split furthest below its target song count."""
    out: dict[str, list[Song]] = {name: [] for name in fractions}
    total = sum(len(v) for v in groups.values())
    order = sorted(groups)
    np.random.default_rng(seed).shuffle(order)
    for key in order:
        deficit = {name: frac * total - len(out[name]) for name, frac in fractions.items()}
        best = max(deficit, key=lambda name: (deficit[name], -list(fractions).index(name)))
        out[best].extend(groups[key])
    return out


def split_songs(songs: list[Song], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0,
                group_key: Callable[[Song], str] = default_group) -> dict[str, list[Song]]:
    """Split songs into train/val/test, keeping every group (artist) inside one split.

    Songs whose layout gives a split keep it. If the given splits have no ``val`` (MUSDB18),
    val is carved out of the given train songs by group. Songs without a split are assigned by
    group with ``fractions`` (train, val, test). Deterministic for a seed.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise AutomixError(f"fractions must be three non-negative numbers, got {fractions}")
    result: dict[str, list[Song]] = {name: [] for name in SPLITS}
    given = [s for s in songs if s.split in SPLITS]
    free = [s for s in songs if s.split not in SPLITS]
    for song in given:
        result[song.split].append(song)
    if given and not result["val"] and result["train"] and fractions[1] > 0:
        by_group = _group(result["train"], group_key)
        carved = _assign(by_group, {"train": fractions[0], "val": fractions[1]}, seed)
        result["train"], result["val"] = carved["train"], carved["val"]
    if free:
        assigned = _assign(_group(free, group_key), dict(zip(SPLITS, fractions, strict=True)), seed)
        for name in SPLITS:
            result[name].extend(assigned[name])
    return result


def _group(songs: list[Song], group_key: Callable[[Song], str]) -> dict[str, list[Song]]:
    groups: dict[str, list[Song]] = {}
    for song in songs:
        groups.setdefault(group_key(song), []).append(song)
    return groups
