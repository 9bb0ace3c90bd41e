"""Tracker modules (MOD/XM/S3M/IT, ...) from Debian packages, rendered per channel with libopenmpt.

A module stores its author's whole balance: per-channel volume and pan, sample/instrument
volumes and pans, global volume. Rendering the song once with every channel and once per
channel with all the others muted gives the author's mix and each track at the author's level.

:func:`find_sources` downloads packages with ``apt-get download`` (cached), unpacks them and
finds module files (by extension, gzip/bzip2/xz-compressed ones and zip members included, and
by libopenmpt's header probe for files named otherwise, e.g. powermanga's ``*.zik``).
:func:`render` renders one of them as a :class:`~automix.data.human_mix.HumanMix`.

The binding is a small ctypes layer over the libopenmpt C API (Debian ``libopenmpt0``, no
headers needed at run time). Render settings are libopenmpt's defaults, read back into the
notes: stereo separation 100 %, interpolation filter 0 (the library's default, an 8-tap
windowed sinc in 0.6), volume ramping -1 (default strength); repeat count 0 and
``play.at_end=stop`` so a song that loops ends instead of playing again.
"""

from __future__ import annotations

import bz2
import ctypes
import functools
import gzip
import lzma
import re
import shutil
import struct
import subprocess
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from automix.data.human_mix import HumanMix, SourceFile, audible
from automix.data.native import open_library
from automix.data.refs import licence_for, parse_copyright
from automix.errors import AutomixError, one_line

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

BLOCK_FRAMES = 512  # frames per read: rows are >= ~20 ms, so a block this short sees almost every row
MAX_INTRO_SKIP_S = 20.0
INTRO_SKIP_FRACTION = 0.1
MAX_SUM_ERROR = 1e-3
"""Largest relative RMS of (mix − Σ soloed channels) accepted; libopenmpt mixes linearly, ~1e-7."""

Log = Callable[[str], None]


# --- ctypes binding -----------------------------------------------------------------------------

_INTERACTIVE_FIELDS = (
    "set_current_speed", "set_current_tempo", "set_tempo_factor", "get_tempo_factor", "set_pitch_factor",
    "get_pitch_factor", "set_global_volume", "get_global_volume", "set_channel_volume",
    "get_channel_volume", "set_channel_mute_status", "get_channel_mute_status",
    "set_instrument_mute_status", "get_instrument_mute_status", "play_note", "stop_note",
)


class _Interactive(ctypes.Structure):
    """``openmpt_module_ext_interface_interactive``: 16 function pointers in header order."""

    _fields_ = [(name, ctypes.c_void_p) for name in _INTERACTIVE_FIELDS]


_SET_MUTE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int)
RENDER_STEREO_SEPARATION = 2
RENDER_INTERPOLATION_FILTER = 3
RENDER_VOLUME_RAMPING = 4
COMMAND_NOTE = 0
COMMAND_INSTRUMENT = 1
PROBE_SUCCESS = 1


