"""Evaluate every method on every song of a dataset, resuming where an earlier run stopped.

:func:`evaluate_dataset` mixes every song of a dataset with every method, in memory (the
engine's render → finalize, nothing written but the settings), measures each mix
(:mod:`automix.evaluate.measure_song`) and appends the numbers to ``REPORT_DIR/results.csv``
(:mod:`automix.evaluate.results`); :mod:`automix.evaluate.report` and
:mod:`automix.evaluate.plots` turn that file into ``summary.json``, ``report.md`` and PNGs.
The folder's layout and the pseudo-methods ``target``, ``reference`` and ``oracle`` are
described in :mod:`automix.evaluate.layout`; one mix file is measured by
:func:`automix.evaluate.measure_file.evaluate_file`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from automix.console.settings import dumps
from automix.data.loaders import Song
from automix.errors import AutomixError
from automix.evaluate.layout import (
    AUTOMATIC_METHODS,
    DONE_METRIC,
    REFERENCE_METHOD,
    RESULTS_FILE,
    SETTINGS_DIR,
    TARGET_METHOD,
    settings_file,
)
from automix.evaluate.measure_song import known_truth, measure_mix, song_context
from automix.evaluate.methods import (
    MixerFactory,
    check_methods,
    direct_mix,
    method_is_direct,
    predict_settings,
    render_mix,
)
from automix.evaluate.report import write_report
from automix.evaluate.results import Row, check_config, completed_pairs, read_completed, row, write_rows
from automix.evaluate.selection import find_references, pair_reference, select_songs
from automix.evaluate.song_audio import load_at_rate, load_song, stereo
from automix.io import write_text_atomic

Log = Callable[[str], None]


# --------------------------------------------------------------------------------------
# One song, all its pending methods (runs in a worker process with --jobs > 1)
# --------------------------------------------------------------------------------------

@dataclass
class SongTask:
    """One song's pending work: what to load, which methods to mix and measure, where settings go."""

    song: Song
    methods: list[str]
    seconds: float | None
    reference: Path | None
    seed: int
    settings_dir: Path
    extra: Mapping[str, MixerFactory] | None = None
    automate: bool = True


@dataclass
class SongOutcome:
    """One song's results rows, and notes on what was skipped."""

    song: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def evaluate_song(task: SongTask) -> SongOutcome:
    """Mix one song with each pending method and measure it; the target mix too when pending."""
    outcome = SongOutcome(task.song.name)
    try:
        song = load_song(task.song, task.seconds)
        reference = stereo(load_at_rate(task.reference, song.sample_rate, "reference")) if task.reference else None
    except AutomixError as e:
        outcome.notes.append(f"skipped song {task.song.name}: {e}")
        return outcome
    # The recorded balance was measured on the whole song, not on a --seconds excerpt.
    truth = known_truth(task.song, song.stems) if task.seconds is None else None
    ctx = song_context(song, reference, truth)
    for method in task.methods:
        started = time.perf_counter()
        if method in AUTOMATIC_METHODS:
            mix = song.target if method == TARGET_METHOD else reference
            if mix is None:
                continue
        elif method_is_direct(method, task.extra):  # an end-to-end model: its audio, no settings to write
            try:
                mix = direct_mix(method, song, seed=task.seed, extra=task.extra)
            except AutomixError as e:  # e.g. more stems than its fixed inputs: this song only
                outcome.notes.append(f"{song.name}: {method} skipped: {e}")
                continue
        else:
            settings = predict_settings(method, song, seed=task.seed, reference=reference, extra=task.extra,
                                        automate=task.automate)
            if settings is None:
                outcome.notes.append(f"{song.name}: {method} needs a target mix; skipped")
                continue
            mix, rendered = render_mix(song.stems, song.sample_rate, settings)
            write_text_atomic(settings_file(task.settings_dir, song.name, method), dumps(rendered), force=True)
        rows = measure_mix(ctx, method, mix)
        rows.append(row(song.name, method, DONE_METRIC, time.perf_counter() - started))
        outcome.rows += rows
    return outcome


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # --jobs processes share the cores; one thread each avoids oversubscription


# --------------------------------------------------------------------------------------
# A dataset
# --------------------------------------------------------------------------------------

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
    automate: bool = True,
) -> DatasetEvaluation:
    """Mix every selected song with every method, measure, and write the report folder.

    Args:
        dataset: dataset root, any layout of :func:`automix.data.loaders.find_songs`.
        methods: mixer names (``rules``, ``mono``…, trained models) and/or ``oracle``.
        out_dir: report folder (``results.csv``, ``summary.json``, ``report.md``, plots).
        refs: folder of reference mixes (its ``<split>/`` sub-folder when present); each song
            is paired with one (:func:`~automix.evaluate.selection.pair_reference`) for the AF loss, and models that take
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
        automate: ride faders per section as ``automix mix`` does (False: ``--static``).

    Raises:
        AutomixError: bad options, an unknown method, a folder with results of other options.
    """
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
              "refs": str(Path(refs).resolve()) if refs is not None else None, "seed": seed,
              "automate": automate}
    check_config(out_dir, config)

    results = out_dir / RESULTS_FILE
    rows = read_completed(results)
    done = completed_pairs(rows)

    tasks = []
    for song in songs:
        pending = [m for m in [*methods] if (song.name, m) not in done]
        if ref_files and (song.name, REFERENCE_METHOD) not in done:
            pending.insert(0, REFERENCE_METHOD)
        if song.mix_path is not None and (song.name, TARGET_METHOD) not in done:
            pending.insert(0, TARGET_METHOD)
        if pending:
            ref = pair_reference(song.name, ref_files) if ref_files else None
            tasks.append(SongTask(song, pending, seconds, ref, seed, out_dir / SETTINGS_DIR, extra_mixers,
                                  automate))
    skipped = len(songs) * len(methods) - sum(len([m for m in t.methods if m not in AUTOMATIC_METHODS])
                                              for t in tasks)
    say(f"{len(songs)} songs × {len(methods)} methods: {skipped} already in {results}, "
        f"{len(tasks)} songs to evaluate with {jobs} job(s)")

    notes: list[str] = []
    computed = 0

    def collect(outcome: SongOutcome, index: int) -> None:
        nonlocal computed
        if outcome.rows:
            write_rows(results, outcome.rows, "a")
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
    "DatasetEvaluation", "SongOutcome", "SongTask", "evaluate_dataset", "evaluate_song",
    "known_truth",  # re-exported: docs/evaluation.md names it here
]
