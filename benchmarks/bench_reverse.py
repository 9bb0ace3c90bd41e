"""Benchmark ``automix reverse`` on held-out synthetic songs with known random settings.

Usage (from the repository root, with the project's venv)::

    .venv/bin/python benchmarks/bench_reverse.py full --songs 4 [--steps 60] [--first 0]
        [--only song_00011,...] [--out /tmp/bench_reverse] [--table docs-table.md]

Protocol, per song of ``data/synth/test`` (held out from training), in sorted order:

* the first 8 stems, a 10 s excerpt (5–15 s), every stem trimmed to −23 LUFS (stems quieter
  than −60 LUFS there are dropped; songs with fewer than 3 stems are skipped);
* known settings drawn by :mod:`automix.data.random_params` with the generator
  ``default_rng(100 + index)`` (``index`` counts songs from the start of the split, so a song
  always gets the same settings whatever ``--first``/``--only`` select);
  ``basic`` keeps only faders, pans, widths and sends of ``random_track_params`` plus
  ``random_fx_params``; ``full`` uses the whole console (EQ on every strip, compressors on
  half of them, sends, reverb, master EQ and glue compressor); ``nocomp`` is ``full`` with every
  compressor (track and master) reset to neutral, the same draws otherwise;
* the mix rendered by the full-song renderer and written as a 32-bit float WAV; where it would
  peak above :data:`MIX_PEAK_DBTP`, the truth's master output gain is lowered so it peaks there
  (an engineer pulls the master down before export: a mix file cannot exceed full scale, and
  ``automix render`` never writes one that does, so such a target could not be re-rendered);
* :func:`automix.reverse.reverse` on the files, exactly as ``automix reverse`` runs it.

Scores per song: median and max |fader error| in dB against the *effective* fader
``gain_db + compressor.makeup_db + master (gain_db + compressor.makeup_db)`` of the truth
(make-up is a pure gain after a compressor and the master's output gain and make-up are common
gains after the master bus, so they are indistinguishable from the fader; ``reverse`` keeps
them at 0), median |pan error|, the
residual of the re-rendered JSON (renderer + finalize, as ``automix render``) against the mix
(and, as the floor the protocol allows, the residual of the *true* settings re-rendered the
same way, with the level targets ``reverse`` writes),
and the *track level* error: each track rendered alone (EQ → compressor → fader → pan → master output gain and make-up,
no send, no master EQ or compressor) with the true and with the fitted settings, |difference of their RMS levels| in dB.
Where a fader error comes from: per track, the fitted minus the true broadband gain of the EQ on
the stem (solo level with the EQ minus with a flat EQ) and of the compressor (solo level with it
bypassed minus with it); the fader error is about the track level error minus the first plus the
second. Whether a compressor can be seen at all: each compressed track rendered alone with the
truth, and with its compressor bypassed and the best single gain (least squares on the samples);
the *plain-gain residual* of that fit (dB) and its gain (the *plain-gain offset*, dB). A plain gain
that explains the track to below the bar's −20 dB residual moves the fader by the offset without
the mix showing it. ``--rescore`` recomputes the scores of an earlier run from its ``fit.json`` files;
``--oracle-compressors`` starts ``reverse`` from the true track compressors and faders (everything
else as ``reverse`` starts it), an upper bound on what finding the compressors can give.
Results go to ``OUT/results.json`` and a markdown table to ``OUT/table.md`` (and ``--table``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from harness import Stopwatch, markdown_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the repository's automix

from automix.console.loudness import integrated_lufs, true_peak_dbtp
from automix.console.render import render_console
from automix.console.schema import FINALIZE, MASTER, TRACK
from automix.console.settings import MixSettings, load_params
from automix.data.random_params import random_fx_params, random_master_params, random_track_params

SONGS_DIR = ROOT / "data" / "synth" / "test"
SAMPLE_RATE = 44100
MAX_STEMS = 8
EXCERPT_S = (5.0, 15.0)
STEM_LUFS = -23.0
MIX_PEAK_DBTP = -1.0
SEED_BASE = 100
CONDITIONS = ("basic", "nocomp", "full")


@dataclass
class Case:
    """One benchmark song: stems (``(C, n)`` float32), their file names, the true settings, the mix."""

    song: str
    names: list[str]
    stems: list[np.ndarray]
    truth: MixSettings
    mix: np.ndarray


@dataclass
class SongScore:
    song: str
    stems: int
    stereo: int
    median_gain_err_db: float
    max_gain_err_db: float
    median_pan_err: float
    median_level_err_db: float
    residual_db_initial: float
    residual_db_truth: float
    residual_db: float
    seconds: float
    start: str
    gain_err_db: list[float]
    pan_err: list[float]
    level_err_db: list[float]
    compressed: list[bool]
    true_reduction_db: list[float]
    eq_gain_diff_db: list[float]
    reduction_diff_db: list[float]
    plain_gain_residual_db: list[float]
    plain_gain_offset_db: list[float]


def load_excerpts(song_dir: Path) -> tuple[list[str], list[np.ndarray]]:
    """The benchmark's stems of one song (see the module docstring), names ending in ``.wav``."""
    lo, hi = (int(s * SAMPLE_RATE) for s in EXCERPT_S)
    names, stems = [], []
    for path in sorted((song_dir / "stems").iterdir())[:MAX_STEMS]:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        if rate != SAMPLE_RATE:
            raise SystemExit(f"{path}: expected {SAMPLE_RATE} Hz, got {rate}")
        audio = audio.T[:, lo:hi]
        lufs = integrated_lufs(audio, SAMPLE_RATE)
        if lufs < -60.0:
            continue
        stems.append((audio * 10.0 ** ((STEM_LUFS - lufs) / 20.0)).astype(np.float32))
        names.append(path.stem + ".wav")
    return names, stems


