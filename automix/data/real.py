"""The real-balance corpus: songs whose authors set every level and pan, stored to hide that truth.

``build_real`` asks each source (tracker modules, MIDI files, Hydrogen songs) for its files,
splits them by package *and* author (an author or a package never spans two splits), renders
every song with its author's balance and writes::

    <out>/<split>/<song_id>/stems/NN_<track>.flac   mono, loudness-normalised (the input)
    <out>/<split>/<song_id>/mix.flac                the author's mix (the target)
    <out>/<split>/<song_id>/song.json               source, licence, author, per-track truth
    <out>/manifest.csv                              one row per song

A stem is the soloed track folded to mono and trimmed to :data:`NORMALISED_STEM_LUFS`, so
neither its level nor its channels tell the author's decision; ``song.json`` keeps the truth
(:class:`~automix.data.human_mix.TrackTruth`: loudness in the mix relative to the mix, the gain
back to the author's level, the pan). Building resumes: a song whose ``song.json`` exists is
not rendered again.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs
from automix.data.human_mix import FAMILIES, HumanMix, SourceFile, audible, mono_stem, track_truth
from automix.errors import AutomixError

CORPUS_FORMAT = "automix-real-song"
CORPUS_VERSION = 1
SAMPLE_RATE_HZ = 44100
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
MIN_TRACKS = 2
MAX_PEAK = 0.999
"""Stems and mixes are stored as 24-bit FLAC: anything louder is scaled down (and the scale kept)."""
MANIFEST_FIELDS = ("split", "song_id", "family", "package", "author", "licence", "source_path", "title",
                   "tracks", "seconds")

Log = Callable[[str], None]


def _print_now(message: str) -> None:
    print(message, flush=True)


def _source_module(family: str):
    if family == "tracker":
        from automix.data import modules
        return modules
    if family == "midi":
        from automix.data import midi_songs
        return midi_songs
    if family == "hydrogen":
        from automix.data import hydrogen_songs
        return hydrogen_songs
    raise AutomixError(f"unknown source family {family!r}; choose from {', '.join(FAMILIES)}")


def song_id(source: SourceFile) -> str:
    """A file-name-safe, stable id: package + the file's path inside it."""
    # Only a real extension goes ("a.wad!D_E1M1" names a lump inside a WAD: all of it stays).
    path = re.sub(r"\.(mod|xm|s3m|it|mptm|mid|midi|kar|rmi|h2song|[a-z0-9]{1,4})$", "", source.source_path,
                  flags=re.IGNORECASE)
    text = f"{source.package}__{path}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:120]