@functools.cache
def _library() -> ctypes.CDLL:
    """The library with its signatures, loaded on first use (importing automix needs no native library)."""
    vp, c, i32, i, d, sz = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int, ctypes.c_double,
                            ctypes.c_size_t)
    fp = ctypes.POINTER(ctypes.c_float)
    signatures = {
        "openmpt_free_string": ([vp], None),
        "openmpt_error_string": ([i], vp),
        "openmpt_probe_file_header_get_recommended_size": ([], sz),
        "openmpt_probe_file_header": ([ctypes.c_uint64, c, sz, ctypes.c_uint64, vp, vp, vp, vp, vp, vp], i),
        "openmpt_module_ext_create_from_memory": (
            [c, sz, vp, vp, vp, vp, ctypes.POINTER(i), ctypes.POINTER(vp), vp], vp),
        "openmpt_module_ext_destroy": ([vp], None),
        "openmpt_module_ext_get_module": ([vp], vp),
        "openmpt_module_ext_get_interface": ([vp, c, vp, sz], i),
        "openmpt_module_set_repeat_count": ([vp, i32], i),
        "openmpt_module_get_num_subsongs": ([vp], i32),
        "openmpt_module_get_duration_seconds": ([vp], d),
        "openmpt_module_set_position_seconds": ([vp, d], d),
        "openmpt_module_get_render_param": ([vp, i, ctypes.POINTER(i32)], i),
        "openmpt_module_read_float_stereo": ([vp, i32, sz, fp, fp], sz),
        "openmpt_module_get_metadata": ([vp, c], vp),
        "openmpt_module_get_num_channels": ([vp], i32),
        "openmpt_module_get_num_instruments": ([vp], i32),
        "openmpt_module_get_num_samples": ([vp], i32),
        "openmpt_module_get_instrument_name": ([vp, i32], vp),
        "openmpt_module_get_sample_name": ([vp, i32], vp),
        "openmpt_module_get_current_pattern": ([vp], i32),
        "openmpt_module_get_current_row": ([vp], i32),
        "openmpt_module_get_current_channel_vu_left": ([vp, i32], ctypes.c_float),
        "openmpt_module_get_current_channel_vu_right": ([vp, i32], ctypes.c_float),
        "openmpt_module_get_num_patterns": ([vp], i32),
        "openmpt_module_get_pattern_num_rows": ([vp, i32], i32),
        "openmpt_module_get_pattern_row_channel_command": ([vp, i32, i32, i32, i], ctypes.c_uint8),
        "openmpt_module_ctl_set_text": ([vp, c, c], i),
        "openmpt_module_ctl_set_boolean": ([vp, c, i], i),
    }
    return open_library("openmpt", "libopenmpt.so.0", "libopenmpt0", signatures)


def _take_string(lib: ctypes.CDLL, pointer: int | None) -> str:
    """Copy a string libopenmpt allocated, then free it (every returned string must be freed)."""
    if not pointer:
        return ""
    try:
        return (ctypes.string_at(pointer) or b"").decode("utf-8", errors="replace")
    finally:
        lib.openmpt_free_string(pointer)