def true_settings(condition: str, names: list[str], stems: list[np.ndarray], seed: int) -> MixSettings:
    """Known random settings of one song (``condition`` ``basic`` or ``full``)."""
    rng = np.random.default_rng(seed)
    is_stereo = np.array([a.shape[0] == 2 for a in stems])
    drawn = random_track_params(rng, is_stereo)
    truth = MixSettings.neutral(names)
    truth.fx = random_fx_params(rng)
    if condition == "basic":
        for name in ("gain_db", "pan", "width", "send.reverb_db"):
            truth.track[:, TRACK.index(name)] = drawn[:, TRACK.index(name)]
        return truth
    truth.track = drawn
    truth.master = random_master_params(rng)
    if condition == "nocomp":
        for group, values in ((TRACK, truth.track), (MASTER, truth.master)):
            columns = [i for i, n in enumerate(group.names) if n.startswith("compressor.")]
            values[..., columns] = group.defaults()[columns]
    return truth


def make_case(condition: str, index: int) -> Case | None:
    """Song number ``index`` of the test split as a benchmark case (None if it has < 3 usable stems)."""
    song_dir = sorted(p for p in SONGS_DIR.iterdir() if p.is_dir())[index]
    names, stems = load_excerpts(song_dir)
    if len(stems) < 3:
        return None
    truth = true_settings(condition, names, stems, SEED_BASE + index)
    mix = render_console(stems, SAMPLE_RATE, truth)
    peak_dbtp = float(true_peak_dbtp(mix, SAMPLE_RATE))
    if peak_dbtp > MIX_PEAK_DBTP:
        truth.master[MASTER.index("gain_db")] += MIX_PEAK_DBTP - peak_dbtp
        mix = render_console(stems, SAMPLE_RATE, truth)
    return Case(song_dir.name, names, stems, truth, mix)


def master_output_db(settings: MixSettings) -> float:
    """The master bus's pure gains, dB: its output gain and its compressor's make-up (a gain after
    the compressor), which the mix cannot tell from a common fader move."""
    return float(settings.master[MASTER.index("gain_db")] + settings.master[MASTER.index("compressor.makeup_db")])


