"""Benchmark the full-song renderer against dasp-pytorch's whole-signal EQ + compressor.

Usage (from the repository root, with the project's venv)::

    .venv/bin/python benchmarks/bench_render.py [--seconds 180] [--tracks 16] [--dasp-tracks 16]

Each measurement runs in its own child process so its peak RSS (``ru_maxrss``) is its own;
the child builds the synthetic stems itself, so the RSS includes them (16 × 180 s mono
float32 = 0.51 GB). The automix run renders the *whole* console (trim, 7-section EQ,
compressor, fader, pan, sends, reverb, master EQ/compressor/gain); the dasp baseline renders
only the same EQ (its 6 bands) and compressor settings per track with
``dasp_pytorch.functional.parametric_eq`` and ``compressor`` on the whole signal, the way a
differentiable-console approach renders a song. The table is printed and written to the
``## Render`` section of ``docs/benchmarks.md`` (other sections are kept).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import numpy as np
from harness import Stopwatch, machine_line, markdown_table, peak_rss_mib, run_in_child
from run_all import replace_section  # benchmarks/ is on sys.path as the script's folder

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 44100


def make_stems(tracks: int, seconds: float, sample_rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Deterministic mono test stems: tones, noise beds and decaying hits, different per track."""
    n = int(seconds * sample_rate)
    t = np.arange(n, dtype=np.float32) / sample_rate
    rng = np.random.default_rng(0)
    stems = []
    for i in range(tracks):
        kind = i % 3
        if kind == 0:  # tonal
            x = 0.3 * np.sin(2 * np.pi * (55.0 * (i + 1)) * t, dtype=np.float32)
        elif kind == 1:  # noise bed
            x = 0.1 * rng.standard_normal(n, dtype=np.float32)
        else:  # hits every 250 ms
            phase = (t * 4.0 + i / tracks) % 1.0
            x = 0.7 * np.exp(-phase * 30.0, dtype=np.float32) * rng.standard_normal(n, dtype=np.float32)
        stems.append(x.astype(np.float32)[None])
    return stems


def make_settings(tracks: int):
    """Non-trivial settings: HPF, 3 active EQ bands, compressor, spread pans, sends, reverb."""
    from automix.console.settings import MixSettings

    rng = np.random.default_rng(1)
    s = MixSettings.neutral([f"track{i:02d}.wav" for i in range(tracks)])
    for i in range(tracks):
        s.set(i, "trim_db", float(rng.uniform(-6, 6)))
        s.set(i, "eq.highpass.freq_hz", float(rng.uniform(30, 120)))
        s.set(i, "eq.low_shelf.gain_db", float(rng.uniform(-4, 4)))
        s.set(i, "eq.band_2.gain_db", float(rng.uniform(-6, 6)))
        s.set(i, "eq.band_2.q", float(rng.uniform(0.7, 3)))
        s.set(i, "eq.high_shelf.gain_db", float(rng.uniform(-3, 3)))
        s.set(i, "compressor.threshold_db", float(rng.uniform(-30, -15)))
        s.set(i, "compressor.ratio", float(rng.uniform(2, 6)))
        s.set(i, "compressor.attack_ms", float(rng.uniform(2, 30)))
        s.set(i, "compressor.release_ms", float(rng.uniform(50, 300)))
        s.set(i, "compressor.makeup_db", float(rng.uniform(0, 6)))
        s.set(i, "gain_db", float(rng.uniform(-10, 0)))
        s.set(i, "pan", float(rng.uniform(-0.8, 0.8)))
        s.set(i, "send.reverb_db", float(rng.uniform(-24, -10)))
    s.set_fx("reverb.decay_s", 1.8)
    s.set_master("eq.band_3.gain_db", 1.5)
    s.set_master("eq.high_shelf.gain_db", 1.0)
    s.set_master("compressor.threshold_db", -12.0)
    s.set_master("compressor.ratio", 2.0)
    return s


def child_automix(tracks: int, seconds: float, workers: int) -> dict:
    """Render time (s), CPU (s) and the peak RSS before rendering (GiB) of ``render_console``."""
    from automix.console.render import render_console

    stems = make_stems(tracks, seconds)
    settings = make_settings(tracks)
    render_console([s[:, :SAMPLE_RATE] for s in stems], SAMPLE_RATE, settings, workers=workers)  # JIT warm-up
    before = peak_rss_mib() / 1024
    clock = Stopwatch()
    mix = render_console(stems, SAMPLE_RATE, settings, workers=workers)
    elapsed, cpu = clock.wall_s, clock.cpu_s
    assert np.all(np.isfinite(mix))
    return {"seconds": elapsed, "cpu_s": cpu, "rss_before_gib": before}


