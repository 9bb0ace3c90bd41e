"""What every benchmark script measures with: child processes, their cost, the machine, markdown tables.

* :func:`run_command` runs a command from the repository root and returns its wall seconds, CPU
  seconds and peak RSS (``os.wait4``: the rusage of that one child, not of all children so far);
* :func:`run_in_child` calls a benchmark script's function in a fresh interpreter the same way, so
  the peak RSS is the function's own (interpreter, imports, what it allocates), not the parent's;
* :class:`Stopwatch` times a region inside a process (after warm-up, after imports), and
  :func:`peak_rss_mib` is the process's own peak so far;
* :func:`machine_line` and :func:`markdown_table` format what the scripts print and write.

Run as a script, this file is the child side of :func:`run_in_child`.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Usage:
    """Cost of a process or of a region of one."""

    wall_s: float
    """Wall-clock seconds."""
    cpu_s: float
    """User + system CPU seconds, all threads."""
    peak_rss_mib: float
    """Peak resident set size, MiB (2**20 bytes)."""

    @property
    def peak_rss_gib(self) -> float:
        """Peak resident set size, GiB (2**30 bytes), as the tables print it."""
        return self.peak_rss_mib / 1024


def _maxrss_mib(ru_maxrss: int) -> float:
    # ru_maxrss is in KiB on Linux but in bytes on macOS.
    return ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """Peak RSS of this process so far, MiB."""
    return _maxrss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class Stopwatch:
    """Wall and CPU seconds of this process since the stopwatch was made."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()

    @property
    def wall_s(self) -> float:
        """Wall-clock seconds since the start."""
        return time.perf_counter() - self._wall

    @property
    def cpu_s(self) -> float:
        """User + system CPU seconds since the start."""
        return cpu_seconds() - self._cpu


def child_env() -> dict[str, str]:
    """The environment of every measured child: this one, the repository on the path, passive OpenMP."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    # Idle OpenMP threads spin by default and steal the other core on a shared machine.
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": path}


@dataclass(frozen=True)
class CommandRun:
    """How a command ended and what it cost."""

    returncode: int
    """Exit status; negative: killed by that signal."""
    timed_out: bool
    usage: Usage
    """The whole process: start-up to exit."""
    stdout: str
    """Its output ("" unless captured)."""
    stderr: str


def run_command(command: Sequence[str], *, capture: bool = True, timeout: float | None = None) -> CommandRun:
    """Run ``command`` from the repository root in :func:`child_env` and measure it.

    ``capture`` keeps stdout and stderr (in temporary files, so a chatty child cannot fill a pipe
    and block); otherwise they go to this process's. After ``timeout`` seconds the child is killed.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        streams = {"stdout": out, "stderr": err} if capture else {}
        expired = threading.Event()
        start = time.perf_counter()
        proc = subprocess.Popen(list(command), cwd=ROOT, env=child_env(), **streams)

        def stop() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(timeout, stop) if timeout is not None else None
        if timer is not None:
            timer.start()
        try:
            # wait4, not Popen.wait: its rusage is this child's alone (RUSAGE_CHILDREN keeps the maximum
            # RSS over every child ever waited for).
            _, status, rusage = os.wait4(proc.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
        texts = []
        for stream in (out, err):
            stream.seek(0)
            texts.append(stream.read().decode(errors="replace"))
    usage = Usage(wall, rusage.ru_utime + rusage.ru_stime, _maxrss_mib(rusage.ru_maxrss))
    return CommandRun(proc.returncode, expired.is_set(), usage, *texts)


@dataclass(frozen=True)
class ChildResult:
    """What a function run by :func:`run_in_child` returned, and what its process cost."""

    value: Any
    usage: Usage


def run_in_child(function: Callable[..., Any], *args: Any) -> ChildResult:
    """Call ``function(*args)`` in a fresh interpreter and measure that process.

    ``function`` is a module-level function of a benchmark script; the child imports the script
    under its file name (so its ``main()`` does not run) and calls it. Arguments and the return
    value go through JSON. Raises :class:`RuntimeError` with the end of the child's stderr when it fails.
    """
    script = Path(inspect.getfile(function)).resolve()
    run = run_command([sys.executable, __file__, str(script), function.__name__, json.dumps(args)])
    if run.returncode != 0:
        raise RuntimeError(f"{script.stem}.{function.__name__} failed:\n{run.stderr[-3000:]}")
    return ChildResult(json.loads(run.stdout.strip().splitlines()[-1]), run.usage)


def _child_main(script: str, name: str, args: str) -> None:
    spec = importlib.util.spec_from_file_location(Path(script).stem, script)
    assert spec is not None and spec.loader is not None, script
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    result = getattr(module, name)(*json.loads(args))
    print(json.dumps(result), flush=True)  # the last line of stdout: anything the function printed comes before
    # Skip interpreter teardown: torch's adds ~0.1 GiB to the peak RSS after the measurement is over.
    os._exit(0)


def cpu_model() -> str:
    """The CPU's model name (``lscpu``), or what :mod:`platform` knows."""
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def ram() -> str:
    """Total memory, e.g. ``23.5 GiB`` (``unknown`` without ``/proc/meminfo``)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine_line() -> str:
    """The machine in one line: ``CPU model, N cores; RAM X GiB; OS release``."""
    return f"{cpu_model()}, {os.cpu_count()} cores; RAM {ram()}; {platform.system()} {platform.release()}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A markdown table (no trailing newline); ``align`` has an ``l`` or ``r`` per column, left by default."""
    def line(cells: Iterable[object]) -> str:
        # An empty cell is "| |", not "|  |": the committed tables were written that way.
        return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"

    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align.ljust(len(headers), "l")) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


if __name__ == "__main__":
    _child_main(*sys.argv[1:])
