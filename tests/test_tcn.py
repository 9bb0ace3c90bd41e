"""The transformation network (TCN + FiLM channel-strip emulator) and its training data.

Shapes and the receptive field; FiLM conditioning changes the output; whole-signal processing;
the DSP target is the identity for a bypassed strip and not for an active one; a code-free
checkpoint round trip; a tcn checkpoint refused as a mixer; training steps through ``run``
on generated songs; config errors; the held-out grouping.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from automix.cli import app
from automix.console.schema import TRACK
from automix.errors import AutomixError
from automix.models import registry
from automix.models.checkpoint import load_checkpoint, save_checkpoint
from automix.models.tcn import STRIP_PARAMS, TCN, TCNConfig, normalised_strip_params, receptive_field
from automix.train.config import ConfigError, load_config
from automix.train.loop import run
from automix.train.strip_data import dsp_strip, random_strip_params
from automix.train.strip_heldout import processor_of

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tcn-10.yaml"
RATE = 16000
TINY = TCNConfig(sample_rate_hz=RATE, n_blocks=3, channels=4, kernel_size=3, dilation_growth=2,
                 dilation_cycle=10, cond_dim=8)


def _tiny() -> TCN:
    torch.manual_seed(0)
    return TCN(TINY).eval()  # eval: batch norm uses its running statistics, so items are independent


def test_paper_sizes_have_the_papers_receptive_fields():
    # TCN-10: 1 + 14·(1 + 2 + … + 512) = 14,323 samples (≈ 0.32 s at 44.1 kHz, as in the paper)
    assert receptive_field(TCNConfig(n_blocks=10)) == 14323
    assert receptive_field(TCNConfig(n_blocks=20)) == 2 * 14323 - 1
    assert receptive_field(TINY) == 1 + 2 * (1 + 2 + 4)


def test_output_is_cropped_by_the_receptive_field_and_depends_only_on_it():
    model = _tiny()
    rf = model.receptive_field
    x = torch.randn(2, 1, rf + 9, requires_grad=True)
    params = torch.rand(2, len(STRIP_PARAMS))
    y = model(x, params)
    assert y.shape == (2, 1, 10)
    y[0, 0, 0].backward()
    support = torch.nonzero(x.grad[0, 0]).flatten()
    assert support.min() >= 0 and support.max() <= rf - 1  # output 0 sees input samples 0 … rf − 1
    assert x.grad[1].abs().max() == 0  # and nothing of another item
    with pytest.raises(ValueError, match="at least"):
        model(torch.randn(1, 1, rf - 1), params[:1])


def test_film_conditioning_changes_the_output():
    model = _tiny()
    x = torch.randn(1, 1, 400)
    a, b = torch.zeros(1, len(STRIP_PARAMS)), torch.ones(1, len(STRIP_PARAMS))
    with torch.no_grad():
        ya, yb, ya2 = model(x, a), model(x, b), model(x, a)
    assert torch.equal(ya, ya2)
    assert (ya - yb).abs().mean() > 1e-3 * ya.abs().mean()


def test_process_keeps_the_length_and_matches_a_padded_forward():
    model = _tiny()
    x = torch.randn(1, 1, 300)
    params = torch.rand(1, len(STRIP_PARAMS))
    half = (model.receptive_field - 1) // 2
    with torch.no_grad():
        whole = model.process(x, params)
        direct = model(torch.nn.functional.pad(x, (half, half)), params)
    assert whole.shape == x.shape
    torch.testing.assert_close(whole, direct)


def test_dsp_target_is_near_the_input_when_bypassed_and_not_otherwise():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(0.1 * rng.standard_normal((1, 1, 8000)))
    neutral = torch.from_numpy(TRACK.defaults())[None]
    y = dsp_strip(x, neutral, RATE)
    # a neutral strip still has its high-pass at the 10 Hz floor: white noise loses < 0.01 dB
    assert abs(10 * torch.log10(y.pow(2).mean() / x.pow(2).mean())) < 0.01
    assert (y - x).abs().mean() < 0.08 * x.abs().mean()
    loud = TRACK.defaults()
    loud[TRACK.index("compressor.ratio")] = 8.0
    loud[TRACK.index("compressor.threshold_db")] = -40.0
    loud[TRACK.index("eq.band_2.gain_db")] = 12.0
    y = dsp_strip(x, torch.from_numpy(loud)[None], RATE)
    assert (y - x).abs().mean() > 0.3 * x.abs().mean()


def test_random_settings_stay_in_range_and_bypass_sometimes():
    rng = np.random.default_rng(0)
    draws = np.stack([random_strip_params(rng) for _ in range(400)])
    for i, name in enumerate(TRACK.names):
        spec = TRACK.spec(name)
        assert draws[:, i].min() >= spec.minimum - 1e-9 and draws[:, i].max() <= spec.maximum + 1e-9, name
    kinds = [processor_of(d) for d in draws]
    share = {k: kinds.count(k) / len(kinds) for k in set(kinds)}
    # bypass probability 0.2 for each processor, independently
    assert 0.02 < share["bypassed"] < 0.08 and 0.55 < share["eq + compressor"] < 0.75
    normalised = normalised_strip_params(torch.from_numpy(draws))
    assert normalised.shape == (400, len(STRIP_PARAMS)) and normalised.min() >= 0 and normalised.max() <= 1


def test_checkpoint_round_trip_is_code_free_and_refused_as_mixer(tmp_path, monkeypatch):
    model = _tiny()
    save_checkpoint(tmp_path / "strip", model, {"description": "tiny strip"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["strip.json", "strip.safetensors"]
    meta = json.loads((tmp_path / "strip.json").read_text())
    assert meta["model"] == "tcn" and meta["config"]["n_blocks"] == 3
    loaded, _ = load_checkpoint(tmp_path / "strip")
    loaded.eval()
    x, params = torch.randn(1, 1, 200), torch.rand(1, len(STRIP_PARAMS))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, params), model(x, params))
    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path)
    assert "strip" in registry.available_models() and "strip" not in registry.available_models(mixers_only=True)
    with pytest.raises(AutomixError, match="not a mixer"):
        registry.load_mixer("strip")
    listing = CliRunner().invoke(app, ["models"]).stdout.splitlines()
    heading = listing.index("channel-strip emulators (not a mixer: --model cannot use it):")
    assert listing[heading + 1].split() == ["strip", "tiny", "strip"]
    assert all(not line.startswith("strip") for line in listing[:heading])


def _write_songs(root: Path) -> None:
    """Two one-track-pair songs per split: a tone and a noise burst train, 1.5 s at 16 kHz."""
    rng = np.random.default_rng(1)
    t = np.arange(int(1.5 * RATE)) / RATE
    for split in ("train", "val"):
        for s in range(2):
            folder = root / split / f"song_{split}_{s}" / "stems"
            folder.mkdir(parents=True)
            tone = 0.3 * np.sin(2 * np.pi * 220 * (s + 1) * t)
            bursts = 0.2 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 3 * t) > 0.3)
            sf.write(folder / "00_tone.flac", tone.astype(np.float32), RATE)
            sf.write(folder / "01_noise.flac", bursts.astype(np.float32), RATE)
            (folder.parent / "song.json").write_text("{}")


@pytest.fixture
def tiny_config(tmp_path):
    _write_songs(tmp_path / "songs")
    cfg = load_config(CONFIG)
    cfg.model.sizes = {k: v for k, v in vars(TINY).items() if k != "sample_rate_hz"}
    cfg.data.songs_root, cfg.data.cache_dir = str(tmp_path / "songs"), str(tmp_path / "cache")
    cfg.data.sample_rate_hz, cfg.data.excerpt_s, cfg.data.excerpts_per_song = RATE, 1.0, 1
    cfg.data.output_samples = 1024
    cfg.loss.fft_sizes = [128, 512]
    cfg.out_dir = str(tmp_path / "run")
    cfg.steps, cfg.batch_size, cfg.val_every, cfg.val_batches, cfg.warmup_steps = 40, 2, 20, 1, 1
    cfg.threads, cfg.log_every, cfg.lr = 1, 1, 3e-3
    return cfg


def test_training_steps_lower_the_loss_and_write_a_loadable_strip(tiny_config):
    torch.set_num_threads(1)
    metrics = run(tiny_config, progress=False, log=lambda m: None)
    assert np.isfinite(metrics["loss"]) and metrics["loss"] > 0
    records = [json.loads(line) for line in (Path(tiny_config.out_dir) / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "l1" in r]
    assert [r["step"] for r in steps] == list(range(1, 41)) and all(r["mrstft"] > 0 for r in steps)
    first, last = np.mean([r["loss"] for r in steps[:10]]), np.mean([r["loss"] for r in steps[-10:]])
    print(first, last)
    assert last < 0.9 * first
    model, meta = load_checkpoint(Path(tiny_config.out_dir) / "tcn-10-last")
    assert isinstance(model, TCN) and meta["config"]["sample_rate_hz"] == RATE and meta["training"]["steps"] == 40


def test_config_errors_name_the_problem(tiny_config, tmp_path):
    from automix.train.config import validate

    tiny_config.model.sizes = {**tiny_config.model.sizes, "kernel_size": 4}
    with pytest.raises(ConfigError, match="kernel_size: expected an odd"):
        validate(tiny_config)
    tiny_config.model.sizes = {**tiny_config.model.sizes, "kernel_size": 15, "n_blocks": 10}
    tiny_config.data.output_samples = 4096
    with pytest.raises(ConfigError, match=r"excerpt_s: an example needs 18419 samples .* at least 1.16 s"):
        validate(tiny_config)
    tiny_config.model.sizes = {**tiny_config.model.sizes, "n_blocks": 2, "kernel_size": 3, "dilation": 2}
    with pytest.raises(ConfigError, match="model.sizes.dilation: unknown size"):
        validate(tiny_config)


def test_process_in_many_chunks_matches_one_chunk(monkeypatch):
    """The multi-chunk branch of :meth:`TCN.process`: each chunk is cut from the padded signal with
    ``receptive_field − 1`` samples of context, so every output sample sees exactly the input
    samples it sees in one pass (zero padding only at the signal's ends, batch norm per sample in
    eval mode, no other cross-sample operation). The results are therefore the same numbers up
    to float32 rounding: convolutions over inputs of other lengths may sum in another order, a
    few ulp per layer, so 1e-5 of the output's peak (about 100 float32 ulp) is ample, while a chunk
    missing context is wrong by far more (checked below, so the tolerance can fail)."""
    from automix.models import tcn

    torch.manual_seed(1)
    model = TCN(TCNConfig(sample_rate_hz=RATE, n_blocks=5, channels=4, kernel_size=3, dilation_growth=2,
                          dilation_cycle=10, cond_dim=8)).eval()
    rf = model.receptive_field
    assert rf == 63
    x = torch.randn(2, 1, 1000)
    params = torch.rand(2, len(STRIP_PARAMS))
    with torch.no_grad():
        one = model.process(x, params)  # 1000 < PROCESS_CHUNK: one forward pass
        assert x.shape[-1] < tcn.PROCESS_CHUNK
        monkeypatch.setattr(tcn, "PROCESS_CHUNK", 50)  # shorter than the receptive field: 20 chunks
        many = model.process(x, params)
        # the same chunks each padded on their own (no context from their neighbours) differ a lot
        half = (rf - 1) // 2
        blind = torch.cat([model(torch.nn.functional.pad(x[..., s: s + 50], (half, half)), params)
                           for s in range(0, 1000, 50)], dim=-1)
    assert many.shape == one.shape == x.shape
    tol = 1e-5 * float(one.abs().max())
    assert float((many - one).abs().max()) <= tol
    assert float((blind - one).abs().max()) > 100 * tol
