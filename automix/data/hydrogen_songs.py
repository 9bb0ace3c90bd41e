"""Hydrogen demo songs in Debian packages, kits whose authors set each instrument's level: found, described.

This is the ``hydrogen`` family of the real corpus: :func:`find_sources` takes the ``*.h2song``
files of :data:`DEFAULT_PACKAGES` (fetched and unpacked once, :mod:`automix.data.debian`)
whose kits are present and that play at least two instruments. Reading a song lives in
:mod:`automix.data.hydrogen_read` and rendering it with Hydrogen's mixing law in
:mod:`automix.data.hydrogen_render`; both are re-exported here so the family is one import, as
:mod:`automix.data.real` asks each family for ``find_sources`` and ``render``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path

from automix.data.debian import Log, unpacked
from automix.data.human_mix import SourceFile
from automix.data.hydrogen_read import TICKS_PER_QUARTER, Instrument, Layer, Note, Song, ratio_pan, read_song
from automix.data.hydrogen_render import excerpt_start_s, pan_gains, render, render_song, track_name
from automix.data.refs import licence_for, parse_copyright
from automix.errors import AutomixError

__all__ = [
    "DEFAULT_PACKAGES", "FALLBACK_LICENCE", "FAMILY", "TICKS_PER_QUARTER", "Instrument", "Layer", "Note", "Song",
    "balance_problem", "excerpt_start_s", "find_sources", "pan_gains", "ratio_pan", "read_song", "render",
    "render_song", "track_name",
]

FAMILY = "hydrogen"
DEFAULT_PACKAGES: tuple[str, ...] = ("hydrogen-data",)
FALLBACK_LICENCE = {"hydrogen-data": "GPL-2+"}


def _print_now(message: str) -> None:
    print(message, flush=True)


def balance_problem(song: Song) -> str | None:
    """Why a song carries no balance of its author (fewer than two playing, unmuted instruments)."""
    playing = {n.instrument for n in song.notes}
    live = [i for i in song.instruments if i.id in playing and not i.muted and i.components]
    return None if len(live) >= 2 else f"{len(live)} playing instrument(s)"


def find_sources(cache_dir: Path, packages: Sequence[str] | None = None,
                 log: Log = _print_now) -> list[SourceFile]:
    """Hydrogen songs (``*.h2song``) in ``packages`` (default :data:`DEFAULT_PACKAGES`) whose kits
    are present; downloads and unpacked files are cached in ``cache_dir``."""
    sources = []
    for package in DEFAULT_PACKAGES if packages is None else packages:
        root = unpacked(package, Path(cache_dir), log)
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
