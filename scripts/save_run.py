"""Commit-ready copy of a resumable run: ``python scripts/save_run.py NAME`` (``make save-NAME``).

Copies ``runs/NAME/``'s resume state (``state.pt``, ``config.json``, the ``NAME-last`` checkpoint
and the log *up to the state's step*, so a run still going does not leave log lines the resumed
run would write again) to ``checkpoints/state/NAME/``, and its best weights to
``checkpoints/NAME.{safetensors,json}``. Safe while the run trains: the loop replaces its state
file atomically.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch


def save_run(name: str, runs: Path = Path("runs"), checkpoints: Path = Path("checkpoints")) -> int:
    run, dest = runs / name, checkpoints / "state" / name
    state = torch.load(run / "state.pt", map_location="cpu", weights_only=True)
    step = int(state["step"])
    last = json.loads((run / f"{name}-last.json").read_text())
    if last["training"]["steps"] != step:
        raise SystemExit(f"{run}: the last checkpoint (step {last['training']['steps']}) and the state "
                         f"(step {step}) differ; try again in a moment")
    dest.mkdir(parents=True, exist_ok=True)
    for file in ("state.pt", "config.json", f"{name}-last.safetensors", f"{name}-last.json"):
        shutil.copy2(run / file, dest / file)
    lines = [line for line in (run / "log.jsonl").read_text().splitlines() if json.loads(line)["step"] <= step]
    (dest / "log.jsonl").write_text("\n".join(lines) + "\n")
    for suffix in (".safetensors", ".json"):
        shutil.copy2(run / f"{name}-best{suffix}", checkpoints / f"{name}{suffix}")
    print(f"{name}: state at step {step} in {dest}; best weights in {checkpoints / name}.*")
    return step


if __name__ == "__main__":
    save_run(sys.argv[1])
