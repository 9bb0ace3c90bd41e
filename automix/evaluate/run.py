"""Run evaluations: one mix file, or every method on every song of a dataset.

:func:`evaluate_file` measures one mix (and compares it with a reference and/or a target).
:func:`evaluate_dataset` mixes every song of a dataset with every method, in memory (the
engine's render → finalize, nothing written but the settings), measures each mix and appends
the numbers to ``REPORT_DIR/results.csv``; :mod:`automix.evaluate.report` and
:mod:`automix.evaluate.plots` turn that file into ``summary.json``, ``report.md`` and PNGs.

``results.csv`` is long format, one row per song × method × metric (× track):
``song, method, metric, track, value``. ``track`` is empty for song-level metrics, a stem
name for per-track ones, and ``bark_NN`` for the Bark spectrum. The ``seconds`` row (compute
time) is written last for a song × method and marks it complete: a second run skips complete
pairs, so an interrupted evaluation resumes where it stopped.

Pseudo-methods next to the mixers of :func:`automix.mixers.get_mixer`:

* ``target`` (added automatically for songs with a mix): the song's own mix, measured like a
  method's (its loudness, spectrum, per-track levels; AF loss with ``--refs``);
* ``reference`` (added automatically with ``--refs``): the reference paired with the song,
  measured as a mix (loudness, stereo image, spectrum) for comparison;
* ``oracle`` (on request): faders and pans fitted to the target mix by least squares, every
  other control neutral: the best a pure fader/pan mix of these stems can do.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import re
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from automix.analysis_windows import multitrack_activity, window_starts_samples
from automix.console.loudness import integrated_lufs
from automix.console.schema import FX, TRACK
from automix.console.settings import MixSettings, dumps
from automix.data.loaders import Song, find_songs
from automix.errors import AudioLoadError, AutomixError
from automix.evaluate.features import (
    GAIN_FLOOR_DB,
    balance_error_db,
    compare_to_reference,
    compare_to_target,
    estimate_gains_pans,
    mix_report,
)
from automix.io.audio import (
    SILENCE_PEAK_DBFS,
    Stem,
    choose_sample_rate,
    load_audio,
    peak_dbfs,
    resample,
    write_text_atomic,
)

Log = Callable[[str], None]

RESULTS_FILE = "results.csv"
CONFIG_FILE = "config.json"
SETTINGS_DIR = "settings"
CSV_FIELDS = ("song", "method", "metric", "track", "value")
DONE_METRIC = "seconds"
"""Written last for a song × method: its presence marks the pair complete."""

TARGET_METHOD = "target"
REFERENCE_METHOD = "reference"
ORACLE_METHOD = "oracle"
AUTOMATIC_METHODS = (TARGET_METHOD, REFERENCE_METHOD)
"""Measured automatically: a song's own mix, and (``--refs``) the reference paired with it."""

TRACK_LEVEL_FLOOR_LU = -70.0
"""Relative level reported for a track that is (nearly) absent from a mix."""

AUDIBLE_LEVEL_LU = -40.0
"""Balance and pan errors count only tracks at least this loud (re the mix) in the target mix:
the least-squares gain of a track that is all but silent in the excerpt is noise, and a
listener could not hear its balance anyway."""

_MIX_METRICS = ("integrated_lufs", "loudness_range_lu", "true_peak_dbtp", "rms_dbfs", "crest_factor_db",
                "stereo_width", "stereo_imbalance")

# Options that change the numbers: a report folder only ever holds results computed with one set.
_CONFIG_KEYS = ("dataset", "layout", "split", "seconds", "refs", "seed")


# --------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------

def _load_at(path: Path, sample_rate: int, what: str) -> np.ndarray:
    try:
        audio, rate = load_audio(path)
    except AudioLoadError as e:
        raise AudioLoadError(f"{what} {e}") from None
    return resample(audio, rate, sample_rate)


LENGTH_NOTE_S = 0.05
"""A mix and a target differing in length by more than this get a note (a tail of a few ms is rounding)."""