def track_levels_db(stems: list[np.ndarray], settings: MixSettings) -> np.ndarray:
    """RMS level (dB) of every track rendered alone: strip up to pan, no send, master bus neutral except its
    output gain and make-up."""
    solo = MixSettings.neutral(settings.track_names)
    solo.track = settings.track.copy()
    solo.track[:, TRACK.index("send.reverb_db")] = TRACK.spec("send.reverb_db").minimum
    solo.master = MASTER.defaults()
    _, tracks = render_console(stems, SAMPLE_RATE, solo, return_tracks=True)  # per track, before the master bus
    levels = np.array([10.0 * np.log10(np.mean(t.astype(np.float64) ** 2) + 1e-20) for t in tracks])
    # The master's pure gains act as a common fader (see the module docstring): count them.
    return levels + master_output_db(settings)


def _with(settings: MixSettings, **columns: float) -> MixSettings:
    out = MixSettings.neutral(settings.track_names)
    out.track = settings.track.copy()
    out.master = settings.master.copy()  # track_levels_db counts the master output gain and make-up
    for name, value in columns.items():
        out.track[:, TRACK.index(name.replace("__", "."))] = value
    return out


def compressor_reduction_db(stems: list[np.ndarray], settings: MixSettings) -> np.ndarray:
    """How much each track's compressor lowers its level (dB, ≥ 0): solo level with it bypassed minus with it."""
    return track_levels_db(stems, _with(settings, compressor__ratio=1.0)) - track_levels_db(stems, settings)


def eq_gain_db(stems: list[np.ndarray], settings: MixSettings) -> np.ndarray:
    """Each track's broadband EQ gain on its own stem (dB): solo level with its EQ minus with a flat EQ
    (compressor bypassed, same fader and pan)."""
    bypassed = _with(settings, compressor__ratio=1.0)
    flat = _with(bypassed)
    eq_columns = [i for i, n in enumerate(TRACK.names) if n.startswith("eq.")]
    flat.track[:, eq_columns] = TRACK.defaults()[eq_columns]
    return track_levels_db(stems, bypassed) - track_levels_db(stems, flat)


def plain_gain_fits(stems: list[np.ndarray], settings: MixSettings) -> tuple[np.ndarray, np.ndarray]:
    """Per track: residual (dB) and gain (dB) of the best single gain on the compressor-bypassed solo track.

    Tracks without a compressor get ``(-inf, 0)``: the bypass changes nothing.
    """
    solo = _with(settings, send__reverb_db=TRACK.spec("send.reverb_db").minimum)
    _, tracks = render_console(stems, SAMPLE_RATE, solo, return_tracks=True)
    _, bypassed = render_console(stems, SAMPLE_RATE, _with(solo, compressor__ratio=1.0), return_tracks=True)
    residual, offset = [], []
    for t, b, ratio in zip(tracks, bypassed, settings.track[:, TRACK.index("compressor.ratio")]):
        t, b = t.astype(np.float64).ravel(), b.astype(np.float64).ravel()
        if ratio <= 1.0:
            residual.append(-np.inf)
            offset.append(0.0)
            continue
        gain = float(t @ b / max(b @ b, 1e-30))
        residual.append(10.0 * np.log10(np.sum((t - gain * b) ** 2) / max(t @ t, 1e-30) + 1e-30))
        offset.append(20.0 * np.log10(max(abs(gain), 1e-10)))
    return np.array(residual), np.array(offset)


def truth_residual_db(case: Case) -> float:
    """Residual of the true settings re-rendered as ``reverse`` writes them (renderer + finalize at the
    mix's own level targets): what a perfect fit would score."""
    from automix.reverse import level_targets, render_fit, residual_db

    truth = MixSettings.neutral(case.names)
    truth.track, truth.fx, truth.master = case.truth.track, case.truth.fx, case.truth.master
    lufs, ceiling = level_targets(case.mix, SAMPLE_RATE)
    truth.finalize[FINALIZE.index("target_lufs")] = lufs
    truth.finalize[FINALIZE.index("ceiling_dbtp")] = ceiling
    return residual_db(render_fit(case.stems, truth, SAMPLE_RATE), case.mix)


