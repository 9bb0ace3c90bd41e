"""Tracker modules (MOD/XM/S3M/IT, ...) in Debian packages: found, loaded by libopenmpt, described as sources.

This is the ``tracker`` family of the real corpus: :func:`find_sources` downloads packages
(:mod:`automix.data.debian`, cached), unpacks them and finds module files (by extension,
gzip/bzip2/xz-compressed ones and zip members included, and by libopenmpt's header probe for
files named otherwise, e.g. powermanga's ``*.zik``), each with its licence and, when the
module names one, its author. :func:`render` (from :mod:`automix.data.module_render`, through
the binding in :mod:`automix.data.openmpt`) renders one of them as a
:class:`~automix.data.human_mix.HumanMix`; it and its rules are re-exported here so the family
is one import, as :mod:`automix.data.real` asks each family for ``find_sources`` and ``render``.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import shutil
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from automix.data.debian import Log, unpacked
from automix.data.human_mix import SourceFile
from automix.data.module_render import (
    MAX_INTRO_SKIP_S,
    MAX_SUM_ERROR,
    excerpt_offset_s,
    render,
    without_random_swing,
)
from automix.data.openmpt import opened, probe_file
from automix.data.refs import licence_for, parse_copyright
from automix.errors import AutomixError

__all__ = [
    "DEFAULT_PACKAGES", "FAMILY", "MAX_INTRO_SKIP_S", "MAX_SUM_ERROR", "MODULE_SUFFIXES", "author_from_text",
    "excerpt_offset_s", "find_sources", "render", "without_random_swing",
]

FAMILY = "tracker"
MODULE_SUFFIXES = (
    ".mod", ".xm", ".s3m", ".it", ".mptm", ".669", ".med", ".okt", ".stm", ".mtm", ".far", ".ult",
    ".dbm", ".psm", ".amf", ".umx", ".mo3", ".dsm", ".mdl", ".ams", ".gdm", ".imf", ".j2b", ".plm",
    ".ptm", ".mt2", ".dmf", ".digi", ".stp", ".ice", ".nst", ".wow", ".oct", ".dtm", ".stx", ".mms",
)
COMPRESSED_SUFFIXES = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}
# Files with these suffixes are never modules: not worth a header probe.
NOT_MODULE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".pcx", ".tga", ".xpm", ".svg", ".ico", ".ogg", ".wav",
    ".mp3", ".flac", ".opus", ".voc", ".txt", ".html", ".htm", ".xml", ".json", ".lua", ".py", ".ttf",
    ".otf", ".pfb", ".po", ".mo", ".desktop", ".md", ".ini", ".cfg", ".conf", ".sh", ".so", ".pdf",
    ".ps", ".svgz", ".glsl", ".frag", ".vert", ".css", ".js", ".csv", ".yaml", ".yml", ".pl", ".pm",
)
ARCHIVE_SUFFIXES = (".zip", ".pk3")
MAX_MODULE_BYTES = 64 * 1024 * 1024
DEFAULT_PACKAGES: tuple[str, ...] = (
    "pingus-data", "tecnoballz-data", "circuslinux-data", "gweled", "njam-data", "ceferino-data",
    "powermanga-data", "pekka-kana-2-data", "heroes-sound-tracks", "gl-117-data", "biniax2-data",
    "flobopuyo", "rafkill-data", "pachi-data", "bomberclone-data", "vodovod", "penguin-command", "bb",
    "solarwolf", "ri-li-data", "madbomber-data", "gemdropx", "dodgindiamond2", "vor", "vectoroids",
    "tomatoes-data", "pathogen", "monsterz-data", "gltron", "fb-music-high", "cuyo-data",
    "criticalmass-data", "ballz-data", "ironseed-data", "freedroid-data", "tuxtype-data", "tuxmath-data",
    "bugsquish",
)
"""Packages found to ship modules (``docs/real-sources-tracker.md`` lists every package tried)."""


def _module_name(name: str) -> str | None:
    """The name without a compression suffix if it names a module (``a.xm.gz`` → ``a.xm``), else None."""
    low = name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        if low.endswith(suffix):
            low = low[: -len(suffix)]
            break
    base = low.rsplit("/", 1)[-1]
    return low if low.endswith(MODULE_SUFFIXES) or base.startswith("mod.") else None


def _maybe_module(path: Path) -> bool:
    """A file without a module name that libopenmpt's header probe accepts (e.g. ``*.zik``)."""
    low = path.name.lower()
    if low.endswith(NOT_MODULE_SUFFIXES + ARCHIVE_SUFFIXES + tuple(COMPRESSED_SUFFIXES)):
        return False
    size = path.stat().st_size
    if not 64 <= size <= MAX_MODULE_BYTES:
        return False
    return probe_file(path, size)


def _extracted(root: Path, rel: str, data_fn: Callable[[], bytes]) -> Path:
    target = root / ".extracted" / re.sub(r"[^A-Za-z0-9._-]+", "_", rel.strip("/"))
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data_fn())
        tmp.replace(target)
    return target


