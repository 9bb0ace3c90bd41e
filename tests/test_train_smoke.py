"""`automix train` end to end on generated songs: a few steps of configs/smoke.yaml.

Checks the losses are finite, the run writes loadable checkpoints and its log, and that a
run stopped at step 3 and resumed reaches exactly the same weights at step 6 as an
uninterrupted run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from automix.console.schema import TRACK
from automix.errors import AutomixError
from automix.models.checkpoint import load_checkpoint
from automix.train.config import ConfigError, load_config
from automix.train.loop import balance_mix, run

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
RATE = 16000


def _make_songs(root: Path) -> None:
    """data/synth-style songs: split/song/stems/*.flac + arranger_mix.flac, tones and noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(3.0 * RATE)) / RATE
    for split, count in (("train", 3), ("val", 1)):
        for s in range(count):
            folder = root / split / f"song_{split}_{s}" / "stems"
            folder.mkdir(parents=True)
            mix = np.zeros_like(t)
            for k in range(3):
                x = 0.2 * np.sin(2 * np.pi * 110 * (k + 1) * (s + 1) * t) + 0.02 * rng.standard_normal(len(t))
                sf.write(folder / f"{k:02d}_part.flac", x.astype(np.float32), RATE)
                mix += x
            sf.write(folder.parent / "arranger_mix.flac", np.stack([mix, mix], 1) * 0.3, RATE)
            (folder.parent / "song.json").write_text("{}")


@pytest.fixture(scope="module")
def smoke_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    _make_songs(root / "synth")

    def make(out: str):
        cfg = load_config(SMOKE)
        cfg.data.songs_root = str(root / "synth")
        cfg.data.cache_dir = str(root / "cache")
        cfg.out_dir = str(root / out)
        return cfg
    return make


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines()]


def test_training_runs_and_resume_reproduces_the_uninterrupted_run(smoke_config):
    torch.set_num_threads(1)
    full = smoke_config("full")
    metrics = run(full, progress=False, log=lambda m: None)
    assert np.isfinite(metrics["loss"]) and np.isfinite(metrics["fader_median_error_db"])
    records = [r for r in _log(Path(full.out_dir)) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in records)
    model, meta = load_checkpoint(Path(full.out_dir) / "smoke-last")
    assert meta["training"]["steps"] == 6 and meta["model"] == "mst"

    part = smoke_config("part")
    part.steps = 3
    run(part, progress=False, log=lambda m: None)
    part.steps = 6
    run(part, resume=True, progress=False, log=lambda m: None)
    resumed, _ = load_checkpoint(Path(part.out_dir) / "smoke-last")
    a, b = model.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # …and the per-step losses after the resume equal the uninterrupted run's.
    resumed_losses = [r["loss"] for r in _log(Path(part.out_dir)) if "loss" in r and r["step"] > 3]
    assert resumed_losses == [r["loss"] for r in records if r["step"] > 3]


def test_resume_without_state_is_an_error(smoke_config):
    with pytest.raises(AutomixError, match="nothing to resume"):
        run(smoke_config("none"), resume=True, progress=False, log=lambda m: None)


def test_songs_shorter_than_an_excerpt_are_skipped_with_a_note(smoke_config):
    """The smoke songs are 3 s: with 2.5 s excerpts they train; with 4 s excerpts they are all too short
    (their padding would be silence to learn from), and the error names the longest."""
    from automix.train.loop import make_dataset

    notes: list[str] = []
    fits = smoke_config("fits")
    fits.data.excerpt_s = 2.5
    assert len(make_dataset(fits, "train", 0, 4, notes.append)) == 4 and notes == []

    too_long = smoke_config("too_long")
    too_long.data.excerpt_s = 4.0
    with pytest.raises(AutomixError, match=r"no usable songs in split 'train' \(the longest is 3\.0 s"):
        make_dataset(too_long, "train", 0, 4, notes.append)
    assert notes == [("note: train: skipped 3 songs shorter than one 4 s excerpt "
                      "(e.g. song_train_0: 3.0 s, shorter than one 4 s excerpt)")]


def test_unknown_config_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("batch_size: 2", "batch_sise: 2"))
    with pytest.raises(ConfigError, match="batch_sise"):
        load_config(bad)
    toml = tmp_path / "c.toml"
    toml.write_text('steps = 5\n[model]\nkind = "dmc"\n[loss]\nsum_diff_stft = 1.0\n[data]\nmethod = "supervised"\n')
    cfg = load_config(toml)
    assert cfg.steps == 5 and cfg.model.kind == "dmc" and cfg.data.method == "supervised"


def test_balance_render_applies_fader_and_pan_laws():
    """Mono: constant-power pan (cos θ, sin θ), θ = (pan + 1)π/4; stereo at width 1: balance with
    unity at centre; padding tracks silent."""
    g = torch.Generator().manual_seed(0)
    stems = torch.randn(1, 3, 2, 100, generator=g)
    is_stereo = torch.tensor([[False, True, False]])
    stems[0, 0, 1] = 0.0
    params = torch.tensor(TRACK.defaults(), dtype=torch.float32).repeat(1, 3, 1)
    params[..., TRACK.index("gain_db")] = torch.tensor([[-6.0, 3.0, 0.0]])
    params[..., TRACK.index("pan")] = torch.tensor([[-0.5, 0.0, 1.0]])
    mask = torch.tensor([[True, True, False]])
    out = balance_mix(stems, is_stereo, params, mask)[0]
    theta = (-0.5 + 1.0) * math.pi / 4
    fader0, fader1 = 10 ** (-6 / 20), 10 ** (3 / 20)
    left = fader0 * math.cos(theta) * stems[0, 0, 0] + fader1 * stems[0, 1, 0]
    right = fader0 * math.sin(theta) * stems[0, 0, 0] + fader1 * stems[0, 1, 1]
    assert torch.allclose(out[0], left, atol=1e-5) and torch.allclose(out[1], right, atol=1e-5)
