"""Run every benchmark in ``benchmarks/`` and assemble ``docs/benchmarks.md`` (``make bench``).

Usage (from the repository root)::

    .venv/bin/python benchmarks/run_all.py [--only bench_mix] [--quick] [--timeout 2400]

Each ``benchmarks/bench_*.py`` runs in its own subprocess (its arguments below) and writes its
own ``## …`` sections of ``docs/benchmarks.md``; this script writes the ``## Machine`` section
at the top (CPU model, cores, RAM, versions, date, the commands it ran and how long each
took). Sections of benchmarks that were not run this time are kept as they were, so
regenerating one benchmark (``--only``) leaves the others' tables alone.

:func:`replace_section` is the one place that edits the file; benchmark scripts import it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
import time
from pathlib import Path

from harness import machine_line, markdown_table, run_command

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
TITLE = "# Benchmarks"
INTRO = ("Speed and memory of automix on generated stems, each compared with a baseline measured in the "
         "same run. Regenerate with `make bench` (all, under 15 minutes on 2 cores) or "
         "`.venv/bin/python benchmarks/run_all.py --only NAME` (one benchmark; the other sections stay).")

BENCHMARK_ARGS: dict[str, list[str]] = {
    # dasp-pytorch's compressor is a per-sample loop: 2 tracks measured, time scaled to all 16.
    "bench_render": ["--dasp-tracks", "2"],
    "bench_mix": [],
}
"""Arguments per benchmark script (scripts not listed run with none)."""

NOT_SPEED_BENCHMARKS = {
    # Accuracy on the held-out synthetic songs (needs `make data`, minutes per song); its numbers
    # live in docs/style-transfer.md. Run it on its own: see that page.
    "bench_reverse",
}
"""Scripts in ``benchmarks/`` that ``make bench`` does not run (``--only`` still can)."""

QUICK_ARGS: dict[str, list[str]] = {
    "bench_render": ["--seconds", "10", "--tracks", "4", "--no-write"],
    "bench_mix": ["--quick"],
}


def replace_section(path: Path, title: str, body: str, *, first: bool = False) -> None:
    """Set the ``## title`` section of ``path`` to ``body``; other sections are kept.

    A new section goes at the end, or right after the intro with ``first``. The file is
    created with the ``# Benchmarks`` title when missing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else f"{TITLE}\n\n{INTRO}\n"
    section = f"## {title}\n\n{body.rstrip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    elif first and re.search(r"^## ", text, re.MULTILINE):
        start = re.search(r"^## ", text, re.MULTILINE).start()
        text = text[:start] + section + "\n" + text[start:]
    else:
        text = text.rstrip() + "\n\n" + section
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text.rstrip() + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _ensure_intro(path: Path) -> None:
    """The title and intro paragraph at the top of ``path`` (sections written by others are kept)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if INTRO in text:
        return
    rest = text.split("\n", 1)[1] if text.startswith(TITLE) else text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{TITLE}\n\n{INTRO}\n\n{rest.strip()}\n", encoding="utf-8")


def library_versions() -> str:
    """Versions of the libraries the benchmarks lean on, as the venv's interpreter imports them."""
    versions = run_command(
        [sys.executable, "-c", ("import numpy, scipy, torch, soundfile; "
         "print(f'numpy {numpy.__version__}, scipy {scipy.__version__}, torch {torch.__version__}, "
         "soundfile {soundfile.__version__}')")]).stdout.strip()
    return versions or "unknown"


def discover(only: list[str] | None) -> list[Path]:
    scripts = sorted(p for p in (ROOT / "benchmarks").glob("bench_*.py"))
    if not only:
        return [p for p in scripts if p.stem not in NOT_SPEED_BENCHMARKS]
    names = {Path(o).stem for o in only}
    unknown = names - {p.stem for p in scripts}
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have "
                         f"{', '.join(p.stem for p in scripts)}")
    return [p for p in scripts if p.stem in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", help="run only this benchmark (repeatable), e.g. bench_mix")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, docs untouched (development)")
    parser.add_argument("--timeout", type=float, default=2400.0, help="seconds per benchmark before it is stopped")
    args = parser.parse_args()

    if not args.quick:
        _ensure_intro(DOC)
    runs = []
    started_all = time.perf_counter()
    for script in discover(args.only):
        extra = (QUICK_ARGS if args.quick else BENCHMARK_ARGS).get(script.stem, [])
        command = ["benchmarks/" + script.name, *extra]
        print(f"== {' '.join(command)}", flush=True)
        run = run_command([sys.executable, *command], capture=False, timeout=args.timeout)
        if run.timed_out:
            status = f"stopped after {args.timeout:.0f} s"
        else:
            status = "ok" if run.returncode == 0 else f"failed (exit {run.returncode})"
        runs.append((command, run.usage.wall_s, status))
        print(f"== {script.name}: {status} in {run.usage.wall_s:.0f} s", flush=True)

    lines = [
        f"- CPU: {machine_line()}",
        f"- Python {platform.python_version()}; {library_versions()}",
        (f"- Last `run_all.py` run: {datetime.datetime.now().isoformat(timespec='minutes')}, "
        f"{time.perf_counter() - started_all:.0f} s in all"
        f"{' (only ' + ', '.join(args.only) + ')' if args.only else ''}; "
        f"load average {os.getloadavg()[0]:.1f} at the end (the machine is shared with other jobs, "
        "so absolute times vary between runs; ratios within one run are the robust numbers)."),
        "- Every child process runs with `OMP_WAIT_POLICY=PASSIVE`.",
        "",
        markdown_table(["command", "wall time", "status"],
                       [[f"`.venv/bin/python {' '.join(c)}`", f"{s:.0f} s", st] for c, s, st in runs], align="lrl"),
    ]
    body = "\n".join(lines)
    print(f"## Machine\n\n{body}")
    if not args.quick:
        replace_section(DOC, "Machine", body, first=True)
    if any(status != "ok" for _, _, status in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