def _author_key(author: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", author.lower()).strip()


def composer_groups(songs: Sequence[tuple[str, str]]) -> list[str]:
    """Each song's group, from its ``(package, author)``: packages and authors are the nodes of a
    graph, each song joins its package to its author (an unknown author joins nothing), and a
    group is a connected component, named by one of its packages. Songs of one package, and
    packages that share an author, share a group."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for package, author in songs:
        package_node = f"package:{package}"
        find(package_node)
        if _author_key(author):
            parent[find(f"author:{_author_key(author)}")] = find(package_node)
    return [find(f"package:{package}").removeprefix("package:") for package, _ in songs]


def assign_splits(sources: Sequence[SourceFile], seed: int = 0,
                  fractions: dict[str, float] | None = None) -> dict[str, str]:
    """``song_id → split``, keeping every package and every author inside one split.

    Packages and authors are the nodes of a graph and each file joins its package to its author;
    a connected component moves as one. Within each family the components are partitioned so
    each split's song count comes closest to its share (:func:`_partition`, seeded), so every
    family is represented in every split where it has enough components.
    """
    fractions = fractions or SPLIT_FRACTIONS
    groups = composer_groups([(source.package, source.author) for source in sources])
    components: dict[str, list[SourceFile]] = {}
    for source, group in zip(sources, groups, strict=True):
        components.setdefault(group, []).append(source)

    splits: dict[str, str] = {}
    rng = np.random.default_rng(seed)
    for family in sorted({s.family for s in sources}):
        members = {key: items for key, items in components.items()
                   if max({i.family for i in items}, key=[i.family for i in items].count) == family}
        keys = sorted(members)
        chosen = _partition([len(members[k]) for k in keys], list(fractions.values()), rng)
        for key, split_index in zip(keys, chosen, strict=True):
            for source in members[key]:
                splits[song_id(source)] = list(fractions)[split_index]
    return splits


PARTITION_TRIES = 3000


def _partition(sizes: list[int], fractions: list[float], rng: np.random.Generator) -> list[int]:
    """Split index per component so the splits' song counts come closest to ``fractions``.

    Components can be large (a package of 65 songs), so one greedy pass often overshoots;
    :data:`PARTITION_TRIES` seeded random orders are each filled greedily (every component to
    the split furthest below its target) and the closest result (squared deviation) is kept.
    """
    total = float(sum(sizes))
    targets = np.array(fractions) / sum(fractions) * total
    best, best_cost = [0] * len(sizes), math.inf
    for _ in range(PARTITION_TRIES):
        counts = np.zeros(len(fractions))
        chosen = [0] * len(sizes)
        for i in rng.permutation(len(sizes)):
            k = int(np.argmax(targets - counts))
            chosen[i] = k
            counts[k] += sizes[i]
        cost = float(np.sum((counts - targets) ** 2))
        if cost < best_cost:
            best, best_cost = chosen, cost
    return best


def _write_flac(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    sf.write(tmp, audio.T, sample_rate, subtype="PCM_24", format="FLAC")
    os.replace(tmp, path)


def _safe_track_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:40] or "track"


def _peak_safe(audio: np.ndarray) -> tuple[np.ndarray, float]:
    """``(audio scaled to peak ≤ MAX_PEAK, the scale in dB ≤ 0)``."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= MAX_PEAK:
        return audio, 0.0
    return (audio * (MAX_PEAK / peak)).astype(np.float32), 20.0 * float(np.log10(MAX_PEAK / peak))


def write_song(human: HumanMix, folder: Path, split: str) -> dict:
    """Store one rendered song in ``folder`` (stems, mix, song.json); returns the song.json dict.

    Raises:
        AutomixError: fewer than :data:`MIN_TRACKS` audible tracks, or a silent mix.
    """
    rate = human.sample_rate
    tracks = [(name, audio) for name, audio in human.tracks if audible(audio, rate)]
    if len(tracks) < MIN_TRACKS:
        raise AutomixError(f"{human.source.source_path}: {len(tracks)} audible track(s); a mix needs {MIN_TRACKS}")
    mix_lufs = float(integrated_lufs(human.mix.astype(np.float64), rate))
    if not np.isfinite(mix_lufs) or mix_lufs <= -69.0:
        raise AutomixError(f"{human.source.source_path}: the mix is silent")
    stems_dir = folder / "stems"
    stems_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for k, (name, stereo) in enumerate(tracks, start=1):
        mono = mono_stem(stereo)
        truth = track_truth(stereo, mono, mix_lufs, rate)
        stored = mono * np.float32(10.0 ** (-truth.gain_db / 20.0))  # at NORMALISED_STEM_LUFS
        stored, scale_db = _peak_safe(stored)
        file = f"{k:02d}_{_safe_track_name(name)}.flac"
        _write_flac(stems_dir / file, stored, rate)
        entries.append({"file": f"stems/{file}", "name": name, "level_in_mix_lu": round(truth.level_in_mix_lu, 4),
                        "gain_db": round(truth.gain_db - scale_db, 4), "pan": round(truth.pan, 4),
                        "stem_lufs": round(NORMALISED_STEM_LUFS + scale_db, 4)})
    mix, mix_scale_db = _peak_safe(human.mix.astype(np.float32))
    _write_flac(folder / "mix.flac", mix, rate)
    source = {k: str(v) for k, v in asdict(human.source).items() if k != "path"}
    meta = {
        "format": CORPUS_FORMAT, "version": CORPUS_VERSION, "song_id": folder.name, "split": split,
        **source, "group": f"{human.source.package}", "sample_rate": rate,
        "offset_s": round(human.offset_s, 3), "seconds": round(human.mix.shape[1] / rate, 3),
        "mix": {"file": "mix.flac", "lufs": round(mix_lufs + mix_scale_db, 4), "gain_db": round(mix_scale_db, 4)},
        "tracks": entries, "notes": list(human.notes),
    }
    _write_json(folder / "song.json", meta)
    return meta


def _render_one(args: tuple[SourceFile, str, Path, float]) -> tuple[str, dict | None, str]:
    source, split, folder, max_seconds = args
    try:
        human = _source_module(source.family).render(source, SAMPLE_RATE_HZ, max_seconds)
        return folder.name, write_song(human, folder, split), ""
    except AutomixError as exc:
        return folder.name, None, str(exc)


def _move_if_resplit(out: Path, folder: Path) -> None:
    """A song built under another split (the split rule changed) moves instead of rendering again."""
    if (folder / "song.json").is_file():
        return
    for other in SPLIT_FRACTIONS:
        old = out / other / folder.name
        if old != folder and (old / "song.json").is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old, folder)
            meta = json.loads((folder / "song.json").read_text(encoding="utf-8"))
            meta["split"] = folder.parent.name
            _write_json(folder / "song.json", meta)
            return