def _module_files(root: Path, log: Log) -> list[tuple[Path, str]]:
    """(file on disk, path inside the package) of every module in an unpacked package."""
    found: list[tuple[Path, str]] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink() or ".extracted" in path.parts or path.name == ".unpacked":
            continue
        rel = str(path.relative_to(root))
        low = path.name.lower()
        name = _module_name(low)
        if name is not None and name != low:  # compressed module
            decompress = COMPRESSED_SUFFIXES[low[len(name):]]
            try:
                found.append((_extracted(root, rel, lambda p=path, f=decompress: f(p.read_bytes())), rel))
            except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                log(f"  skip {rel}: {exc}")
        elif name is not None:
            found.append((path, rel))
        elif low.endswith(ARCHIVE_SUFFIXES):
            try:
                with zipfile.ZipFile(path) as archive:
                    for member in sorted(archive.namelist()):
                        if _module_name(member) == member.lower():
                            found.append((_extracted(root, f"{rel}!{member}",
                                                     lambda a=archive, m=member: a.read(m)), f"{rel}!{member}"))
            except (OSError, zipfile.BadZipFile) as exc:
                log(f"  skip {rel}: {exc}")
        elif _maybe_module(path):
            found.append((path, rel))
    return found


def _package_licence(root: Path, package: str) -> tuple[list[tuple[list[str], str]], str]:
    """(DEP-5 stanzas, fallback licence) from the package's copyright file."""
    own = root / "usr/share/doc" / package / "copyright"
    files = [own] if own.is_file() else sorted(root.glob("usr/share/doc/*/copyright"))
    if not files:
        return [], "unknown (no copyright file in the package)"
    text = files[0].read_text(errors="replace")
    return parse_copyright(text), _licence_guess(text)


def _licence_guess(text: str) -> str:
    """A short licence name for a copyright file that is not machine-readable (DEP-5)."""
    gpl = re.search(r"GNU General Public License[^.]{0,80}?version (\d)(?:[^.]{0,40}(or \(?at your option\)? any later))?",
                    text, flags=re.IGNORECASE | re.DOTALL)
    if gpl:
        return f"GPL-{gpl.group(1)}" + ("+" if gpl.group(2) else "")
    for pattern, name in ((r"/usr/share/common-licenses/GPL-(\d)", "GPL-{}"), (r"Artistic", "Artistic"),
                          (r"public domain", "public-domain"), (r"Creative Commons", "CC")):
        match = re.search(pattern, text, flags=re.IGNORECASE)
        if match:
            return name.format(*match.groups())
    return "see the package's copyright file"


_BY = re.compile(r"(?:^|\b)(?:composed|written|made|music|done|tracked|arranged)?\s*by[:\s]+"
                 r"([A-Za-z][A-Za-z0-9.\-' ]{1,28}[A-Za-z0-9.])", flags=re.IGNORECASE)
_COPYRIGHT = re.compile(r"(?:\(c\)|©|copyright)\s*(?:\d{4}\s*)?(?:by\s+)?([A-Za-z][A-Za-z0-9.\-' ]{1,28}[A-Za-z0-9.])",
                        flags=re.IGNORECASE)


def author_from_text(text: str) -> str:
    """An author named obviously ("by X", "(c) 1997 X") in a song message or sample names, else ``""``."""
    text = re.sub(r"\bby:?[ \t]*\n\s*", "by ", text, flags=re.IGNORECASE)  # "by" ends its line
    for line in text.splitlines():
        for pattern in (_BY, _COPYRIGHT):
            match = pattern.search(line)
            if match:
                name = re.split(r"\s{2,}|\s+(?:in|on|for|at|19\d\d|20\d\d)\b", match.group(1).strip())[0]
                if len(name) >= 2 and not name.isdigit():
                    return name
    return ""


def _describe(path: Path, label: str) -> tuple[str, str]:
    """(author, title) from the module's metadata."""
    with opened(path.read_bytes(), label) as module:
        author = module.metadata("artist").strip()
        if not author:  # the message, else the instrument and sample names, often credit the author
            author = author_from_text(module.metadata("message_raw") + "\n" + "\n".join(module.names()))
        return author, module.metadata("title").strip()


def find_sources(cache_dir: Path, packages: Sequence[str] | None = None, log: Log = print) -> list[SourceFile]:
    """Every module file in ``packages`` (default :data:`DEFAULT_PACKAGES`), one SourceFile each.

    Debs are downloaded into ``cache_dir/debs`` and unpacked into ``cache_dir/unpacked/<package>``
    once (:func:`automix.data.debian.unpacked`); a second call downloads and unpacks nothing. A
    package that cannot be downloaded is logged and skipped. Modules libopenmpt cannot load are
    skipped (and logged).
    """
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise AutomixError("finding tracker modules needs apt-get and dpkg-deb (Debian/Ubuntu)")
    sources: list[SourceFile] = []
    for package in DEFAULT_PACKAGES if packages is None else packages:
        try:
            root = unpacked(package, Path(cache_dir), log)
        except AutomixError as exc:
            log(f"  skip package {package}: {exc}")
            continue
        stanzas, fallback = _package_licence(root, package)
        count = 0
        for path, rel in _module_files(root, log):
            try:
                author, title = _describe(path, rel)
            except AutomixError as exc:
                log(f"  skip {package}:{rel}: {exc}")
                continue
            sources.append(SourceFile(family=FAMILY, package=package, path=path, source_path=rel,
                                      licence=licence_for("/" + rel.split("!")[0], stanzas, fallback),
                                      author=author, title=title or Path(rel.split("!")[-1]).name))
            count += 1
        log(f"{package}: {count} modules")
    return sources
