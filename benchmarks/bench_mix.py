"""Benchmark end-to-end ``automix mix``, style transfer, one training step, and memory scaling.

Usage (from the repository root, with the project's venv)::

    .venv/bin/python benchmarks/bench_mix.py [--tracks 16] [--seconds 180] [--skip-memory] [--quick]

Every measurement runs in its own child process, so its peak RSS (``ru_maxrss``) is its own
and includes the interpreter and imports (the ``imports only`` row shows that floor). Stems
are generated deterministically and written to a temporary folder as 24-bit WAV (every 4th
stem stereo, the rest mono: tones, noise beds, drum-like hits, stereo pads), as a DAW export
would be. Ratios are against baselines measured in the same run:

* ``mix``: the engine (load, analyse, predict with ``rules``, render, finalize, write a 24-bit
  WAV + ``mix.json``), timed inside the child after imports, vs the **I/O floor** (read every
  stem, sum them, write the result, block by block with soundfile); the CLI row is the wall
  clock of ``python -m automix mix`` including interpreter start-up and imports;
* ``style-transfer``: with and without ``--refine``, vs the plain ``mix`` above;
* training: one optimiser step (forward, console, loss, backward, AdamW) of each config in
  ``configs/`` on a random batch of the config's shape, with the config's thread count;
* memory: peak RSS of ``mix`` for 8/16/32 stems × ``--seconds`` and for 2 mono stems × 3, 15
  and 60 minutes, with a least-squares fit ``RSS = a + b · input channel-minutes + c · song
  minutes`` to extrapolate to 32 stems × 60 minutes.

Tables go to the ``## Mix``, ``## Style transfer``, ``## Training step`` and ``## Memory``
sections of ``docs/benchmarks.md`` (other sections are kept); ``--no-write`` only prints.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from harness import Stopwatch, markdown_table, run_command, run_in_child
from run_all import replace_section  # benchmarks/ is on sys.path as the script's folder

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 44100
BLOCK_SAMPLES = 1 << 20
GIB = 2**30


# --------------------------------------------------------------------------------------
# Generated stems (written block by block: an hour-long stem never sits in memory)
# --------------------------------------------------------------------------------------

def _stem_block(index: int, start: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Samples ``[start, start+n)`` of stem ``index`` as ``(channels, n)`` float32."""
    t = (start + np.arange(n)) / SAMPLE_RATE
    kind = index % 4
    if kind == 0:  # tonal: a note with two harmonics and a slow tremolo
        f = 55.0 * 2 ** ((index * 5 % 24) / 12)
        x = sum(0.2 / h * np.sin(2 * np.pi * h * f * t) for h in (1, 2, 3)) * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))
        return x[None].astype(np.float32)
    if kind == 1:  # noise bed
        return (0.05 * rng.standard_normal(n))[None].astype(np.float32)
    if kind == 2:  # drum-like hits at 120 bpm, offset per stem
        phase = (t * 2.0 + index / 7.0) % 1.0
        return (0.6 * np.exp(-phase * 25.0) * rng.standard_normal(n))[None].astype(np.float32)
    f = 110.0 * 2 ** ((index % 7) / 12)  # stereo pad: detuned sines left/right
    return np.stack([0.15 * np.sin(2 * np.pi * f * t), 0.15 * np.sin(2 * np.pi * f * 1.003 * t)]).astype(np.float32)


def write_stems(folder: Path, tracks: int, seconds: float, all_mono: bool = False) -> Path:
    """Write ``tracks`` stems of ``seconds`` as 24-bit WAV into ``folder``; returns the folder."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    total = int(seconds * SAMPLE_RATE)
    for i in range(tracks):
        index = i if not all_mono else (i // 3) * 4 + i % 3  # skip the stereo kind
        rng = np.random.default_rng(index)
        channels = _stem_block(index, 0, 1, rng).shape[0]
        with sf.SoundFile(folder / f"track{i:02d}.wav", "w", SAMPLE_RATE, channels, "PCM_24") as f:
            for start in range(0, total, BLOCK_SAMPLES):
                block = _stem_block(index, start, min(BLOCK_SAMPLES, total - start), rng)
                if index % 8 == 4 and start >= total // 2:  # a part that drops 10 dB: mix rides its fader
                    block *= np.float32(10 ** (-10 / 20))
                f.write(block.T)
    return folder


def write_reference(path: Path, seconds: float) -> Path:
    """A 'reference mix': a stereo sum of differently generated stems."""
    import soundfile as sf

    n = int(seconds * SAMPLE_RATE)
    mix = np.zeros((2, n), dtype=np.float32)
    for index in (20, 21, 22, 23, 25):
        x = _stem_block(index, 0, n, np.random.default_rng(index))
        mix += x if x.shape[0] == 2 else np.concatenate([0.8 * x, 0.6 * x])
    sf.write(path, (0.5 * mix).T, SAMPLE_RATE, subtype="PCM_24")
    return path


def subset(folder: Path, source: Path, count: int) -> Path:
    """A folder of symlinks to the first ``count`` stems of ``source``."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.wav"))[:count]:
        (folder / path.name).symlink_to(path)
    return folder