def child_dasp(tracks: int, seconds: float, dasp_tracks: int) -> dict:
    """Time (s) and CPU (s) of dasp's EQ + compressor on ``dasp_tracks`` tracks, scaled to ``tracks``."""
    import torch
    from dasp_pytorch import functional as F

    from automix.console.schema import TRACK

    stems = make_stems(tracks, seconds)
    settings = make_settings(tracks)

    def p(i: int, name: str) -> torch.Tensor:
        return torch.tensor([settings.track[i, TRACK.index(name)]], dtype=torch.float32)

    bands = ["band_1", "band_2", "band_3", "band_4"]
    clock = Stopwatch()
    with torch.no_grad():
        for i in range(dasp_tracks):
            x = torch.from_numpy(stems[i])[None]  # (1, 1, N)
            eq_args = [p(i, "eq.low_shelf.gain_db"), p(i, "eq.low_shelf.freq_hz"), p(i, "eq.low_shelf.q")]
            for band in bands:
                eq_args += [p(i, f"eq.{band}.gain_db"), p(i, f"eq.{band}.freq_hz"), p(i, f"eq.{band}.q")]
            eq_args += [p(i, "eq.high_shelf.gain_db"), p(i, "eq.high_shelf.freq_hz"), p(i, "eq.high_shelf.q")]
            y = F.parametric_eq(x, SAMPLE_RATE, *eq_args)
            y = F.compressor(
                y, SAMPLE_RATE, p(i, "compressor.threshold_db"), p(i, "compressor.ratio"),
                p(i, "compressor.attack_ms"), p(i, "compressor.release_ms"), p(i, "compressor.knee_db"),
                p(i, "compressor.makeup_db"),
            )
            del y
    scale = tracks / dasp_tracks
    return {"seconds": clock.wall_s * scale, "cpu_s": clock.cpu_s * scale, "measured_tracks": dasp_tracks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--tracks", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dasp-tracks", type=int, default=None,
                        help="render only this many tracks through dasp and scale the time (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    dasp_tracks = min(args.dasp_tracks or args.tracks, args.tracks)

    ours_run = run_in_child(child_automix, args.tracks, args.seconds, args.workers)
    dasp_run = run_in_child(child_dasp, args.tracks, args.seconds, dasp_tracks)
    ours, dasp = ours_run.value, dasp_run.value
    ours_rss, dasp_rss = ours_run.usage.peak_rss_gib, dasp_run.usage.peak_rss_gib
    stems_gib = args.tracks * args.seconds * SAMPLE_RATE * 4 / 2**30
    dasp_note = "" if dasp_tracks == args.tracks else f" (measured on {dasp_tracks} tracks, scaled)"
    command = "`.venv/bin/python benchmarks/bench_render.py " + " ".join(sys.argv[1:]) + "`"
    table = "\n".join([
        (f"{args.tracks} mono stems × {args.seconds:g} s at {SAMPLE_RATE} Hz, full console "
        f"(trim, HPF + 3 EQ bands, compressor, fader, pan, reverb sends, master EQ/compressor)."),
        "",
        markdown_table(
            ["renderer", "what it renders", "wall s", "× real time", "CPU s", "peak RSS (GiB)"],
            [[f"automix `render_console` (workers={args.workers})", "whole console", f"{ours['seconds']:.2f}",
              f"{args.seconds / ours['seconds']:.0f}×", f"{ours['cpu_s']:.1f}", f"{ours_rss:.2f}"],
             [f"dasp-pytorch `parametric_eq` + `compressor`{dasp_note}", "per-track EQ + compressor only",
              f"{dasp['seconds']:.2f}", f"{args.seconds / dasp['seconds']:.1f}×", f"{dasp['cpu_s']:.1f}",
              f"{dasp_rss:.2f}"]],
            align="llrrrr"),
        "",
        (f"automix is **{dasp['seconds'] / ours['seconds']:.1f}×** faster than the dasp baseline "
        f"({dasp['cpu_s'] / ours['cpu_s']:.1f}× less CPU time). "
        f"Peak RSS includes the {stems_gib:.2f} GiB of input stems each child creates and the "
        f"libraries (the dasp child imports torch, ~0.7 GiB with the CUDA build installed here; the "
        f"automix renderer does not); before "
        f"rendering, the automix child was at {ours['rss_before_gib']:.2f} GiB, so the render itself "
        f"(output + working memory) added {ours_rss - ours['rss_before_gib']:.2f} GiB."),
        "",
        (f"Machine: {machine_line()}; load average when it finished: {os.getloadavg()[0]:.1f} (wall times on a "
        f"shared machine are only an upper bound; CPU seconds are the cost). Date: "
        f"{datetime.date.today().isoformat()}. Command: {command}."),
    ])
    print(table)
    if not args.no_write:
        replace_section(ROOT / "docs" / "benchmarks.md", "Render", table)


if __name__ == "__main__":
    main()
