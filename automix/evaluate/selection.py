"""What a dataset evaluation covers: the songs of a split, the reference files, and the reference paired with each song."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

from automix.data.loaders import Song, find_songs
from automix.errors import AutomixError


def select_songs(dataset: Path, layout: str, split: str | None, limit: int | None) -> list[Song]:
    """The dataset's songs of ``split`` (all when the layout has no splits), sorted, first ``limit``."""
    songs = find_songs(Path(dataset), layout)
    if split:
        with_split = [s for s in songs if s.split is not None]
        if with_split:
            songs = [s for s in with_split if s.split == split]
            if not songs:
                raise AutomixError(f"{dataset}: no songs in split {split!r}")
    songs = sorted(songs, key=lambda s: s.name)
    if limit is not None:
        if limit < 1:
            raise AutomixError(f"--limit {limit}: expected 1 or more")
        songs = songs[:limit]
    return songs


def find_references(refs_dir: Path, split: str | None) -> list[Path]:
    """Audio files of a reference folder (``<dir>/<split>/`` when that exists), sorted by name."""
    from automix.io import is_audio_file

    refs_dir = Path(refs_dir)
    if not refs_dir.is_dir():
        raise AutomixError(f"--refs {refs_dir}: folder not found")
    folder = refs_dir / split if split and (refs_dir / split).is_dir() else refs_dir
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_audio_file(p) and not p.name.startswith("."))
    if not files:
        raise AutomixError(f"--refs {folder}: no audio files")
    return files


def pair_reference(song_name: str, refs: Sequence[Path]) -> Path:
    """The reference paired with a song: CRC32 of its name modulo the sorted references.

    Depends only on the song's name and the reference set, not on ``--limit`` or other songs.
    """
    return refs[zlib.crc32(song_name.encode("utf-8")) % len(refs)]