def channel_minutes(folder: Path) -> float:
    import soundfile as sf

    return sum(sf.info(str(p)).channels * sf.info(str(p)).duration for p in folder.glob("*.wav")) / 60.0


# --------------------------------------------------------------------------------------
# Children (run by run_child): each returns its timed region's wall ``seconds`` and ``cpu_s``
# --------------------------------------------------------------------------------------

def child_imports(_spec: dict) -> dict:
    import automix.console.finalize
    import automix.console.render
    import automix.engine  # noqa: F401

    return {}


def child_floor(spec: dict) -> dict:
    """Read every stem, sum to stereo, write a 24-bit WAV, block by block."""
    import soundfile as sf

    paths = sorted(Path(spec["dir"]).glob("*.wav"))
    clock = Stopwatch()
    readers = [sf.SoundFile(str(p)) for p in paths]
    frames = max(r.frames for r in readers)
    with sf.SoundFile(spec["out"], "w", SAMPLE_RATE, 2, "PCM_24") as out:
        for _ in range(0, frames, BLOCK_SAMPLES):
            total = np.zeros((BLOCK_SAMPLES, 2), dtype=np.float32)
            n = 0
            for r in readers:
                block = r.read(BLOCK_SAMPLES, dtype="float32", always_2d=True)
                total[: len(block)] += block if block.shape[1] == 2 else block * np.float32(0.7071)
                n = max(n, len(block))
            out.write(np.clip(total[:n], -1.0, 1.0))
    for r in readers:
        r.close()
    return {"seconds": clock.wall_s, "cpu_s": clock.cpu_s}


def child_mix(spec: dict) -> dict:
    child_imports(spec)
    from automix import engine

    stages: dict[str, float] = {}

    def progress(step: str, _fraction: float) -> None:
        stages.setdefault(step, time.perf_counter())  # when each stage starts

    clock = Stopwatch()
    result = engine.mix(spec["dir"], spec["out"], model=spec.get("model", "rules"), force=True, progress=progress,
                        automate=spec.get("automate", True))
    seconds, cpu_s, end = clock.wall_s, clock.cpu_s, time.perf_counter()
    names = list(stages)
    times = {n: (stages[names[i + 1]] if i + 1 < len(names) else end) - stages[n] for i, n in enumerate(names)}
    lanes = sum(len(t.get("automation", {})) for t in json.loads(Path(spec["out"]).with_suffix(".json").read_text(
        encoding="utf-8"))["tracks"].values())
    return {"seconds": seconds, "cpu_s": cpu_s, "duration_s": result.duration_s, "stages": times, "lanes": lanes}


def child_style(spec: dict) -> dict:
    child_imports(spec)
    from automix.style import style_transfer

    clock = Stopwatch()
    result = style_transfer(spec["dir"], [spec["ref"]], spec["out"], model=spec["model"],
                            refine_steps=spec["refine"], force=True)
    return {"seconds": clock.wall_s, "cpu_s": clock.cpu_s, "refine": result.refine}


