"""``scripts/save_run.py``: a consistent copy of a run that may still be training.

A tmp run folder is written the way the training loop writes it (log ``val`` line, ``NAME-last``,
``NAME-best``, ``state.pt``, each replaced atomically); saves are then interleaved with the copy
to check that it never mixes steps and never copies a log line being written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from automix.models.checkpoint import save_checkpoint
from automix.models.wave_unet import WaveUNet, WaveUNetConfig

NAME = "tiny"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "save_run.py"


@pytest.fixture(scope="module")
def save_run():
    spec = importlib.util.spec_from_file_location("save_run_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model() -> WaveUNet:
    torch.manual_seed(0)
    return WaveUNet(WaveUNetConfig(sample_rate_hz=16000, max_tracks=2, levels=2, base_channels=2, growth=2,
                                   down_kernel=5, up_kernel=3))


def _train(model: WaveUNet) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)


def _save_step(run: Path, model: WaveUNet, step: int, upto: str = "state") -> None:
    """What the loop writes at a validation step, in its order; stop after ``upto``."""
    with (run / "log.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps({"step": step, "val": {"loss": 1.0 / step}}) + "\n")
    info = {"steps": step, "val": {"loss": 1.0 / step}}
    save_checkpoint(run / f"{NAME}-last", model, info)
    if upto == "last":
        return
    save_checkpoint(run / f"{NAME}-best", model, info)
    state = {"model": model.state_dict(), "step": step, "best": 1.0 / step}
    torch.save(state, run / "state.tmp")
    os.replace(run / "state.tmp", run / "state.pt")


def _train_lines(run: Path, steps: range, partial: bool = False) -> None:
    with (run / "log.jsonl").open("a", encoding="utf-8") as log:
        for s in steps:
            log.write(json.dumps({"step": s, "loss": 0.5}) + "\n")
        if partial:
            log.write(f'{{"step": {steps.stop}, "loss": 0.')  # the loop is writing this line


@pytest.fixture
def run_dir(tmp_path) -> tuple[Path, WaveUNet]:
    run = tmp_path / "runs" / NAME
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"name": "tiny"}\n')
    model = _model()
    _train_lines(run, range(1, 10))
    _save_step(run, model, 10)
    return run, model


def _steps_in(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def _copied_weights(tmp_path: Path, file: str) -> dict[str, torch.Tensor]:
    return load_file(str(tmp_path / "checkpoints" / file))


def _state_step(tmp_path: Path) -> int:
    path = tmp_path / "checkpoints" / "state" / NAME / "state.pt"
    return int(torch.load(path, weights_only=True)["step"])


def test_the_log_is_cut_at_the_state_step_and_a_partial_last_line_is_dropped(save_run, run_dir, tmp_path):
    run, _ = run_dir
    _train_lines(run, range(11, 14), partial=True)  # trained past the state, writing step 14's line
    step = save_run.save_run(NAME, tmp_path / "runs", tmp_path / "checkpoints", wait_s=0.0)
    assert step == 10 == _state_step(tmp_path)
    dest = tmp_path / "checkpoints" / "state" / NAME
    assert _steps_in(dest / "log.jsonl") == list(range(1, 11))
    assert (dest / "log.jsonl").read_text().endswith("\n")
    for file in ("config.json", f"{NAME}-last.json", f"{NAME}-last.safetensors"):
        assert (dest / file).read_bytes() == (run / file).read_bytes()
    assert (tmp_path / "checkpoints" / f"{NAME}.json").read_bytes() == (run / f"{NAME}-best.json").read_bytes()
    assert not [p for p in dest.iterdir() if p.name.startswith(".tmp")]


def test_log_up_to_drops_only_the_unfinished_line_and_damaged_ones(save_run):
    text = '{"step": 1}\n{"step": 2, "val": {}}\n{"ste\n{"step": 3}\n{"step": 2, "lo'
    kept, damaged = save_run.log_up_to(text, 2)
    assert kept == '{"step": 1}\n{"step": 2, "val": {}}\n' and damaged == 1
    assert save_run.log_up_to('{"step": 1', 5) == ("", 0)


def test_a_save_under_way_is_waited_for_not_copied_half(save_run, run_dir, tmp_path, monkeypatch):
    run, model = run_dir
    _train_lines(run, range(11, 20))
    _train(model)
    _save_step(run, model, 20, upto="last")  # the loop is between NAME-last and the state for step 20
    waits = []

    def sleep(seconds):  # meanwhile the loop finishes the save
        waits.append(seconds)
        _save_step_rest(run, model, 20)

    monkeypatch.setattr(save_run.time, "sleep", sleep)
    step = save_run.save_run(NAME, tmp_path / "runs", tmp_path / "checkpoints", wait_s=0.0)
    assert waits and step == 20 == _state_step(tmp_path)
    last = _copied_weights(tmp_path, f"state/{NAME}/{NAME}-last.safetensors")
    best = _copied_weights(tmp_path, f"{NAME}.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(last[key], value) and torch.equal(best[key], value)
    assert _steps_in(tmp_path / "checkpoints" / "state" / NAME / "log.jsonl")[-1] == 20


def _save_step_rest(run: Path, model: WaveUNet, step: int) -> None:
    info = {"steps": step, "val": {"loss": 1.0 / step}}
    save_checkpoint(run / f"{NAME}-best", model, info)
    torch.save({"model": model.state_dict(), "step": step, "best": 1.0 / step}, run / "state.tmp")
    os.replace(run / "state.tmp", run / "state.pt")


def test_a_last_checkpoint_whose_weights_moved_on_is_not_copied(save_run, run_dir, tmp_path):
    """The window inside save_checkpoint: new weights in place, their JSON not yet."""
    run, model = run_dir
    _train(model)
    weights = run / f"{NAME}-last.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    state_ns = os.stat(run / "state.pt").st_mtime_ns
    os.utime(weights, ns=(state_ns, state_ns))  # even with a coarse clock (same mtime as the state)
    with pytest.raises(SystemExit, match="kept changing.*weights are not the state's"):
        save_run.save_run(NAME, tmp_path / "runs", tmp_path / "checkpoints", attempts=2, wait_s=0.0)
    assert not (tmp_path / "checkpoints").exists()


def test_a_file_replaced_while_it_is_read_means_reading_again(save_run, run_dir, tmp_path, monkeypatch):
    run, model = run_dir
    _train_lines(run, range(11, 20))
    real = pathlib.Path.read_bytes
    saved = []

    def read_bytes(self):
        if self.name == f"{NAME}-best.safetensors" and not saved:  # state and last read at step 10...
            _train(model)
            _save_step(run, model, 20)  # ...then the loop saves step 20 in full
            saved.append(20)
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    step = save_run.save_run(NAME, tmp_path / "runs", tmp_path / "checkpoints", wait_s=0.0)
    assert saved and step == 20 == _state_step(tmp_path)
    best = _copied_weights(tmp_path, f"{NAME}.safetensors")
    assert all(torch.equal(best[k], v) for k, v in model.state_dict().items())
    assert json.loads((tmp_path / "checkpoints" / f"{NAME}.json").read_text())["training"]["steps"] == 20