class _Module:
    """One loaded module (an ``openmpt_module_ext``) with the calls :func:`render` needs."""

    def __init__(self, data: bytes, label: str) -> None:
        lib = self.lib = _library()
        error, message = ctypes.c_int(0), ctypes.c_void_p()
        silent = ctypes.cast(lib.openmpt_log_func_silent, ctypes.c_void_p)
        store = ctypes.cast(lib.openmpt_error_func_store, ctypes.c_void_p)
        self._data = data  # libopenmpt copies the file, but keep it alive for the call anyway
        self.ext = lib.openmpt_module_ext_create_from_memory(data, len(data), silent, None, store, None,
                                                             ctypes.byref(error), ctypes.byref(message), None)
        text = _take_string(lib, message.value)
        if not self.ext:
            reason = text or _take_string(lib, lib.openmpt_error_string(error.value)) or f"error {error.value}"
            raise AutomixError(one_line(f"libopenmpt cannot load {label}: {reason}"))
        self.mod = lib.openmpt_module_ext_get_module(self.ext)
        self.interactive = _Interactive()
        if not lib.openmpt_module_ext_get_interface(self.ext, b"interactive", ctypes.byref(self.interactive),
                                                    ctypes.sizeof(self.interactive)):
            self.close()
            raise AutomixError("this libopenmpt has no 'interactive' extension (needed to solo channels)")
        # Play once and stop at the song's end: a looping song must not restart inside the excerpt.
        lib.openmpt_module_set_repeat_count(self.mod, 0)
        lib.openmpt_module_ctl_set_text(self.mod, b"play.at_end", b"stop")
        # Notes already sounding at the seek target start at their right sample offset.
        lib.openmpt_module_ctl_set_boolean(self.mod, b"seek.sync_samples", 1)

    def close(self) -> None:
        if self.ext:
            self.lib.openmpt_module_ext_destroy(self.ext)
            self.ext = self.mod = None

    def metadata(self, key: str) -> str:
        return _take_string(self.lib, self.lib.openmpt_module_get_metadata(self.mod, key.encode()))

    @property
    def n_channels(self) -> int:
        return int(self.lib.openmpt_module_get_num_channels(self.mod))

    @property
    def duration_s(self) -> float:
        return float(self.lib.openmpt_module_get_duration_seconds(self.mod))

    def render_param(self, param: int) -> int:
        value = ctypes.c_int32(0)
        self.lib.openmpt_module_get_render_param(self.mod, param, ctypes.byref(value))
        return int(value.value)

    def solo(self, channel: int) -> None:
        """Mute every pattern channel but ``channel`` (NNA voices follow their channel's mute)."""
        set_mute = _SET_MUTE(self.interactive.set_channel_mute_status)
        for other in range(self.n_channels):
            set_mute(self.ext, other, int(other != channel))

    def seek(self, seconds: float) -> float:
        return float(self.lib.openmpt_module_set_position_seconds(self.mod, seconds))

    def read(self, sample_rate: int, out: np.ndarray) -> int:
        """Render into ``out`` ``(2, n)`` float32 (C-contiguous rows); returns frames written (0 at the end)."""
        fp = ctypes.POINTER(ctypes.c_float)
        return int(self.lib.openmpt_module_read_float_stereo(
            self.mod, sample_rate, out.shape[1], out[0].ctypes.data_as(fp), out[1].ctypes.data_as(fp)))

    def channel_vu(self, channel: int) -> float:
        lib = self.lib
        return max(float(lib.openmpt_module_get_current_channel_vu_left(self.mod, channel)),
                   float(lib.openmpt_module_get_current_channel_vu_right(self.mod, channel)))

    def position(self) -> tuple[int, int]:
        """Current (pattern, row)."""
        return (int(self.lib.openmpt_module_get_current_pattern(self.mod)),
                int(self.lib.openmpt_module_get_current_row(self.mod)))

    def channels_with_notes(self) -> set[int]:
        """Pattern channels that hold at least one note anywhere in the module (0-based)."""
        lib, found = self.lib, set()
        for pattern in range(lib.openmpt_module_get_num_patterns(self.mod)):
            for row in range(lib.openmpt_module_get_pattern_num_rows(self.mod, pattern)):
                for channel in set(range(self.n_channels)) - found:
                    if lib.openmpt_module_get_pattern_row_channel_command(self.mod, pattern, row, channel,
                                                                          COMMAND_NOTE):
                        found.add(channel)
        return found

    def instrument_at(self, pattern: int, row: int, channel: int) -> int:
        """The instrument (or sample, for formats without instruments) number in a cell; 0 for none."""
        return int(self.lib.openmpt_module_get_pattern_row_channel_command(self.mod, pattern, row, channel,
                                                                          COMMAND_INSTRUMENT))

    def instrument_name(self, number: int) -> str:
        """Name of instrument ``number`` (1-based), or of the sample when the module has no instruments."""
        lib = self.lib
        if lib.openmpt_module_get_num_instruments(self.mod) > 0:
            return _take_string(lib, lib.openmpt_module_get_instrument_name(self.mod, number - 1))
        return _take_string(lib, lib.openmpt_module_get_sample_name(self.mod, number - 1))


@contextmanager
def _opened(data: bytes, label: str) -> Iterator[_Module]:
    module = _Module(data, label)
    try:
        yield module
    finally:
        module.close()


def probe(head: bytes, file_size: int) -> bool:
    """Whether libopenmpt recognises a module (or module container) header in ``head``."""
    lib = _library()
    result = lib.openmpt_probe_file_header(3, head, len(head), file_size, None, None, None, None, None, None)
    return result == PROBE_SUCCESS


# --- finding modules ----------------------------------------------------------------------------

