"""Commit-ready copy of a resumable run: ``python scripts/save_run.py NAME`` (``make save-NAME``).

Copies ``runs/NAME/``'s resume state (``state.pt``, ``config.json``, the ``NAME-last`` checkpoint
and the log *up to the state's step*, so a run still going does not leave log lines the resumed
run would write again) to ``checkpoints/state/NAME/``, and its best weights to
``checkpoints/NAME.{safetensors,json}``.

Safe while the run trains. At each validation the loop writes, in this order, the log's ``val``
line, ``NAME-last``, ``NAME-best`` (on improvement) and ``state.pt``, each file replaced
atomically; so a copy taken file by file could mix steps. Every file is therefore read into
memory first and the snapshot is kept only if it is consistent, else read again a moment later:

* no file was replaced while it was read (same inode, size and modification time before and after);
* the ``NAME-last`` checkpoint is the state's step (its JSON says so and its weights are the
  state's model), and no checkpoint file is newer than ``state.pt`` (a later save under way);
* the log is cut to complete lines of steps up to the state's (a line being written, without
  its newline yet, is dropped).

The copies are written atomically (:func:`automix.io.write_atomic`).
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import torch

ATTEMPTS = 20
"""Snapshots tried before giving up (the run kept saving while we read)."""
RETRY_WAIT_S = 0.5
"""Pause between two snapshots."""


class Inconsistent(Exception):
    """This snapshot mixes steps (a save was under way); read again."""


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _files(name: str) -> list[str]:
    return ["state.pt", "config.json", f"{name}-last.safetensors", f"{name}-last.json",
            f"{name}-best.safetensors", f"{name}-best.json"]


def log_up_to(text: str, step: int) -> tuple[str, int]:
    """The complete lines of ``log.jsonl`` text with ``step`` ≤ ``step``, and how many damaged
    lines were dropped. A trailing line without its newline (being written) is dropped silently."""
    complete = text[: text.rfind("\n") + 1]
    kept, damaged = [], 0
    for line in complete.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            line_step = int(record["step"])
        except (ValueError, KeyError, TypeError):
            damaged += 1
            continue
        if line_step <= step:
            kept.append(line)
    return "".join(line + "\n" for line in kept), damaged


def snapshot(run: Path, name: str) -> tuple[int, dict[str, bytes], str, int]:
    """One consistent read of the run folder: ``(step, file bytes, log text up to step, damaged log lines)``.

    Raises:
        Inconsistent: a file was replaced while read, or a save for a later step is under way.
    """
    from safetensors.torch import load as load_safetensors

    files = _files(name)
    before = {f: _stamp(run / f) for f in files}
    data = {f: (run / f).read_bytes() for f in files}
    log_bytes = (run / "log.jsonl").read_bytes()  # read last: whatever it holds beyond the step is cut
    if {f: _stamp(run / f) for f in files} != before:
        raise Inconsistent("a file was replaced while it was read")
    state = torch.load(io.BytesIO(data["state.pt"]), map_location="cpu", weights_only=True)
    step = int(state["step"])
    last = json.loads(data[f"{name}-last.json"])
    if last["training"]["steps"] != step:
        raise Inconsistent(f"the last checkpoint (step {last['training']['steps']}) and the state (step {step}) differ")
    state_mtime = before["state.pt"][2]
    newer = [f for f in files if f not in ("state.pt", "config.json") and before[f][2] > state_mtime]
    if newer:
        raise Inconsistent(f"{', '.join(newer)} newer than the state (a save is under way)")
    weights = load_safetensors(data[f"{name}-last.safetensors"])
    model = state["model"]
    if set(weights) == set(model) and not all(torch.equal(weights[k], model[k].cpu()) for k in weights):
        raise Inconsistent(f"the last checkpoint's weights are not the state's (step {step})")
    log_text, damaged = log_up_to(log_bytes.decode("utf-8", errors="replace"), step)
    return step, data, log_text, damaged


def save_run(name: str, runs: Path = Path("runs"), checkpoints: Path = Path("checkpoints"),
             attempts: int = ATTEMPTS, wait_s: float = RETRY_WAIT_S) -> int:
    """Copy the run ``name`` consistently (see the module); returns the state's step."""
    from automix.io import write_atomic

    run, dest = runs / name, checkpoints / "state" / name
    reason = ""
    for attempt in range(attempts):
        try:
            step, data, log_text, damaged = snapshot(run, name)
            break
        except (Inconsistent, FileNotFoundError) as e:  # (a file between its removal and replacement)
            reason = str(e)
            if attempt + 1 < attempts:
                time.sleep(wait_s)
    else:
        raise SystemExit(f"{run}: the run kept changing while it was copied ({reason}); try again in a moment")

    def put(path: Path, content: bytes) -> None:
        write_atomic(path, lambda tmp: tmp.write_bytes(content), force=True)

    for file in ("state.pt", "config.json", f"{name}-last.safetensors", f"{name}-last.json"):
        put(dest / file, data[file])
    put(dest / "log.jsonl", log_text.encode("utf-8"))
    for suffix in (".safetensors", ".json"):
        put(checkpoints / f"{name}{suffix}", data[f"{name}-best{suffix}"])
    dropped = f" ({damaged} damaged log lines dropped)" if damaged else ""
    print(f"{name}: state at step {step} in {dest}; best weights in {checkpoints / name}.*{dropped}")
    return step


if __name__ == "__main__":
    save_run(sys.argv[1])
