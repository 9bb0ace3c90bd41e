"""End-to-end baselines (Wave-U-Net, Demucs-lite): the networks, training through ``run``, and ``mix`` with it.

Shapes and masking; mono stems enter on both channels; chunked processing; training steps
lower the loss on generated songs; a code-free checkpoint that ``mix --model PATH`` uses; the
mix stays under the ceiling; the JSON beside it says there is no console and ``render``
refuses it in one line; outputs such a model cannot give are refused before any work.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_helpers import assert_user_error, run

from automix import engine
from automix.console.loudness import true_peak_dbtp
from automix.errors import AutomixError
from automix.models import registry
from automix.models.checkpoint import load_checkpoint, save_checkpoint
from automix.models.demucs_lite import DemucsLite, DemucsLiteConfig
from automix.models.direct_mixer import DirectModelMixer
from automix.models.wave_unet import WaveUNet, WaveUNetConfig
from automix.train.config import ConfigError, load_config, validate
from automix.train.loop import run as train_run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RATE = 16000
TINY = {
    "wave-u-net": (WaveUNet, WaveUNetConfig(sample_rate_hz=RATE, max_tracks=6, levels=3, base_channels=4, growth=4,
                                            down_kernel=5, up_kernel=3)),
    "demucs-lite": (DemucsLite, DemucsLiteConfig(sample_rate_hz=RATE, max_tracks=6, depth=3, channels=4, growth=2,
                                                 kernel_size=8, stride=4)),
}
KINDS = pytest.mark.parametrize("kind", sorted(TINY))


def _tiny(kind: str = "wave-u-net") -> torch.nn.Module:
    torch.manual_seed(0)
    network, config = TINY[kind]
    return network(config).eval()


@KINDS
def test_any_length_and_masked_tracks_are_ignored(kind):
    model = _tiny(kind)
    stems = torch.randn(2, 3, 2, 1001)
    stereo = torch.ones(2, 3, dtype=torch.bool)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    with torch.no_grad():
        out = model(stems, stereo, mask)
        garbage = stems.clone()
        garbage[0, 2] = 100.0  # a padding track's content must not matter
        again = model(garbage, stereo, mask)
        two = model(stems[:1, :2], stereo[:1, :2], mask[:1, :2])
    assert out.shape == (2, 2, 1001)
    torch.testing.assert_close(out, again)
    torch.testing.assert_close(out[:1], two)  # a missing track is a zero-filled one
    assert (out[0] - out[1]).abs().mean() > 1e-4
    with pytest.raises(ValueError, match="≤6"):
        model(torch.randn(1, 7, 2, 64))


@KINDS
def test_a_mono_stem_enters_on_both_channels(kind):
    model = _tiny(kind)
    mono = torch.randn(1, 1, 1, 512)
    console_mono = torch.cat([mono, torch.zeros_like(mono)], dim=2)  # channel 1 silent, flagged mono
    with torch.no_grad():
        a = model(console_mono, torch.tensor([[False]]))
        b = model(torch.cat([mono, mono], dim=2), torch.tensor([[True]]))
    torch.testing.assert_close(a, b)


@KINDS
def test_process_matches_one_pass_on_a_short_song_and_keeps_long_ones_whole(kind):
    model = _tiny(kind)
    stereo = torch.ones(2, dtype=torch.bool)
    short = torch.randn(2, 2, 3000)
    with torch.no_grad():
        torch.testing.assert_close(model.process(short, stereo), model(short[None], stereo[None])[0])
        long = torch.randn(2, 2, int(20.5 * RATE))
        whole = model.process(long, stereo)
        direct = model(long[None], stereo[None])[0]
    assert whole.shape == (2, long.shape[-1]) and torch.isfinite(whole).all()
    # chunks cross-fade: away from the chunk edges the result is the one-pass result
    for middle in (slice(2 * RATE, 6 * RATE), slice(10 * RATE, 14 * RATE)):  # inside chunks 0 and 1
        torch.testing.assert_close(whole[:, middle], direct[:, middle], atol=1e-4, rtol=1e-3)


def _write_songs(root: Path) -> None:
    """Songs of three stems and the 'author's' mix (fixed gains), 2 s at 16 kHz."""
    rng = np.random.default_rng(2)
    t = np.arange(2 * RATE) / RATE
    for split in ("train", "val"):
        for s in range(2):
            song = root / split / f"song_{split}_{s}"
            (song / "stems").mkdir(parents=True)
            stems = [0.2 * np.sin(2 * np.pi * 110 * (s + 1) * t), 0.1 * rng.standard_normal(len(t)),
                     0.2 * np.sign(np.sin(2 * np.pi * 2 * t)) * np.sin(2 * np.pi * 660 * t)]
            for k, x in enumerate(stems):
                sf.write(song / "stems" / f"{k:02d}_part.flac", x.astype(np.float32), RATE)
            mix = sum(g * x for g, x in zip((1.0, 0.3, 0.6), stems))
            sf.write(song / "mix.flac", np.stack([mix, mix], 1).astype(np.float32), RATE)
            (song / "song.json").write_text(json.dumps({"mix": {"file": "mix.flac"}}))