def _download(package: str, deb_dir: Path, log: Log) -> Path:
    debs = sorted(deb_dir.glob(f"{package}_*.deb"))
    if not debs:
        log(f"  apt-get download {package}")
        proc = subprocess.run(["apt-get", "download", package], cwd=deb_dir, capture_output=True, text=True,
                              check=False)
        debs = sorted(deb_dir.glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not debs:
            raise AutomixError(one_line(f"apt-get download {package} failed: {proc.stderr.strip()[-300:]}"))
    return debs[-1]


def _unpack(deb: Path, root: Path) -> None:
    """``dpkg-deb -x`` into ``root`` once (a half-unpacked tree from a killed run is redone)."""
    if (root / ".unpacked").is_file():
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    (root / ".unpacked").write_text(deb.name + "\n")


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
    with open(path, "rb") as handle:
        head = handle.read(_library().openmpt_probe_file_header_get_recommended_size())
    return probe(head, size)


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
    with _opened(path.read_bytes(), label) as module:
        author = module.metadata("artist").strip()
        if not author:  # the message, else the instrument and sample names, often credit the author
            lib, mod = module.lib, module.mod
            names = [_take_string(lib, lib.openmpt_module_get_instrument_name(mod, i))
                     for i in range(lib.openmpt_module_get_num_instruments(mod))]
            names += [_take_string(lib, lib.openmpt_module_get_sample_name(mod, i))
                      for i in range(lib.openmpt_module_get_num_samples(mod))]
            author = author_from_text(module.metadata("message_raw") + "\n" + "\n".join(names))
        return author, module.metadata("title").strip()


def find_sources(cache_dir: Path, packages: Sequence[str] | None = None, log: Log = print) -> list[SourceFile]:
    """Every module file in ``packages`` (default :data:`DEFAULT_PACKAGES`), one SourceFile each.

    Debs are downloaded into ``cache_dir/debs`` and unpacked into ``cache_dir/unpacked/<package>``
    once; a second call downloads and unpacks nothing. A package that cannot be downloaded is
    logged and skipped. Modules libopenmpt cannot load are skipped (and logged).
    """
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise AutomixError("finding tracker modules needs apt-get and dpkg-deb (Debian/Ubuntu)")
    cache_dir = Path(cache_dir)
    deb_dir = cache_dir / "debs"
    deb_dir.mkdir(parents=True, exist_ok=True)
    sources: list[SourceFile] = []
    for package in DEFAULT_PACKAGES if packages is None else packages:
        try:
            deb = _download(package, deb_dir, log)
        except AutomixError as exc:
            log(f"  skip package {package}: {exc}")
            continue
        root = cache_dir / "unpacked" / package
        _unpack(deb, root)
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


# --- rendering ----------------------------------------------------------------------------------

def excerpt_offset_s(duration_s: float, max_seconds: float) -> float:
    """Where the excerpt starts: 0 for a song no longer than ``max_seconds``, else 10 % of its
    duration (skips a quiet intro), at most 20 s and never so late that the excerpt is cut short."""
    if not np.isfinite(duration_s):
        return MAX_INTRO_SKIP_S
    if duration_s <= max_seconds:
        return 0.0
    return max(0.0, min(INTRO_SKIP_FRACTION * duration_s, MAX_INTRO_SKIP_S, duration_s - max_seconds))


def _render_pass(data: bytes, label: str, sample_rate: int, offset_s: float, n_frames: int,
                 solo: int | None, watch: bool = False) -> tuple[np.ndarray, dict]:
    """One render of the excerpt, all channels or one soloed: ``(2, n_frames)`` float32 (zero after
    the song's end). With ``watch``, also returns the (pattern, row)s played and each channel's peak VU."""
    audio = np.zeros((2, n_frames), dtype=np.float32)
    seen: dict = {"rows": [], "vu": None, "offset_s": offset_s}
    with _opened(data, label) as module:
        if solo is not None:
            module.solo(solo)
        seen["offset_s"] = module.seek(offset_s) if offset_s > 0 else 0.0
        if solo is not None:
            module.solo(solo)  # again after the seek, in case seeking reset channel flags
        vu = np.zeros(module.n_channels)
        block = np.zeros((2, BLOCK_FRAMES), dtype=np.float32)
        done = 0
        while done < n_frames:
            want = min(BLOCK_FRAMES, n_frames - done)
            got = module.read(sample_rate, block[:, :want] if want < BLOCK_FRAMES else block)
            if got == 0:
                break
            audio[:, done:done + got] = block[:, :got]
            done += got
            if watch:
                seen["rows"].append(module.position())
                vu = np.maximum(vu, [module.channel_vu(ch) for ch in range(len(vu))])
        seen["vu"], seen["frames"] = vu, done
    return audio, seen


def _clean_name(name: str, song_words: str = "") -> str:
    """A readable track name from an instrument/sample name; ``""`` if it says nothing.

    Many modules spell their song message in the instrument names ("Arranged by", the
    author's address): a name that looks like that, or that is part of ``song_words`` (the
    title and author), is not a track name.
    """
    low = name.strip().lower()
    if re.search(r"\bby\b|@|https?:|www\.|\(c\)|©|\.(com|net|org)\b", low):
        return ""
    name = name.split(":")[0] if sum(ch.isalpha() for ch in name.split(":")[0]) >= 2 else name  # "bass:elwood"
    name = re.sub(r"\.(wav|smp|iff|aif|aiff|raw|8svx)\b", "", name.strip(), flags=re.IGNORECASE)
    name = re.sub(r"[^\w.+#&' -]+", " ", name)
    name = " ".join(name.split())[:32]
    if name.lower() in song_words.lower() or sum(ch.isalpha() for ch in name) < 2:
        return ""
    return name


def _track_names(data: bytes, label: str, rows: list[tuple[int, int]], n_channels: int, author: str) -> list[str]:
    """Per channel, the name of the instrument (or sample) it triggers most in the played rows."""
    names = []
    with _opened(data, label) as module:
        song_words = f"{module.metadata('title')}\n{module.metadata('artist')}\n{author}"
        unique_rows = list(dict.fromkeys(rows))
        for channel in range(n_channels):
            counts = Counter(module.instrument_at(p, r, channel) for p, r in unique_rows)
            counts.pop(0, None)
            name = ""
            for number, _count in counts.most_common():
                name = _clean_name(module.instrument_name(number), song_words)
                if name:
                    break
            names.append(name or f"ch{channel + 1}")
    return names


def without_random_swing(data: bytes) -> bytes:
    """An Impulse Tracker module with its instruments' random volume/pan swing set to 0.

    libopenmpt seeds its random generator from the system on every load, so an instrument with
    swing sounds different in every render and soloed renders cannot sum to the full one. With
    the swing at 0 every note plays at the instrument's set volume and pan: the centre of the
    author's random range. Other files are returned unchanged.
    """
    if data[:4] != b"IMPM" or len(data) < 0xC0:
        return data
    n_orders, n_instruments = struct.unpack_from("<2H", data, 0x20)
    compatible_version = struct.unpack_from("<H", data, 0x2A)[0]
    if compatible_version < 0x200:  # old-format instruments have no swing fields
        return data
    patched = bytearray(data)
    table = 0xC0 + n_orders
    for index in range(n_instruments):
        if table + 4 * index + 4 > len(data):
            break
        offset = struct.unpack_from("<I", data, table + 4 * index)[0]
        if offset + 0x1C <= len(data) and data[offset:offset + 4] == b"IMPI":
            patched[offset + 0x1A] = 0  # random volume variation (%)
            patched[offset + 0x1B] = 0  # random panning variation
    return bytes(patched)


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64))))