def score(case: Case, fit: MixSettings, residual_db_initial: float, residual_db: float, seconds: float,
          start: str) -> SongScore:
    """Compare fitted settings with the truth (see the module docstring for each number)."""
    gain, pan, makeup = (TRACK.index(n) for n in ("gain_db", "pan", "compressor.makeup_db"))
    truth = case.truth.track
    gain_err = np.abs(fit.track[:, gain] + fit.track[:, makeup] + master_output_db(fit)
                      - truth[:, gain] - truth[:, makeup] - master_output_db(case.truth))
    pan_err = np.abs(fit.track[:, pan] - truth[:, pan])
    level_err = np.abs(track_levels_db(case.stems, fit) - track_levels_db(case.stems, case.truth))
    true_reduction = compressor_reduction_db(case.stems, case.truth)
    plain_residual, plain_offset = plain_gain_fits(case.stems, case.truth)
    return SongScore(
        song=case.song, stems=len(case.stems), stereo=sum(a.shape[0] == 2 for a in case.stems),
        median_gain_err_db=float(np.median(gain_err)), max_gain_err_db=float(gain_err.max()),
        median_pan_err=float(np.median(pan_err)), median_level_err_db=float(np.median(level_err)),
        residual_db_initial=residual_db_initial, residual_db=residual_db, residual_db_truth=truth_residual_db(case),
        seconds=seconds, start=start,
        gain_err_db=gain_err.round(2).tolist(), pan_err=pan_err.round(3).tolist(),
        level_err_db=level_err.round(2).tolist(),
        compressed=(truth[:, TRACK.index("compressor.ratio")] > 1.0).tolist(),
        true_reduction_db=true_reduction.round(2).tolist(),
        eq_gain_diff_db=(eq_gain_db(case.stems, fit) - eq_gain_db(case.stems, case.truth)).round(2).tolist(),
        reduction_diff_db=(compressor_reduction_db(case.stems, fit) - true_reduction).round(2).tolist(),
        plain_gain_residual_db=plain_residual.round(1).tolist(), plain_gain_offset_db=plain_offset.round(2).tolist(),
    )


def rescore_case(case: Case, out: Path, previous: dict) -> SongScore:
    """Score an earlier run's ``fit.json`` again (residuals and time taken from ``previous``)."""
    fit = load_params(out / case.song / "fit.json")
    return score(case, fit, previous["residual_db_initial"], previous["residual_db"], previous["seconds"],
                 previous.get("start", "?"))


ORACLE_COLUMNS = ("compressor.threshold_db", "compressor.ratio", "compressor.attack_ms", "compressor.release_ms",
                  "compressor.knee_db")


def oracle_compressors(case: Case):
    """A context in which ``reverse`` starts from the true track compressors and effective faders (an
    upper bound on what finding compressors can give; EQ, pans, sends and the master as ``reverse``
    starts them)."""
    from automix.reverse import command

    original = command.choose_start

    def start_with_truth(*args, **kwargs):
        settings, name, residuals = original(*args, **kwargs)
        for column in ORACLE_COLUMNS:
            settings.track[:, TRACK.index(column)] = case.truth.track[:, TRACK.index(column)]
        settings.track[:, TRACK.index("gain_db")] = (case.truth.track[:, TRACK.index("gain_db")]
                                                     + case.truth.track[:, TRACK.index("compressor.makeup_db")]
                                                     + master_output_db(case.truth) - master_output_db(settings))
        return settings, name + "+oracle", residuals

    @contextlib.contextmanager
    def patched():
        command.choose_start = start_with_truth
        try:
            yield
        finally:
            command.choose_start = original

    return patched()