def _tiny_config(tmp_path: Path, kind: str):
    _write_songs(tmp_path / "songs")
    cfg = load_config(CONFIGS / f"{kind}.yaml")
    cfg.model.sizes = {k: v for k, v in vars(TINY[kind][1]).items() if k != "sample_rate_hz"}
    cfg.data.songs_root, cfg.data.cache_dir = str(tmp_path / "songs"), str(tmp_path / "cache")
    cfg.data.sample_rate_hz, cfg.data.excerpt_s, cfg.data.excerpts_per_song, cfg.data.max_tracks = RATE, 1.0, 1, 6
    cfg.loss.fft_sizes = [128, 512]
    cfg.out_dir = str(tmp_path / "run")
    cfg.steps, cfg.batch_size, cfg.val_every, cfg.val_batches, cfg.warmup_steps = 30, 2, 15, 1, 1
    cfg.threads, cfg.log_every, cfg.lr = 1, 1, 3e-3
    return validate(cfg)


@pytest.fixture
def tiny_config(tmp_path):
    return _tiny_config(tmp_path, "wave-u-net")


@KINDS
def test_training_steps_lower_the_loss(tmp_path, kind):
    tiny_config = _tiny_config(tmp_path, kind)
    torch.set_num_threads(1)
    train_run(tiny_config, progress=False, log=lambda m: None)
    records = [json.loads(line) for line in (Path(tiny_config.out_dir) / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "sum_diff_stft" in r]
    assert [r["step"] for r in steps] == list(range(1, 31))
    first, last = np.mean([r["loss"] for r in steps[:8]]), np.mean([r["loss"] for r in steps[-8:]])
    assert last < 0.9 * first, (first, last)
    model, meta = load_checkpoint(Path(tiny_config.out_dir) / f"{kind}-last")
    assert isinstance(model, TINY[kind][0]) and meta["config"]["max_tracks"] == 6


def test_config_errors_name_the_problem(tiny_config):
    tiny_config.data.max_tracks = 7
    with pytest.raises(ConfigError, match="data.max_tracks: the network takes at most"):
        validate(tiny_config)
    tiny_config.data.max_tracks, tiny_config.loss.param = 6, 1.0
    with pytest.raises(ConfigError, match="sum_diff_stft alone"):
        validate(tiny_config)
    tiny_config.loss.param, tiny_config.data.method = 0.0, "1"
    with pytest.raises(ConfigError, match="method 'supervised'"):
        validate(tiny_config)


def test_a_demucs_stride_longer_than_its_kernel_is_refused(tmp_path):
    cfg = _tiny_config(tmp_path, "demucs-lite")
    cfg.model.sizes = {**cfg.model.sizes, "stride": 9}
    with pytest.raises(ConfigError, match="stride: expected at most kernel_size 8"):
        validate(cfg)


@pytest.fixture(params=sorted(TINY))
def checkpoint(tmp_path, request) -> Path:
    save_checkpoint(tmp_path / "ckpt" / "tiny-unet", _tiny(request.param), {"description": "a tiny end-to-end model"})
    return tmp_path / "ckpt" / "tiny-unet"


def test_mix_with_an_end_to_end_model_writes_audio_and_a_json_without_console(checkpoint, tmp_path, synth):
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["tiny-unet.json", "tiny-unet.safetensors"]
    stems = synth.write_song(tmp_path / "stems", duration_s=1.5)
    result = engine.mix(stems, tmp_path / "mix.wav", model=str(checkpoint), ceiling_dbtp=-1.0)
    audio, rate = sf.read(tmp_path / "mix.wav", always_2d=True)
    assert audio.shape[1] == 2 and abs(audio.shape[0] - 1.5 * rate) <= 1
    assert true_peak_dbtp(audio.T.astype(np.float32), rate) <= -1.0 + 1e-3
    assert abs(result.loudness_lufs - result.target_lufs) < 1.0 or result.limiter_max_reduction_db > 0
    data = json.loads((tmp_path / "mix.json").read_text())
    assert data["format"] == "automix-direct-mix" and data["console"] is None and "no console" in data["note"]
    assert len(data["tracks"]) == 5
    assert_user_error(run("render", stems, tmp_path / "mix.json", "-o", tmp_path / "again.wav"),
                      "end-to-end model", "no console settings")
    assert not (tmp_path / "again.wav").exists()


def test_outputs_an_end_to_end_model_cannot_give_are_refused_before_work(checkpoint, tmp_path, synth):
    stems = synth.write_song(tmp_path / "stems", duration_s=1.0)
    assert_user_error(run("mix", stems, "-o", tmp_path / "m.wav", "--model", checkpoint, "--stems-out",
                          tmp_path / "tracks"), "--stems-out", "end-to-end")
    assert_user_error(run("mix", stems, "-o", tmp_path / "m.wav", "--model", checkpoint, "--daw", "reaper"),
                      "--daw", "end-to-end")
    assert not (tmp_path / "m.wav").exists()
    mixer = registry.load_mixer(checkpoint)
    assert isinstance(mixer, DirectModelMixer)
    from automix.io import load_stems

    loaded, rate, _ = load_stems(stems)
    with pytest.raises(AutomixError, match="at most 6 stems"):
        mixer.mix_audio(loaded + loaded, rate)


def test_models_lists_an_end_to_end_model_as_such(checkpoint, monkeypatch):
    monkeypatch.setattr(registry, "CHECKPOINT_DIR", checkpoint.parent)
    assert registry.available_models(mixers_only=True)["tiny-unet"].endswith(
        "[end-to-end: outputs the mix, no console settings]")