def _render_all(data: bytes, label: str, sample_rate: int, max_seconds: float) -> dict:
    """The full render and every channel that sounds in the excerpt, soloed (see :func:`render`)."""
    with _opened(data, label) as module:
        duration_s, n_channels = module.duration_s, module.n_channels
        settings = {name: module.render_param(param) for name, param in (
            ("stereo_separation_percent", RENDER_STEREO_SEPARATION),
            ("interpolation_filter", RENDER_INTERPOLATION_FILTER),
            ("volume_ramping", RENDER_VOLUME_RAMPING))}
        subsongs = int(module.lib.openmpt_module_get_num_subsongs(module.mod))
        with_notes = module.channels_with_notes()
    offset_s = excerpt_offset_s(duration_s, max_seconds)
    # +1 s so a song that ends early ends by itself (the read returns 0) rather than by the cap
    n_frames = round(min(max_seconds, max(duration_s - offset_s, 0.0) + 1.0) * sample_rate)
    mix, seen = _render_pass(data, label, sample_rate, offset_s, n_frames, solo=None, watch=True)
    n_frames = seen["frames"]
    mix = mix[:, :n_frames]
    if n_frames == 0 or not np.any(mix):
        raise AutomixError(f"{label}: the excerpt is silent")
    # Only channels whose VU meter moved in the full render are rendered first (most songs
    # leave many channels empty); the VU misses some voices, so if those channels do not sum
    # to the mix, every other channel with a note anywhere in the song is rendered too.
    channels: dict[int, np.ndarray] = {}
    total = np.zeros(mix.shape, dtype=np.float64)
    error = 1.0
    for pick in (lambda ch: seen["vu"][ch] > 0.0, lambda ch: ch in with_notes):
        for channel in range(n_channels):
            if channel not in channels and pick(channel):
                channels[channel] = _render_pass(data, label, sample_rate, offset_s, n_frames, solo=channel)[0]
                total += channels[channel]
        error = _rms(mix - total) / _rms(mix)
        if error <= MAX_SUM_ERROR:
            break
    return {"mix": mix, "channels": dict(sorted(channels.items())), "seen": seen, "n_channels": n_channels,
            "error": error, "settings": settings, "subsongs": subsongs}