def run_case(case: Case, out: Path, steps: int, oracle: bool = False) -> SongScore:
    """Write the case's stems and mix under ``out/<song>``, run ``reverse`` on them and score it
    (``oracle``: from the true compressors and faders, see :func:`oracle_compressors`)."""
    from automix.reverse import reverse

    folder = out / case.song
    stems_dir = folder / "stems"
    stems_dir.mkdir(parents=True, exist_ok=True)
    for name, audio in zip(case.names, case.stems):
        sf.write(str(stems_dir / name), audio.T, SAMPLE_RATE, subtype="FLOAT")
    mix_file = folder / "mix.wav"
    sf.write(str(mix_file), case.mix.T, SAMPLE_RATE, subtype="FLOAT")
    clock = Stopwatch()
    with oracle_compressors(case) if oracle else contextlib.nullcontext():
        result = reverse(stems_dir, mix_file, folder / "fit.json", steps=steps, force=True)
    return score(case, load_params(folder / "fit.json"), result.residual_db_initial, result.residual_db,
                 clock.wall_s, result.start)


def summarise(rows: list[SongScore]) -> dict[str, float]:
    """Medians over all tracks (gain, pan, level) and over songs (residual, seconds)."""
    def all_tracks(key: str) -> np.ndarray:
        return np.concatenate([getattr(r, key) for r in rows])

    compressed = np.concatenate([r.compressed for r in rows]).astype(bool)
    gain_err = all_tracks("gain_err_db")

    def median(x: np.ndarray) -> float:
        return float(np.median(x)) if len(x) else float("nan")

    return {
        "songs": len(rows), "tracks": int(sum(r.stems for r in rows)),
        "median_gain_err_db_uncompressed": median(gain_err[~compressed]),
        "median_gain_err_db_compressed": median(gain_err[compressed]),
        "median_true_reduction_db_compressed": median(all_tracks("true_reduction_db")[compressed]),
        "compressed_tracks": int(compressed.sum()),
        "median_abs_eq_gain_diff_db": median(np.abs(all_tracks("eq_gain_diff_db"))),
        "median_abs_reduction_diff_db_compressed": median(np.abs(all_tracks("reduction_diff_db"))[compressed]),
        "compressed_hidden_by_plain_gain": int((all_tracks("plain_gain_residual_db")[compressed] <= -20.0).sum()),
        "median_plain_gain_residual_db_compressed": median(all_tracks("plain_gain_residual_db")[compressed]),
        "median_abs_plain_gain_offset_db_compressed": median(np.abs(all_tracks("plain_gain_offset_db"))[compressed]),
        "median_gain_err_db": float(np.median(all_tracks("gain_err_db"))),
        "median_pan_err": float(np.median(all_tracks("pan_err"))),
        "median_level_err_db": float(np.median(all_tracks("level_err_db"))),
        "residual_db_median": float(np.median([r.residual_db for r in rows])),
        "residual_db_worst": float(max(r.residual_db for r in rows)),
        "residual_db_initial_median": float(np.median([r.residual_db_initial for r in rows])),
        "residual_db_truth_worst": float(max(r.residual_db_truth for r in rows)),
        "seconds_median": float(np.median([r.seconds for r in rows])),
    }


