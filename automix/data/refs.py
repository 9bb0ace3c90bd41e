"""Reference corpus of real, mastered music from Debian game-music packages.

``build_refs`` downloads each package with ``apt-get download`` (no install), unpacks it, decodes
its music tracks (Vorbis/Opus/FLAC/WAV, also inside zip/pk3 archives) to 44.1 kHz stereo 24-bit
FLAC capped at ``max_seconds`` (the middle of the track) as ``<split>/<package>__<track>.flac``,
and writes ``manifest.csv`` with the licence from the package's copyright file, duration and
integrated loudness. Splits are by package, so no album spans two splits.
"""

from __future__ import annotations

import csv
import fnmatch
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from math import gcd
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
from scipy.signal import resample_poly

from automix.data.debian import download
from automix.errors import AutomixError

RATE_HZ = 44100
MIN_TRACK_S = 30.0  # shorter files are jingles or sound effects
AUDIO_SUFFIXES = (".ogg", ".oga", ".opus", ".flac", ".wav")
ARCHIVE_SUFFIXES = (".pk3", ".zip")
# Split per package (an album never spans splits); licence used when the copyright file has no
# machine-readable stanza for the file (values from the packages' copyright files).
PACKAGES: dict[str, tuple[str, str]] = {
    "warzone2100-music": ("train", "GPL-2+"),
    "nexuiz-music": ("train", "GPL-2+"),
    "supertux-data": ("train", "GPL-2+"),
    "wesnoth-1.16-music": ("train", "GPL-2+"),
    "freedroidrpg-data": ("val", "GPL-2+"),
    "singularity-music": ("test", "CC-BY-SA"),
    "hyperrogue-music": ("test", "CC-BY-SA-3.0"),
}
DEFAULT_PACKAGES = tuple(PACKAGES)
MANIFEST_FIELDS = ("split", "package", "file", "source_path", "licence", "duration_s", "source_duration_s",
                   "start_s", "source_rate_hz", "lufs")


@dataclass
class RefTrack:
    """One manifest row. ``file`` is relative to the corpus root; durations are seconds."""

    split: str
    package: str
    file: str
    source_path: str
    licence: str
    duration_s: float
    source_duration_s: float
    start_s: float
    source_rate_hz: int
    lufs: float


def _print_now(message: str) -> None:
    print(message, flush=True)


def package_split(package: str) -> str:
    """Split of a package: fixed for the known ones, a stable hash for others."""
    if package in PACKAGES:
        return PACKAGES[package][0]
    h = sum(ord(c) * (i + 1) for i, c in enumerate(package)) % 10
    return "test" if h == 0 else ("val" if h == 1 else "train")


def parse_copyright(text: str) -> list[tuple[list[str], str]]:
    """DEP-5 ``Files:`` stanzas as (patterns, licence short name), in file order."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:(.*(?:\n[ \t]+\S.*)*)", block, flags=re.MULTILINE)
        licence = re.search(r"^License:[ \t]*(\S.*)$", block, flags=re.MULTILINE)
        if files and licence:
            stanzas.append((files.group(1).split(), licence.group(1).strip()))
    return stanzas


def licence_for(path: str, stanzas: list[tuple[list[str], str]], fallback: str) -> str:
    """Licence of an installed file: the last stanza with a pattern matching ``path``, else ``fallback``.

    Copyright patterns are source-relative (``data/music/*``) while installed paths are not
    (``/usr/share/games/x/music/a.ogg``), so a pattern also matches through its tail of at least
    two components (``music/*``).
    """
    found = None
    for patterns, licence in stanzas:
        for pattern in patterns:
            if pattern.startswith("debian/"):
                continue
            if pattern == "*":
                found = found or licence  # the catch-all never overrides a specific stanza
                continue
            parts = pattern.lstrip("./").split("/")
            tails = ["/".join(parts[i:]) for i in range(max(len(parts) - 1, 1))]
            if any(fnmatch.fnmatch(path, "*/" + tail) for tail in tails):
                found = licence
    return found or fallback


def _is_music(path: str, package: str) -> bool:
    low = path.lower()
    if not low.endswith(AUDIO_SUFFIXES):
        return False
    return package.endswith("-music") or "/music/" in low or "cdtracks" in low


def _decode_excerpt(path: Path, max_seconds: float) -> tuple[np.ndarray, int, float, float]:
    """Read the middle ``max_seconds`` of a file as float32 ``(2, samples)`` at its own rate.

    Returns (audio, rate_hz, start_s, source_duration_s)."""
    with sf.SoundFile(str(path)) as f:
        rate, frames = f.samplerate, f.frames
        n = min(frames, int(max_seconds * rate))
        start = (frames - n) // 2
        if start:
            f.seek(start)
        audio = f.read(n, dtype="float32", always_2d=True).T
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    return audio[:2], rate, start / rate, frames / rate


def to_rate(audio: np.ndarray, rate_hz: int, target_hz: int = RATE_HZ) -> np.ndarray:
    """Polyphase (Kaiser-windowed) resampling of ``(channels, samples)`` audio."""
    if rate_hz == target_hz:
        return audio
    g = gcd(rate_hz, target_hz)
    return resample_poly(audio, target_hz // g, rate_hz // g, axis=-1).astype(np.float32)


def _candidates(unpacked: Path, package: str, tmp: Path) -> list[tuple[Path, str]]:
    """(file on disk, path inside the package) of every music file, including archive members."""
    found = []
    for path in sorted(unpacked.rglob("*")):
        rel = "/" + str(path.relative_to(unpacked))
        if path.suffix.lower() in ARCHIVE_SUFFIXES and path.is_file():
            with zipfile.ZipFile(path) as archive:
                for member in sorted(archive.namelist()):
                    if _is_music(f"{rel}/{member}", package) or (
                        member.lower().endswith(AUDIO_SUFFIXES) and "music" in path.name.lower()
                    ):
                        target = tmp / "zip" / member
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(archive.read(member))
                        found.append((target, f"{rel}!{member}"))
        elif path.is_file() and _is_music(rel, package):
            found.append((path, rel))
    return found


def _safe_name(source_path: str) -> str:
    stem = Path(source_path.replace("!", "/")).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_") or "track"


def process_package(package: str, out: Path, deb_dir: Path, max_seconds: float, limit: int,
                    log=_print_now) -> list[RefTrack]:
    """Download (cached in ``deb_dir``), unpack and decode one package; return its manifest rows."""
    deb = download(package, deb_dir, log)
    split = package_split(package)
    fallback = PACKAGES.get(package, ("", "see package copyright"))[1]
    rows: list[RefTrack] = []
    with tempfile.TemporaryDirectory(prefix=f"automix_{package}_", dir=deb_dir) as tmp_name:
        tmp = Path(tmp_name)
        # a temporary tree, not debian.unpack's cache: only the decoded excerpts are kept
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], check=True)
        copyright_files = list((tmp / "root").glob("usr/share/doc/*/copyright"))
        stanzas = parse_copyright(copyright_files[0].read_text(errors="replace")) if copyright_files else []
        (out / split).mkdir(parents=True, exist_ok=True)
        used: set[str] = set()
        meter = pyloudnorm.Meter(RATE_HZ)
        for path, source_path in _candidates(tmp / "root", package, tmp):
            if len(rows) >= limit:
                break
            try:
                audio, rate, start_s, source_s = _decode_excerpt(path, max_seconds)
            except (RuntimeError, sf.LibsndfileError) as exc:
                log(f"  skip {source_path}: {exc}")
                continue
            if source_s < MIN_TRACK_S:
                continue
            audio = to_rate(audio, rate)
            name = _safe_name(source_path)
            while name in used:
                name += "_"
            used.add(name)
            rel = f"{split}/{package}__{name}.flac"  # flat: one folder per split
            tmp_out = out / (rel + ".tmp")
            sf.write(tmp_out, audio.T, RATE_HZ, subtype="PCM_24", format="FLAC")
            os.replace(tmp_out, out / rel)
            lufs = float(meter.integrated_loudness(audio.T.astype(np.float64)))
            rows.append(RefTrack(split, package, rel, source_path.lstrip("/"),
                                 licence_for(source_path.split("!")[0], stanzas, fallback),
                                 round(audio.shape[1] / RATE_HZ, 3), round(source_s, 3), round(start_s, 3),
                                 rate, round(lufs, 2)))
    return rows