def render(source: SourceFile, sample_rate: int = 44100, max_seconds: float = 30.0) -> HumanMix:
    """Render an excerpt of a module: each channel soloed (tracks) and all together (mix).

    The excerpt is at most ``max_seconds`` long and starts at :func:`excerpt_offset_s`. Each
    track is ``(2, N)`` float32 at ``sample_rate`` Hz: one pattern channel with everything the
    author set (channel, sample/instrument and global volumes and pans); channels silent or
    inaudible (:func:`~automix.data.human_mix.audible`) in the excerpt are dropped. Track names
    are the instrument/sample the channel plays most in the excerpt, else ``ch<n>`` (1-based).
    A module with random instrument swing is rendered without it (:func:`without_random_swing`).
    Raises AutomixError if the file cannot be loaded, the excerpt is silent, or the soloed
    channels do not sum to the mix (relative RMS error above :data:`MAX_SUM_ERROR`).
    """
    if sample_rate <= 0 or max_seconds <= 0:
        raise AutomixError("sample_rate and max_seconds must be > 0")
    label = f"{source.package}:{source.source_path}"
    try:
        data = Path(source.path).read_bytes()
    except OSError as exc:
        raise AutomixError(one_line(f"cannot read {label}: {exc}")) from exc
    notes = []
    result = _render_all(data, label, sample_rate, max_seconds)
    if result["error"] > MAX_SUM_ERROR and without_random_swing(data) != data:
        data = without_random_swing(data)
        result = _render_all(data, label, sample_rate, max_seconds)
        notes.append("instrument random volume/pan swing set to 0 (libopenmpt's random seed is not settable)")
    if result["error"] > MAX_SUM_ERROR:
        raise AutomixError(f"{label}: soloed channels do not sum to the mix (relative RMS error "
                           f"{result['error']:.2e}; random effects or a non-linear plugin)")
    mix, seen = result["mix"], result["seen"]
    names = _track_names(data, label, seen["rows"], result["n_channels"], source.author)
    tracks, quiet = [], []
    for channel, audio in result["channels"].items():
        if audible(audio, sample_rate):
            tracks.append((names[channel], audio))
        else:
            quiet.append(channel + 1)
    silent = [ch + 1 for ch in range(result["n_channels"]) if ch not in result["channels"]]
    notes += [f"libopenmpt render params {result['settings']}",
              f"subsongs: {result['subsongs']} (libopenmpt's default selection played)",
              f"sum-of-channels error: {result['error']:.2e} relative RMS"]
    if silent:
        notes.append(f"channels silent in the excerpt: {silent}")
    if quiet:
        notes.append(f"channels dropped as inaudible: {quiet}")
    return HumanMix(source=source, sample_rate=sample_rate, tracks=tracks, mix=mix, offset_s=seen["offset_s"],
                    notes=notes)
