"""MIDI songs in Debian packages whose composers set each channel's level and pan: found and described.

This is the ``midi`` family of the real corpus. Sources are Debian packages shipping General
MIDI music (:data:`DEFAULT_PACKAGES`, documented with their counts in
``docs/real-sources-midi.md``), fetched and unpacked once (:mod:`automix.data.debian`). WAD
files (Freedoom) are searched for music lumps; the MIDI ones are taken, MUS ones are skipped. A
file is kept only when it carries a balance decision
(:func:`~automix.data.midi_read.balance_problem`). :func:`render` (from
:mod:`automix.data.midi_render`) plays one with fluidsynth, a track per channel; it and the
reading helpers are re-exported here so the family is one import, as :mod:`automix.data.real`
asks each family for ``find_sources`` and ``render``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from automix.data.debian import Log, unpacked
from automix.data.human_mix import SourceFile
from automix.data.midi_read import ChannelPlay, balance_problem, clean_author, meta_author, read_channels
from automix.data.midi_render import (
    GM_FONTS,
    GM_PROGRAMS,
    choose_soundfont,
    excerpt_start_s,
    render,
    track_name,
)
from automix.data.refs import licence_for, parse_copyright
from automix.errors import AutomixError

__all__ = [
    "DEFAULT_PACKAGES", "FALLBACK_LICENCE", "FAMILY", "GM_FONTS", "GM_PROGRAMS", "ChannelPlay", "PackageSurvey",
    "balance_problem", "choose_soundfont", "clean_author", "excerpt_start_s", "find_sources", "meta_author",
    "read_channels", "render", "survey_package", "track_name", "wad_music_lumps",
]

FAMILY = "midi"
MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".rmi")
WAD_SUFFIX = ".wad"

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


def _print_now(message: str) -> None:
    print(message, flush=True)


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
    """The value of the first ``(package, glob, value)`` row of ``table`` that matches, else None."""
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
                   log: Log = _print_now) -> PackageSurvey:
    """Find, check and describe the MIDI music of one package (``seen``: content hash → source path,
    shared across packages so a song shipped twice is kept once)."""
    seen = {} if seen is None else seen
    root = unpacked(package, Path(cache_dir), log)
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
                 log: Log = _print_now) -> list[SourceFile]:
    """MIDI songs with a composer's balance from ``packages`` (default :data:`DEFAULT_PACKAGES`).

    Downloads and unpacked files live in ``cache_dir`` (:func:`automix.data.debian.unpacked`) and
    are reused on the next call; a package that cannot be downloaded stops the search.
    """
    seen: dict[str, str] = {}
    sources: list[SourceFile] = []
    for package in DEFAULT_PACKAGES if packages is None else packages:
        survey = survey_package(package, Path(cache_dir), seen, log)
        for source_path, reason in survey.dropped:
            log(f"  drop {source_path}: {reason}")
        sources += survey.kept
    return sources