def write_manifest(rows: list[RefTrack], path: Path) -> None:
    """Write manifest rows as CSV (atomically)."""
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    os.replace(tmp, path)


def read_manifest(path: Path) -> list[RefTrack]:
    """Read ``manifest.csv`` written by ``build_refs``."""
    if not Path(path).is_file():
        raise AutomixError(f"no reference manifest at {path}; run `automix data refs` first")
    with open(path, newline="") as handle:
        return [RefTrack(r["split"], r["package"], r["file"], r["source_path"], r["licence"],
                         float(r["duration_s"]), float(r["source_duration_s"]), float(r["start_s"]),
                         int(r["source_rate_hz"]), float(r["lufs"])) for r in csv.DictReader(handle)]


def build_refs(out: Path, packages: list[str], max_seconds: float = 120.0, max_tracks: int = 400,
               keep_debs: bool = False, log=_print_now) -> list[RefTrack]:
    """Build the reference corpus in ``out`` (``<split>/<package>/*.flac`` + ``manifest.csv``)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise AutomixError("building references needs apt-get and dpkg-deb (Debian/Ubuntu)")
    if max_seconds <= 0 or max_tracks < 1:
        raise AutomixError("--max-seconds must be > 0 and --max-tracks ≥ 1")
    out = Path(out)
    deb_dir = out / "_debs"
    deb_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    manifest = out / "manifest.csv"
    done = read_manifest(manifest) if manifest.is_file() else []
    rows: list[RefTrack] = []
    for package in packages:
        if len(rows) >= max_tracks:
            break
        previous = [r for r in done if r.package == package and (out / r.file).is_file()]
        if previous:  # resume: a package already in the manifest is not fetched again
            rows += previous[: max_tracks - len(rows)]
            log(f"{package}: {len(previous)} tracks already present")
            continue
        t0 = time.time()
        new = process_package(package, out, deb_dir, max_seconds, max_tracks - len(rows), log)
        rows += new
        write_manifest(rows, out / "manifest.csv")  # after every package, so progress survives
        log(f"{package}: {len(new)} tracks in {time.time() - t0:.0f} s")
        if not keep_debs:
            for deb in deb_dir.glob(f"{package}_*.deb"):
                deb.unlink()
    write_manifest(rows, out / "manifest.csv")
    per_split = {s: sum(1 for r in rows if r.split == s) for s in ("train", "val", "test")}
    hours = sum(r.duration_s for r in rows) / 3600
    log(f"references: {len(rows)} tracks (train {per_split['train']}, val {per_split['val']}, "
        f"test {per_split['test']}), {hours:.2f} h; took {time.time() - start:.0f} s")
    return rows