def results_table(rows: list[SongScore], summary: dict[str, float]) -> str:
    """The per-song table with an all-tracks row, and a paragraph on compressed tracks when there are any."""
    s = summary
    cells = [[r.song, r.stems, r.start, f"{r.median_gain_err_db:.2f}", f"{r.median_pan_err:.3f}",
              f"{r.median_level_err_db:.2f}",
              f"{r.residual_db_initial:.1f} → {r.residual_db:.1f} ({r.residual_db_truth:.0f})", f"{r.seconds:.0f}"]
             for r in rows]
    cells.append(["**all tracks**", s["tracks"], "", f"**{s['median_gain_err_db']:.2f}**",
                  f"**{s['median_pan_err']:.3f}**", f"{s['median_level_err_db']:.2f}",
                  (f"median **{s['residual_db_median']:.1f}**, worst {s['residual_db_worst']:.1f} "
                   f"(truth ≤ {s['residual_db_truth_worst']:.0f})"), f"{s['seconds_median']:.0f}"])
    lines = [markdown_table(["song", "stems", "start", "median gain err dB", "median pan err", "track level err dB",
                             "residual start → fit dB (truth)", "s"], cells)]
    if s["compressed_tracks"]:
        lines += ["", (f"Fader error: {s['tracks'] - s['compressed_tracks']} tracks without a compressor "
                       f"{s['median_gain_err_db_uncompressed']:.2f} dB (median), {s['compressed_tracks']} compressed "
                       f"tracks {s['median_gain_err_db_compressed']:.2f} dB; their compressors take "
                       f"{s['median_true_reduction_db_compressed']:.1f} dB off the track's level (median). "
                       f"Fitted − true broadband EQ gain on the stem: median |Δ| {s['median_abs_eq_gain_diff_db']:.2f} dB; "
                       f"compressor gain reduction on the compressed tracks: median |Δ| "
                       f"{s['median_abs_reduction_diff_db_compressed']:.2f} dB. A plain gain in place of the "
                       f"compressor explains {s['compressed_hidden_by_plain_gain']} of the {s['compressed_tracks']} "
                       f"compressed tracks to ≤ −20 dB (median plain-gain residual "
                       f"{s['median_plain_gain_residual_db_compressed']:.1f} dB) with the fader "
                       f"{s['median_abs_plain_gain_offset_db_compressed']:.2f} dB off (median |offset|).")]
    return re.sub(r"-(?=\d)", "−", "\n".join(lines)) + "\n"  # typographic minus, as in the docs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("condition", choices=CONDITIONS)
    parser.add_argument("--songs", type=int, default=4, help="how many usable songs to run")
    parser.add_argument("--first", type=int, default=0, help="index of the first song in the test split")
    parser.add_argument("--only", default="", help="comma-separated song names (others are skipped)")
    parser.add_argument("--steps", type=int, default=None, help="optimisation steps (default: reverse's default)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_reverse"))
    parser.add_argument("--table", type=Path, default=None, help="also write the markdown table here")
    parser.add_argument("--rescore", action="store_true", help="score the fit.json files of an earlier run again")
    parser.add_argument("--oracle-compressors", action="store_true",
                        help="start from the true track compressors and faders (an upper bound; results in OUT/<condition>-oracle)")
    args = parser.parse_args(argv)

    from automix.reverse import DEFAULT_REVERSE_STEPS

    steps = DEFAULT_REVERSE_STEPS if args.steps is None else args.steps
    out = args.out / (args.condition + ("-oracle" if args.oracle_compressors else ""))
    out.mkdir(parents=True, exist_ok=True)
    only = {s for s in args.only.split(",") if s}
    previous = {}
    if args.rescore:
        previous = {r["song"]: r for r in json.loads((out / "results.json").read_text())["songs"]}
    rows: list[SongScore] = []
    index = args.first
    count = len([p for p in SONGS_DIR.iterdir() if p.is_dir()])
    while len(rows) < args.songs and index < count:
        song = sorted(p.name for p in SONGS_DIR.iterdir() if p.is_dir())[index]
        skip = (only and song not in only) or (args.rescore and song not in previous)
        case = None if skip else make_case(args.condition, index)
        index += 1
        if case is None:
            continue
        row = rescore_case(case, out, previous[song]) if args.rescore else run_case(case, out, steps, args.oracle_compressors)
        rows.append(row)
        print(json.dumps(asdict(row)), flush=True)
    if not rows:
        raise SystemExit("no songs ran")
    summary = {"condition": args.condition, "steps": steps, **summarise(rows)}
    table = results_table(rows, summary)
    (out / "results.json").write_text(json.dumps({"summary": summary, "songs": [asdict(r) for r in rows]}, indent=2))
    (out / "table.md").write_text(table)
    if args.table is not None:
        args.table.write_text(table)
    print("SUMMARY", json.dumps(summary), flush=True)
    print(table)


if __name__ == "__main__":
    main()