def child_train(spec: dict) -> dict:
    """One optimiser step of a config on a random batch of its shape (after one warm-up step)."""
    import torch

    from automix.console.schema import FX, MASTER, TRACK
    from automix.models.checkpoint import build_model
    from automix.train.config import load_config
    from automix.train.loop import Objective

    cfg = load_config(Path(spec["config"]))
    torch.set_num_threads(cfg.threads or 2)
    torch.manual_seed(0)
    rate = cfg.data.sample_rate_hz
    n = int(cfg.data.excerpt_s * rate) // (1 if str(cfg.data.method) == "supervised" else 2)
    b, t = cfg.batch_size, cfg.data.max_tracks
    model = build_model(cfg.model.kind, {**cfg.model.sizes, "sample_rate_hz": rate})
    objective = Objective(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    batch = {
        "stems": 0.1 * torch.randn(b, t, 2, n), "is_stereo": torch.rand(b, t) < 0.3,
        "track_mask": torch.ones(b, t, dtype=torch.bool), "reference": 0.1 * torch.randn(b, 2, n),
        "target": 0.1 * torch.randn(b, 2, n),
        "track_params": TRACK.from_normalised(torch.rand(b, t, len(TRACK))),
        "fx_params": FX.from_normalised(torch.rand(b, len(FX))),
        "master_params": MASTER.from_normalised(torch.rand(b, len(MASTER))),
    }
    threads = torch.get_num_threads()
    times, cpus = [], []
    for _ in range(3):  # step 1 warms up allocators and caches
        clock = Stopwatch()
        optimizer.zero_grad(set_to_none=True)
        loss, terms = objective(model, batch)
        loss.backward()
        optimizer.step()
        times.append(clock.wall_s)
        cpus.append(clock.cpu_s)
    params = sum(p.numel() for p in model.parameters())
    return {"seconds": float(np.median(times[1:])), "cpu_s": float(np.median(cpus[1:])), "batch": b, "tracks": t, "input_s": n / rate, "rate": rate,
            "terms": sorted(terms), "params": params, "threads": threads}


def run_child(child: Callable[[dict], dict], spec: dict[str, Any]) -> dict[str, Any]:
    """Run a child measurement in its own process; returns its result plus that process's ``peak_rss_gib``."""
    run = run_in_child(child, spec)
    return {**run.value, "peak_rss_gib": run.usage.peak_rss_gib}


def run_cli(args: list[str]) -> dict[str, Any]:
    """Wall clock, CPU seconds and peak RSS of ``python -m automix ARGS`` (interpreter start-up included)."""
    run = run_command([sys.executable, "-m", "automix", *args])
    if run.returncode != 0:
        raise RuntimeError(f"automix {' '.join(args)} failed: {run.stderr[-2000:]}")
    return {"seconds": run.usage.wall_s, "cpu_s": run.usage.cpu_s, "peak_rss_gib": run.usage.peak_rss_gib}


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------

def _x(audio_s: float, seconds: float) -> str:
    return f"{audio_s / seconds:.0f}×" if audio_s / seconds >= 10 else f"{audio_s / seconds:.1f}×"


def _cost_row(what: str, r: dict, audio_s: float, base: dict) -> list[str]:
    """Cells: wall s, × real time of ``audio_s`` seconds, wall vs ``base``, CPU s, CPU vs ``base``, peak RSS GiB."""
    return [what, f"{r['seconds']:.2f}", _x(audio_s, r["seconds"]), f"{r['seconds'] / base['seconds']:.1f}×",
            f"{r['cpu_s']:.1f}", f"{r['cpu_s'] / base['cpu_s']:.1f}×", f"{r.get('peak_rss_gib', float('nan')):.2f}"]


def bench_end_to_end(stems: Path, out: Path, tracks: int, seconds: float) -> tuple[str, dict]:
    imports = run_child(child_imports, {})
    floor = run_child(child_floor, {"dir": str(stems), "out": str(out / "floor.wav")})
    # Automated and static mixes alternate, best of two each: the ratio between them is a few
    # tenths of a second, less than the noise of one run on a shared machine.
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(2):
        for automate in (False, True):
            name = "mix.wav" if automate else "static.wav"
            runs[automate].append(run_child(child_mix, {"dir": str(stems), "out": str(out / name),
                                                        "automate": automate}))
    mix, static = (min(runs[a], key=lambda r: r["cpu_s"]) for a in (True, False))
    cli = run_cli(["mix", str(stems), "-o", str(out / "cli.wav"), "--force", "--quiet"])
    table = "\n".join([
        (f"{tracks} stems × {seconds:g} s at {SAMPLE_RATE} Hz, 24-bit WAV ({tracks - tracks // 4} mono, "
        f"{tracks // 4} stereo), mixer `rules`. Wall seconds on a shared machine are an upper bound; "
        "CPU seconds (user + system, all threads) are the cost."),
        "",
        markdown_table(
            ["what", "wall s", "× real time", "wall vs I/O floor", "CPU s", "CPU vs I/O floor", "peak RSS (GiB)"],
            [_cost_row("I/O floor: read every stem, sum, write (soundfile, blockwise)", floor, seconds, floor),
             _cost_row("`engine.mix` (load, analyse, predict, render, finalize, write)", mix, seconds, floor),
             _cost_row("`engine.mix(automate=False)` (`mix --static`: no section analysis, no rides)", static,
                       seconds, floor),
             _cost_row("`python -m automix mix` (incl. interpreter start-up and imports)", cli, seconds, floor),
             ["imports only (RSS floor of every child)", *["–"] * 5, f"{imports['peak_rss_gib']:.2f}"]],
            align="lrrrrrr"),
        "",
        "Stages of `engine.mix` (wall): " + ", ".join(f"{k} {v:.2f} s" for k, v in mix["stages"].items()) + ".",
        "",
        (f"Automation: `engine.mix` wrote {mix['lanes']} fader lane(s) on these stems; it took "
         f"**{mix['seconds'] / static['seconds']:.2f}×** the static mix's wall time and "
         f"**{mix['cpu_s'] / static['cpu_s']:.2f}×** its CPU time (target ≤ 1.2×)."),
        "",
        (f"Targets: ≥ 30× real time (aim 50×) and within 4× of the I/O floor. Measured: "
        f"**{_x(seconds, mix['seconds'])}** real time (wall), **{mix['seconds'] / floor['seconds']:.1f}×** the I/O "
        f"floor in wall time and **{mix['cpu_s'] / floor['cpu_s']:.1f}×** in CPU time."),
    ])
    return table, {"mix": mix}


def bench_style(tmp: Path, stems: Path, seconds: float, mix: dict, refine_steps: int) -> str:
    from automix.models.registry import available_models  # cheap: lists checkpoint files

    model = "mst-small" if "mst-small" in available_models() else "rules"
    note = "" if model == "mst-small" else (" The `mst-small` checkpoint is not available yet, so the "
                                            "`rules` mixer gives the starting point (no MST prediction).")
    ref = write_reference(tmp / "reference.wav", 30.0)
    plain = run_child(child_style, {"dir": str(stems), "ref": str(ref), "out": str(tmp / "style0.wav"),
                                "model": model, "refine": 0})
    refined = run_child(child_style, {"dir": str(stems), "ref": str(ref), "out": str(tmp / "style1.wav"),
                                  "model": model, "refine": refine_steps})
    info = refined["refine"]
    return "\n".join([
        f"Same stems; one 30 s stereo reference (24-bit WAV); model `{model}`.{note}",
        "",
        markdown_table(
            ["what", "wall s", "× real time", "wall vs mix", "CPU s", "CPU vs mix", "peak RSS (GiB)"],
            [_cost_row("`mix` (the table above)", mix, seconds, mix),
             _cost_row("`style-transfer` (no refine)", plain, seconds, mix),
             _cost_row(f"`style-transfer --refine {refine_steps}`", refined, seconds, mix)],
            align="lrrrrrr"),
        "",
        (f"Refinement: {info.get('seconds_per_step', float('nan')):.2f} s per step (wall); AF loss "
        f"{info.get('af_before', float('nan')):.4f} → {info.get('af_after', float('nan')):.4f}."),
    ])


def bench_train() -> str:
    import yaml

    from automix.models.checkpoint_files import BALANCE_KINDS

    # The balance models learn from descriptors, not audio through the console: no step to time
    # (their whole training takes seconds to minutes; the model cards give it).
    configs = [p for p in sorted((ROOT / "configs").glob("*.yaml")) if p.stem != "smoke"
               and yaml.safe_load(p.read_text(encoding="utf-8"))["model"]["kind"] not in BALANCE_KINDS]
    if not configs:
        return "No training configs in `configs/`: skipped."
    headers = ["config", "model params", "batch × tracks × input", "loss terms", "threads", "wall s / step",
               "CPU s / step", "audio s / CPU s", "peak RSS (GiB)"]
    rows = []
    for path in configs:
        try:
            r = run_child(child_train, {"config": str(path)})
        except RuntimeError as e:
            rows.append([path.stem, f"failed: {str(e).splitlines()[-1][:80]}", *[""] * 7])
            continue
        audio_s = r["batch"] * r["input_s"]
        rows.append([path.stem, f"{r['params'] / 1e6:.2f} M",
                     f"{r['batch']} × {r['tracks']} × {r['input_s']:.3g} s @ {r['rate'] / 1000:g} kHz",
                     ", ".join(r["terms"]), r["threads"], f"{r['seconds']:.2f}", f"{r['cpu_s']:.2f}",
                     f"{audio_s / r['cpu_s']:.1f}", f"{r['peak_rss_gib']:.2f}"])
    return "\n".join([
        ("One AdamW step (forward, differentiable console where the loss needs audio, loss, backward) on a "
         "random batch of each config's shape, median of 2 after a warm-up step, with the config's "
         "thread count. Audio s / CPU s: seconds of multitrack input (batch × excerpt) per CPU second."),
        "",
        markdown_table(headers, rows, align="lrllrrrrr"),
    ])


HOUR_SESSION_RUN = (
    "32 mono stems × 60 min at 44.1 kHz, 24-bit WAV (15.2 GB as 32 files, 20.3 GB as float32), streamed: "
    "peak RSS **0.31 GiB** (target ≤ 2 GiB), 86 s wall and 138 CPU-s (42× real time; load 0.2 at the start); "
    "stages load 6.8 s, analyse 15.0 s, render 45.1 s, finalize 13.0 s, write 6.1 s. Command: "
    "`.venv/bin/python benchmarks/bench_mix.py --hour-session` (6 generated stems hard-linked to 32 names, "
    "`engine.mix` in a child process reporting `ru_maxrss`), 2026-12-04 (AMD EPYC, 2 cores), code of a5aba64. "
    "Earlier: 0.27 GiB, 198 s under load 1–1.7 on 2026-11-22 (code of b87a039); with the code of "
    "ba83e10 (before the load/render rewrite) the same session peaked at 1.09 GiB (16-bit stems, 479 s under "
    "load 2–6). Not part of `make bench` (2.9 GB of scratch stems, ~2–5 minutes)."
)
"""The issue's memory target, measured with ``--hour-session``; the series above is the rerun check."""


def bench_hour_session(tmp: Path, tracks: int = 32, distinct: int = 6, minutes: float = 60.0) -> dict[str, Any]:
    """The memory target's session: ``tracks`` mono stems × ``minutes``, streamed, in a child process.

    Only ``distinct`` stems are generated (writing 32 hour-long files would take longer than the mix);
    the rest are hard links to them. The reader does not memory-map, so shared pages do not lower RSS.
    """
    source = write_stems(tmp / "hour_source", distinct, minutes * 60.0, all_mono=True)
    folder = tmp / "hour_stems"
    folder.mkdir()
    files = sorted(source.iterdir())
    for i in range(tracks):
        os.link(files[i % len(files)], folder / f"track{i:02d}.wav")
    return run_child(child_mix, {"dir": str(folder), "out": str(tmp / "hour_mix.wav")})


def _streams(folder: Path) -> bool:
    from automix.engine import STREAM_ABOVE_BYTES, decoded_bytes
    from automix.io import scan_folder

    files, _ = scan_folder(folder)
    return decoded_bytes(files) > STREAM_ABOVE_BYTES


def bench_memory(tmp: Path, stems_all: Path, seconds: float, counts: list[int], minutes: list[float],
                 length_tracks: int, known: dict[int, dict]) -> str:
    """Peak RSS vs stem count and song length; ``known`` holds runs already made (by stem count)."""
    points = []  # (label, channel-minutes, song minutes, streamed, result)
    for count in counts:
        folder = subset(tmp / f"count{count}", stems_all, count)
        r = known.get(count) or run_child(child_mix, {"dir": str(folder), "out": str(tmp / f"mem{count}.wav")})
        points.append((f"{count} stems × {seconds / 60:.3g} min", channel_minutes(folder), seconds / 60,
                       _streams(folder), r))
    for m in minutes:
        folder = write_stems(tmp / f"len{m:g}", length_tracks, m * 60.0, all_mono=True)
        streamed = _streams(folder)
        r = run_child(child_mix, {"dir": str(folder), "out": str(tmp / f"len{m:g}.wav")})
        points.append((f"{length_tracks} mono stems × {m:g} min", channel_minutes(folder), m, streamed, r))
        shutil.rmtree(folder)  # an hour of stems is gigabytes of disk
        (tmp / f"len{m:g}.wav").unlink(missing_ok=True)
    lines = [("Peak RSS of `engine.mix` with `rules` (child process, `ru_maxrss`), stems as 24-bit WAV. Sessions "
             "whose stems decode to more than 1 GiB of float32 are streamed from disk (`STREAM_ABOVE_BYTES`); "
             "smaller ones are loaded."), "",
             markdown_table(
                 ["input", "input channel-minutes", "path", "wall s", "CPU s", "× real time", "peak RSS (GiB)"],
                 [[label, f"{cm:.3g}", "streamed" if streamed else "in memory", f"{r['seconds']:.1f}",
                   f"{r['cpu_s']:.1f}", _x(r["duration_s"], r["seconds"]), f"{r['peak_rss_gib']:.2f}"]
                  for label, cm, _, streamed, r in points],
                 align="lrlrrrr")]
    loaded = [(cm, r["peak_rss_gib"]) for _, cm, _, streamed, r in points if not streamed]
    streamed_rss = [r["peak_rss_gib"] for *_, streamed, r in points if streamed]
    lines.append("")
    if len(loaded) >= 2:
        slope, base = np.polyfit([cm for cm, _ in loaded], [g for _, g in loaded], 1)
        lines.append(f"In memory: peak RSS ≈ {base:.2f} GiB + {slope * 1024:.1f} MiB × input channel-minutes "
                     "(a mono 44.1 kHz float32 minute is 10.1 MiB), which is why long sessions are streamed.")
    if streamed_rss:
        lines.append(f"Streamed: peak RSS {min(streamed_rss):.2f}–{max(streamed_rss):.2f} GiB over "
                     f"{len(streamed_rss)} sessions of different sizes and lengths: it does not grow with song length.")
    lines += ["", f"Hour-long session (the target): {HOUR_SESSION_RUN}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--refine", type=int, default=None, help="refine steps (default: the CLI default)")
    parser.add_argument("--minutes", default="3,15,60", help="song lengths of the memory series")
    parser.add_argument("--counts", default="8,16,32", help="stem counts of the memory series")
    parser.add_argument("--length-tracks", type=int, default=2, help="mono stems in the length series")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-style", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, prints only (development)")
    parser.add_argument("--hour-session", action="store_true",
                        help="only the 32 × 60 min streamed session (needs ~3 GB of scratch disk); prints its result")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()

    if args.hour_session:
        scratch = Path(tempfile.mkdtemp(prefix="automix-bench-hour-"))
        try:
            load = os.getloadavg()[0]
            print(json.dumps({**bench_hour_session(scratch), "load_average_at_start": load}, indent=1))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    if args.quick:
        args.tracks, args.seconds, args.no_write = 4, 10.0, True
        args.minutes, args.counts, args.length_tracks = "0.2,0.5", "2,4", 2
        args.refine = 2 if args.refine is None else args.refine
    if args.refine is None:
        from automix.refine import DEFAULT_REFINE_STEPS

        args.refine = DEFAULT_REFINE_STEPS
    minutes = [float(m) for m in args.minutes.split(",") if m]
    counts = [int(c) for c in args.counts.split(",") if c]
    command = "`.venv/bin/python benchmarks/bench_mix.py" + "".join(f" {a}" for a in sys.argv[1:]) + "`"
    sections: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="automix-bench-"))
    try:
        load = os.getloadavg()[0]
        started = time.perf_counter()
        stems_all = write_stems(tmp / "stems_all", max([args.tracks, *counts]), args.seconds)
        stems = subset(tmp / "stems", stems_all, args.tracks)
        table, info = bench_end_to_end(stems, tmp, args.tracks, args.seconds)
        sections["Mix (end to end)"] = table
        if not args.skip_style:
            sections["Style transfer"] = bench_style(tmp, stems, args.seconds, info["mix"], args.refine)
        if not args.skip_train:
            sections["Training step"] = bench_train()
        if not args.skip_memory:
            sections["Memory"] = bench_memory(tmp, stems_all, args.seconds, counts, minutes, args.length_tracks,
                                              {args.tracks: info["mix"]})
        footer = (f"\n\nCommand: {command}; {datetime.date.today().isoformat()}; load average "
                  f"{load:.1f} at the start ({os.cpu_count()} cores, shared with other jobs); "
                  f"{time.perf_counter() - started:.0f} s for the whole script.")
        for title in sections:
            sections[title] += footer
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for title, body in sections.items():
        print(f"## {title}\n\n{body}\n")
        if not args.no_write:
            replace_section(ROOT / "docs" / "benchmarks.md", title, body)


if __name__ == "__main__":
    main()