def evaluate_file(mix: str | Path, ref: str | Path | None = None, target: str | Path | None = None
                  ) -> dict[str, Any]:
    """Measure one mix; with ``ref``, its AF loss to a reference; with ``target``, MRSTFTs to a target.

    The reference and target are resampled to the mix's rate. A mono target is compared as
    the same signal in both channels.

    Returns:
        ``{"mix", "sample_rate", "duration_s", <mix_report keys>, "bark_band_hz",
        "reference": {"path", "af_loss", "af_<term>"…}?, "target": {"path", "sum_diff_mrstft",
        "mrstft", "compared_s"}?, "notes"?}``; ``notes`` says when the mix and the target differ in length.

    Raises:
        AudioLoadError: a file is missing, unreadable, has NaNs or more than two channels.
        AutomixError: the target is silent.
    """
    from automix.measure.bark import bark_band_centres_hz

    mix = Path(mix)
    audio, rate = load_audio(mix)
    result: dict[str, Any] = {"mix": str(mix), "sample_rate": rate, "duration_s": audio.shape[1] / rate}
    result.update(mix_report(audio, rate))
    result["bark_band_hz"] = [float(f) for f in bark_band_centres_hz()]
    if ref is not None:
        reference = _load_at(Path(ref), rate, "reference")
        result["reference"] = {"path": str(ref), **compare_to_reference(audio, reference, rate)}
    if target is not None:
        target_audio = _load_at(Path(target), rate, "target")
        if not np.any(target_audio):
            raise AutomixError(f"target {target}: the file is silent; there is no mix to compare with")
        result["target"] = {"path": str(target), **compare_to_target(audio, target_audio, rate)}
        mix_s, target_s = audio.shape[1] / rate, target_audio.shape[1] / rate
        result["target"]["compared_s"] = min(mix_s, target_s)
        if abs(mix_s - target_s) > LENGTH_NOTE_S:
            result["notes"] = [(f"the mix is {mix_s:.2f} s long and the target {target_s:.2f} s: compared over "
                                f"the first {min(mix_s, target_s):.2f} s")]
    return result


# --------------------------------------------------------------------------------------
# A song in memory
# --------------------------------------------------------------------------------------