def _manifest_row(meta: dict) -> dict:
    row = {name: meta.get(name, "") for name in MANIFEST_FIELDS}
    row["tracks"] = len(meta["tracks"])
    return row


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_manifest(rows: list[dict], path: Path) -> None:
    """One CSV row per song (atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["split"], r["song_id"])))
    os.replace(tmp, path)


def build_real(out: Path, families: Sequence[str] = FAMILIES, max_seconds: float = 30.0, jobs: int = 2,
               seed: int = 0, max_songs: int | None = None, log: Log = _print_now) -> list[dict]:
    """Build (or resume) the corpus in ``out``; returns the manifest rows."""
    if max_seconds <= 0 or jobs < 1:
        raise AutomixError("--max-seconds must be > 0 and --jobs ≥ 1")
    out = Path(out)
    cache = out / "_cache"
    cache.mkdir(parents=True, exist_ok=True)
    started = time.time()
    sources: list[SourceFile] = []
    for family in families:
        found = _source_module(family).find_sources(cache / family, log=log)
        log(f"{family}: {len(found)} files")
        sources += found
    sources = sorted({song_id(s): s for s in sources}.values(), key=song_id)[:max_songs]
    splits = assign_splits(sources, seed)
    rows, todo = [], []
    skipped_path = out / "skipped.json"
    skipped: dict[str, str] = json.loads(skipped_path.read_text(encoding="utf-8")) if skipped_path.is_file() else {}
    for source in sources:
        folder = out / splits[song_id(source)] / song_id(source)
        if folder.name in skipped:  # renders are deterministic: a file that failed fails again
            continue
        _move_if_resplit(out, folder)
        if (folder / "song.json").is_file():
            rows.append(_manifest_row(json.loads((folder / "song.json").read_text(encoding="utf-8"))))
        else:
            todo.append((source, splits[song_id(source)], folder, max_seconds))
    log(f"{len(rows)} songs already built, {len(skipped)} skipped before, {len(todo)} to render")
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None
    results = pool.map(_render_one, todo, chunksize=1) if pool else map(_render_one, todo)
    try:
        for k, (name, meta, why) in enumerate(results, start=1):
            if meta is None:
                skipped[name] = why
                log(f"  skip {name}: {why}")
            else:
                rows.append(_manifest_row(meta))
            if k % 20 == 0:
                write_manifest(rows, out / "manifest.csv")
                _write_json(skipped_path, skipped)
                log(f"  {k}/{len(todo)} rendered ({time.time() - started:.0f} s)")
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    write_manifest(rows, out / "manifest.csv")
    _write_json(skipped_path, skipped)
    tracks = sum(int(r["tracks"]) for r in rows)
    per_split = {s: sum(1 for r in rows if r["split"] == s) for s in SPLIT_FRACTIONS}
    log(f"real corpus: {len(rows)} songs, {tracks} tracks (train {per_split['train']}, val {per_split['val']}, "
        f"test {per_split['test']}); {len(skipped)} files skipped (skipped.json); took {time.time() - started:.0f} s")
    return rows