@dataclass
class SongAudio:
    """A dataset song loaded for evaluation.

    Attributes:
        name: the song's name in the dataset.
        stems: stems at one rate, equal length, names unique.
        sample_rate: Hz.
        target: the song's own mix ``(2, N)`` aligned with the stems, or None.
        start_s: where the evaluated excerpt starts in the song (``--seconds``), seconds.
    """

    name: str
    stems: list[Stem]
    sample_rate: int
    target: np.ndarray | None
    start_s: float = 0.0


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """File names, prefixed with their folder where two stems share a name (e.g. ENST takes)."""
    names = [p.name for p in paths]
    return [f"{p.parent.name}_{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def _stereo(audio: np.ndarray) -> np.ndarray:
    return np.concatenate([audio, audio]) if audio.shape[0] == 1 else audio


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    if audio.shape[1] >= n:
        return audio[:, :n]
    return np.pad(audio, ((0, 0), (0, n - audio.shape[1])))


def load_song(song: Song, seconds: float | None = None) -> SongAudio:
    """Load a song's stems (and mix) for evaluation, optionally cropped to ``seconds``.

    Stems follow the engine's loading rules (silent stems skipped, resampled to the most
    common rate, padded to the longest). The crop is the song's most active ``seconds``-long
    excerpt (:mod:`automix.analysis_windows`), the same for stems and mix.

    Raises:
        AutomixError: unreadable files, or every stem silent.
    """
    stems: list[Stem] = []
    for path, name in zip(song.stem_paths, _unique_names(song.stem_paths)):
        audio, rate = load_audio(path)
        if audio.shape[1] and peak_dbfs(audio) >= SILENCE_PEAK_DBFS:
            stems.append(Stem(name, audio, rate, path))
    if not stems:
        raise AutomixError(f"song {song.name}: every stem is silent")
    rate = choose_sample_rate(s.sample_rate for s in stems)
    for stem in stems:
        stem.audio = resample(stem.audio, stem.sample_rate, rate)
        stem.sample_rate = rate
    n = max(s.audio.shape[1] for s in stems)
    for stem in stems:
        stem.audio = np.ascontiguousarray(_fit_length(stem.audio, n), dtype=np.float32)
    target = None
    if song.mix_path is not None:
        target = _fit_length(_stereo(_load_at(song.mix_path, rate, "mix")), n).astype(np.float32)

    start = 0
    if seconds is not None and n > int(seconds * rate):
        length = int(seconds * rate)
        activity = multitrack_activity([s.audio for s in stems], rate)
        start = window_starts_samples(activity, rate, seconds, 1, n)[0]
        for stem in stems:
            stem.audio = np.ascontiguousarray(stem.audio[:, start:start + length])
        if target is not None:
            target = np.ascontiguousarray(target[:, start:start + length])
    return SongAudio(song.name, stems, rate, target, start / rate)


# --------------------------------------------------------------------------------------
# Mixing in memory
# --------------------------------------------------------------------------------------

def render_mix(stems: Sequence[Stem], sample_rate: int, settings: MixSettings) -> tuple[np.ndarray, MixSettings]:
    """The engine's back half in memory: render the rounded settings, then finalize.

    Returns:
        ``(mix (2, N) float32, the settings exactly as rendered)``.
    """
    from automix.console.finalize import finalize
    from automix.console.render import render_console

    settings.sample_rate = sample_rate
    settings = settings.clipped().rounded()
    mix = render_console([s.audio for s in stems], sample_rate, settings)
    final, _ = finalize(mix, sample_rate, settings.target_lufs, settings.ceiling_dbtp)
    return final, settings


def oracle_settings(stems: Sequence[Stem], target: np.ndarray) -> MixSettings:
    """Gains and pans fitted to ``target`` by least squares; everything else neutral.

    The fitted gain goes to the trim (±48 dB) rather than the fader (−40…+12 dB), whose range
    a stem recorded far below its place in the mix can exceed.
    """
    gains_db, pans = estimate_gains_pans([s.audio for s in stems], target)
    settings = MixSettings.neutral([s.name for s in stems], mixer=ORACLE_METHOD)
    settings.track[:, TRACK.index("trim_db")] = gains_db
    settings.track[:, TRACK.index("pan")] = pans
    settings.set_fx("reverb.return_db", FX.spec("reverb.return_db").minimum)
    return settings.clipped()


MixerFactory = Callable[[], Any]


@lru_cache(maxsize=16)
def _cached_mixer(name: str) -> Any:
    from automix.mixers import check_model_name, get_mixer

    return get_mixer(check_model_name(name, "--methods"), "cpu")


def _accepts_references(mixer: Any) -> bool:
    try:
        return "references" in inspect.signature(mixer.predict).parameters
    except (TypeError, ValueError):
        return False


def check_methods(methods: Sequence[str], extra: Mapping[str, MixerFactory] | None = None) -> list[str]:
    """Validate method names (each loads once here, so a missing checkpoint fails early)."""
    if not methods:
        raise AutomixError("--methods: give at least one method")
    seen: list[str] = []
    for name in methods:
        if name in seen:
            raise AutomixError(f"--methods: {name!r} given twice")
        if name in AUTOMATIC_METHODS:
            raise AutomixError(f"--methods: {name!r} is measured automatically (target mixes, --refs)")
        if name != ORACLE_METHOD and name not in (extra or {}):
            _cached_mixer(name)  # raises AutomixError listing the valid names
        seen.append(name)
    return seen


# --------------------------------------------------------------------------------------
# Metrics of one mix
# --------------------------------------------------------------------------------------

Row = dict[str, Any]


def _row(song: str, method: str, metric: str, value: float, track: str = "") -> Row:
    return {"song": song, "method": method, "metric": metric, "track": track, "value": float(value)}


def _track_levels_lu(stem_lufs: np.ndarray, gains_db: np.ndarray, mix_lufs: float) -> np.ndarray:
    """Each track's loudness in a mix relative to the mix, LU (stem loudness + fitted gain − mix)."""
    levels = stem_lufs + gains_db - mix_lufs
    absent = (gains_db <= GAIN_FLOOR_DB) | ~np.isfinite(levels)
    return np.where(absent, TRACK_LEVEL_FLOOR_LU, np.maximum(levels, TRACK_LEVEL_FLOOR_LU))


@dataclass
class _SongContext:
    song: SongAudio
    stem_lufs: np.ndarray
    target_gains: tuple[np.ndarray, np.ndarray] | None
    audible: np.ndarray | None
    """Tracks at least :data:`AUDIBLE_LEVEL_LU` loud in the target mix, ``(K,)`` bool."""
    reference: np.ndarray | None


def measure_mix(ctx: _SongContext, method: str, mix: np.ndarray) -> list[Row]:
    """Every metric of one method's mix of one song (without the final ``seconds`` row)."""
    song = ctx.song
    rate = song.sample_rate
    rows: list[Row] = []
    report = mix_report(mix, rate)
    for name in _MIX_METRICS:
        rows.append(_row(song.name, method, name, report[name]))
    for i, level_db in enumerate(report["bark_band_db"]):
        rows.append(_row(song.name, method, "bark_band_db", level_db, f"bark_{i + 1:02d}"))
    if method == REFERENCE_METHOD:  # another song: no stems to compare with
        return rows

    if method == TARGET_METHOD and ctx.target_gains is not None:
        gains_db, pans = ctx.target_gains
    else:
        gains_db, pans = estimate_gains_pans([s.audio for s in song.stems], _stereo(mix))
    levels = _track_levels_lu(ctx.stem_lufs, gains_db, float(report["integrated_lufs"]))
    for stem, gain_db, pan, level in zip(song.stems, gains_db, pans, levels):
        rows += [_row(song.name, method, "track_gain_db", gain_db, stem.name),
                 _row(song.name, method, "track_pan", pan, stem.name),
                 _row(song.name, method, "track_level_lu", level, stem.name)]

    if ctx.target_gains is not None and method != TARGET_METHOD:
        target_gains_db, target_pans = ctx.target_gains
        audible = np.flatnonzero(ctx.audible)
        if audible.size:
            errors = balance_error_db(gains_db[audible], target_gains_db[audible])
            pan_errors = np.abs(pans[audible] - target_pans[audible])
            for k, error, pan_error in zip(audible, errors, pan_errors):
                rows += [_row(song.name, method, "track_balance_error_db", error, song.stems[k].name),
                         _row(song.name, method, "track_pan_error", pan_error, song.stems[k].name)]
            rows += [_row(song.name, method, "balance_error_db", errors.mean()),
                     _row(song.name, method, "balance_error_max_db", errors.max()),
                     _row(song.name, method, "pan_error", pan_errors.mean())]
        for name, value in compare_to_target(mix, song.target, rate).items():
            rows.append(_row(song.name, method, name, value))
    if ctx.reference is not None:
        for name, value in compare_to_reference(mix, ctx.reference, rate).items():
            rows.append(_row(song.name, method, name, value))
    return rows


# --------------------------------------------------------------------------------------
# One song, all its pending methods (runs in a worker process with --jobs > 1)
# --------------------------------------------------------------------------------------

@dataclass
class SongTask:
    song: Song
    methods: list[str]
    seconds: float | None
    reference: Path | None
    seed: int
    settings_dir: Path
    extra: Mapping[str, MixerFactory] | None = None


@dataclass
class SongOutcome:
    song: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def safe_name(text: str) -> str:
    """A file-name-safe version of a song or method name."""
    return re.sub(r"[^\w.+-]+", "_", text).strip("_") or "_"


def _mixer(name: str, extra: Mapping[str, MixerFactory] | None) -> Any:
    if extra and name in extra:
        return extra[name]()
    return _cached_mixer(name)


def _settings_for(task: SongTask, ctx: _SongContext, method: str) -> MixSettings | None:
    song = ctx.song
    if method == ORACLE_METHOD:
        return oracle_settings(song.stems, song.target) if song.target is not None else None
    mixer = _mixer(method, task.extra)
    if ctx.reference is not None and _accepts_references(mixer):
        return mixer.predict(song.stems, song.sample_rate, seed=task.seed, references=[ctx.reference])
    return mixer.predict(song.stems, song.sample_rate, seed=task.seed)


def known_truth(song: Song, stems: Sequence[Stem]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(level_in_mix_lu, pan)`` per stem when the song's metadata records its author's balance
    (the real-balance corpus), else None. Levels are relative to the mix, so a method's
    balance error compares loudness with loudness; stems are matched by file name."""
    tracks = song.meta.get("tracks")
    if not isinstance(tracks, list) or not all(isinstance(t, dict) and "level_in_mix_lu" in t for t in tracks):
        return None
    by_file = {Path(str(t.get("file", ""))).name: t for t in tracks}
    chosen = [by_file.get(Path(s.path).name) if s.path is not None else None for s in stems]
    if any(t is None for t in chosen):
        return None
    return (np.array([float(t["level_in_mix_lu"]) for t in chosen]),
            np.array([float(t.get("pan", 0.0)) for t in chosen]))


def evaluate_song(task: SongTask) -> SongOutcome:
    """Mix one song with each pending method and measure it; the target mix too when pending."""
    outcome = SongOutcome(task.song.name)
    try:
        song = load_song(task.song, task.seconds)
        reference = _stereo(_load_at(task.reference, song.sample_rate, "reference")) if task.reference else None
    except AutomixError as e:
        outcome.notes.append(f"skipped song {task.song.name}: {e}")
        return outcome
    stem_lufs = np.array([integrated_lufs(s.audio, song.sample_rate) for s in song.stems], dtype=np.float64)
    target_gains = audible = None
    truth = known_truth(task.song, song.stems) if task.seconds is None else None
    if truth is not None:  # the author's levels are known exactly: no need to estimate them from the mix
        levels_lu, pans = truth
        target_gains = (levels_lu - stem_lufs, pans)
        audible = levels_lu >= AUDIBLE_LEVEL_LU
    elif song.target is not None:
        target_gains = estimate_gains_pans([s.audio for s in song.stems], song.target)
        target_lufs = float(integrated_lufs(song.target, song.sample_rate))
        audible = _track_levels_lu(stem_lufs, target_gains[0], target_lufs) >= AUDIBLE_LEVEL_LU
    ctx = _SongContext(song, stem_lufs, target_gains, audible, reference)
    folder = task.settings_dir / safe_name(song.name)
    for method in task.methods:
        started = time.perf_counter()
        if method in AUTOMATIC_METHODS:
            mix = song.target if method == TARGET_METHOD else reference
            if mix is None:
                continue
        else:
            settings = _settings_for(task, ctx, method)
            if settings is None:
                outcome.notes.append(f"{song.name}: {method} needs a target mix; skipped")
                continue
            mix, rendered = render_mix(song.stems, song.sample_rate, settings)
            write_text_atomic(folder / f"{safe_name(method)}.json", dumps(rendered), force=True)
        rows = measure_mix(ctx, method, mix)
        rows.append(_row(song.name, method, DONE_METRIC, time.perf_counter() - started))
        outcome.rows += rows
    return outcome


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # --jobs processes share the cores; one thread each avoids oversubscription


# --------------------------------------------------------------------------------------
# results.csv
# --------------------------------------------------------------------------------------

def read_results(path: Path) -> list[Row]:
    """Rows of ``results.csv`` (values as floats); missing file → no rows."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != CSV_FIELDS:
            raise AutomixError(f"{path}: not an automix results file (columns {reader.fieldnames})")
        return [{**r, "value": float(r["value"])} for r in reader]


def completed_pairs(rows: Iterable[Row]) -> set[tuple[str, str]]:
    return {(r["song"], r["method"]) for r in rows if r["metric"] == DONE_METRIC and not r["track"]}


def _write_rows(path: Path, rows: Sequence[Row], mode: str) -> None:
    new = mode == "w" or not path.exists()
    with path.open(mode, newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerows({**r, "value": repr(float(r["value"]))} for r in rows)


# --------------------------------------------------------------------------------------
# A dataset
# --------------------------------------------------------------------------------------

def pair_reference(song_name: str, refs: Sequence[Path]) -> Path:
    """The reference paired with a song: CRC32 of its name modulo the sorted references.

    Depends only on the song's name and the reference set, not on ``--limit`` or other songs.
    """
    return refs[zlib.crc32(song_name.encode("utf-8")) % len(refs)]


def find_references(refs_dir: Path, split: str | None) -> list[Path]:
    """Audio files of a reference folder (``<dir>/<split>/`` when that exists), sorted by name."""
    from automix.io.audio import is_audio_file

    refs_dir = Path(refs_dir)
    if not refs_dir.is_dir():
        raise AutomixError(f"--refs {refs_dir}: folder not found")
    folder = refs_dir / split if split and (refs_dir / split).is_dir() else refs_dir
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_audio_file(p) and not p.name.startswith("."))
    if not files:
        raise AutomixError(f"--refs {folder}: no audio files")
    return files


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


def _check_config(out_dir: Path, config: dict[str, Any]) -> None:
    path = out_dir / CONFIG_FILE
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in _CONFIG_KEYS if old.get(k) != config.get(k)]
        if changed:
            what = ", ".join(f"{k} {old.get(k)!r} → {config.get(k)!r}" for k in changed)
            raise AutomixError(f"{out_dir} holds results computed with other options ({what}); "
                               "use another --out or the same options")
    write_text_atomic(path, json.dumps({k: config[k] for k in _CONFIG_KEYS}, indent=1) + "\n", force=True)


@dataclass
class DatasetEvaluation:
    """What :func:`evaluate_dataset` did; ``summary`` is ``summary.json``'s content."""

    out_dir: Path
    songs: list[str]
    methods: list[str]
    computed: int
    skipped: int
    notes: list[str]
    summary: dict[str, Any]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        data["seconds"] = round(self.seconds, 2)
        return data


def evaluate_dataset(
    dataset: str | Path,
    methods: Sequence[str],
    out_dir: str | Path,
    *,
    refs: str | Path | None = None,
    split: str | None = "test",
    layout: str = "auto",
    limit: int | None = None,
    seconds: float | None = None,
    jobs: int = 1,
    seed: int = 0,
    plots: bool = True,
    command: str | None = None,
    extra_mixers: Mapping[str, MixerFactory] | None = None,
    log: Log | None = None,
) -> DatasetEvaluation:
    """Mix every selected song with every method, measure, and write the report folder.

    Args:
        dataset: dataset root, any layout of :func:`automix.data.loaders.find_songs`.
        methods: mixer names (``rules``, ``mono``…, trained models) and/or ``oracle``.
        out_dir: report folder (``results.csv``, ``summary.json``, ``report.md``, plots).
        refs: folder of reference mixes (its ``<split>/`` sub-folder when present); each song
            is paired with one (:func:`pair_reference`) for the AF loss, and models that take
            references (MST) predict in its style.
        split: songs of this split when the layout has splits (None = all).
        layout: dataset layout, ``auto`` to detect.
        limit: only the first ``limit`` songs (sorted by name).
        seconds: crop every song to its most active excerpt of this length.
        jobs: worker processes (songs run in parallel).
        seed: for mixers with randomness.
        plots: draw the PNGs.
        command: the command line, recorded in the report.
        extra_mixers: additional methods by name → zero-argument factory (must be picklable for
            ``jobs > 1``).
        log: one-line progress notes.

    Raises:
        AutomixError: bad options, an unknown method, a folder with results of other options.
    """
    from automix.evaluate.report import write_report

    started = time.perf_counter()
    say = log or (lambda _m: None)
    if jobs < 1:
        raise AutomixError(f"--jobs {jobs}: expected 1 or more")
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise AutomixError(f"--seconds {seconds}: expected a positive number")
    methods = check_methods(list(methods), extra_mixers)
    songs = select_songs(Path(dataset), layout, split, limit)
    ref_files = find_references(Path(refs), split) if refs is not None else []
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AutomixError(f"--out {out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"dataset": str(Path(dataset).resolve()), "layout": layout, "split": split, "seconds": seconds,
              "refs": str(Path(refs).resolve()) if refs is not None else None, "seed": seed}
    _check_config(out_dir, config)

    results = out_dir / RESULTS_FILE
    rows = read_results(results)
    done = completed_pairs(rows)
    if any((r["song"], r["method"]) not in done for r in rows):  # an interrupted write: drop the partial pair
        rows = [r for r in rows if (r["song"], r["method"]) in done]
        _write_rows(results, rows, "w")

    tasks = []
    for song in songs:
        pending = [m for m in [*methods] if (song.name, m) not in done]
        if ref_files and (song.name, REFERENCE_METHOD) not in done:
            pending.insert(0, REFERENCE_METHOD)
        if song.mix_path is not None and (song.name, TARGET_METHOD) not in done:
            pending.insert(0, TARGET_METHOD)
        if pending:
            ref = pair_reference(song.name, ref_files) if ref_files else None
            tasks.append(SongTask(song, pending, seconds, ref, seed, out_dir / SETTINGS_DIR, extra_mixers))
    skipped = len(songs) * len(methods) - sum(len([m for m in t.methods if m not in AUTOMATIC_METHODS])
                                              for t in tasks)
    say(f"{len(songs)} songs × {len(methods)} methods: {skipped} already in {results}, "
        f"{len(tasks)} songs to evaluate with {jobs} job(s)")

    notes: list[str] = []
    computed = 0

    def collect(outcome: SongOutcome, index: int) -> None:
        nonlocal computed
        if outcome.rows:
            _write_rows(results, outcome.rows, "a")
            rows.extend(outcome.rows)
        pairs = completed_pairs(outcome.rows)
        computed += len([p for p in pairs if p[1] not in AUTOMATIC_METHODS])
        for note in outcome.notes:
            notes.append(note)
            say(note)
        say(f"[{index}/{len(tasks)}] {outcome.song}: {', '.join(sorted(m for _, m in pairs)) or 'nothing'}")

    if jobs == 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks, 1):
            collect(evaluate_song(task), i)
    else:
        import multiprocessing

        # spawn, not fork: forking a process that already runs torch/OpenMP threads can deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker) as pool:
            futures = [pool.submit(evaluate_song, task) for task in tasks]
            for i, future in enumerate(as_completed(futures), 1):
                collect(future.result(), i)

    song_names = [s.name for s in songs]
    families: dict[str, list[str]] = {}
    for song in songs:
        if song.meta.get("family"):
            families.setdefault(str(song.meta["family"]), []).append(song.name)
    summary = write_report(out_dir, rows, song_names, methods, config, command=command, plots=plots,
                           families=families)
    return DatasetEvaluation(out_dir, song_names, methods, computed, skipped, notes, summary,
                             time.perf_counter() - started)


__all__ = [
    "DatasetEvaluation", "SongAudio", "SongTask", "check_methods", "evaluate_dataset", "evaluate_file",
    "evaluate_song", "load_song", "oracle_settings", "pair_reference", "read_results", "render_mix",
]
