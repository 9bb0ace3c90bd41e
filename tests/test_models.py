"""Controllers, checkpoints, registry and the model mixer, on tiny models and generated audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs
from automix.console.schema import FX, MASTER, TRACK
from automix.errors import AutomixError
from automix.io import Stem
from automix.models import registry
from automix.models.checkpoint import CheckpointError, build_model, load_checkpoint, save_checkpoint
from automix.models.encoder import balance_estimate_db
from automix.models.mixer import ModelMixer

RATE = 8000
TINY = {"sample_rate_hz": RATE, "embed_dim": 32, "hidden_dim": 32, "channels": [4, 8], "n_mels": 16,
        "dropout": 0.0}
TINY_MST = {**TINY, "layers": 1, "heads": 2, "ff_dim": 32}


def _tiny(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(kind, TINY_MST if kind == "mst" else TINY).eval()


def _batch(tracks: int = 5, seconds: float = 1.0, batch: int = 2):
    g = torch.Generator().manual_seed(1)
    n = int(seconds * RATE)
    stems = torch.randn(batch, tracks, 2, n, generator=g) * torch.rand(batch, tracks, 1, 1, generator=g)
    is_stereo = torch.rand(batch, tracks, generator=g) > 0.5
    stems[..., 1, :] *= is_stereo[..., None].float()
    return stems, is_stereo, torch.ones(batch, tracks, dtype=torch.bool)


@pytest.mark.parametrize("kind", ["dmc", "mst"])
def test_output_shapes_and_range(kind):
    model = _tiny(kind)
    stems, st, mask = _batch(tracks=3)
    ref = torch.randn(2, 2, RATE) * 0.1
    with torch.no_grad():
        out = model(stems, st, mask, ref)
    assert out.track.shape == (2, 3, len(TRACK))
    assert out.fx.shape == (2, len(FX)) and out.master.shape == (2, len(MASTER))
    for t in out:
        assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


@pytest.mark.parametrize("kind", ["dmc", "mst"])
def test_permutation_equivariant(kind):
    model = _tiny(kind)
    stems, st, mask = _batch(tracks=5)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        a = model(stems, st, mask)
        b = model(stems[:, perm], st[:, perm], mask[:, perm])
    assert torch.allclose(a.track[:, perm], b.track, atol=1e-5)
    assert torch.allclose(a.master, b.master, atol=1e-5)
    assert torch.allclose(a.fx, b.fx, atol=1e-5)


@pytest.mark.parametrize("kind", ["dmc", "mst"])
def test_padding_tracks_change_nothing(kind):
    model = _tiny(kind)
    stems, st, mask = _batch(tracks=3)
    padded = torch.cat([stems, torch.randn_like(stems[:, :2])], dim=1)  # junk in the padding
    pmask = torch.cat([mask, torch.zeros_like(mask[:, :2])], dim=1)
    pst = torch.cat([st, st[:, :2]], dim=1)
    with torch.no_grad():
        a = model(stems, st, mask)
        b = model(padded, pst, pmask)
    assert torch.allclose(a.track, b.track[:, :3], atol=1e-5)
    assert torch.allclose(a.master, b.master, atol=1e-5)


def test_mst_uses_the_reference_and_mixes_without_one():
    model = _tiny("mst")
    stems, st, mask = _batch(tracks=3)
    with torch.no_grad():
        none = model(stems, st, mask, None)
        loud = model(stems, st, mask, torch.randn(2, 2, RATE) * 0.5)
        quiet = model(stems, st, mask, torch.randn(2, 2, RATE) * 0.005)
    assert float((loud.track - quiet.track).abs().max()) > 1e-4
    assert float((none.track - loud.track).abs().max()) > 1e-5


def test_fresh_model_starts_at_the_neutral_console():
    with torch.no_grad():
        out = _tiny("dmc")(*_batch(tracks=2))
    gain = TRACK.from_normalised(out.track)[..., TRACK.index("gain_db")]
    assert float(gain.abs().max()) < 1.0  # faders start within 1 dB of 0 dB


@pytest.mark.parametrize("kind", ["dmc", "mst"])
def test_checkpoint_roundtrip_is_exact(tmp_path, kind):
    model = _tiny(kind)
    weights, meta_path = save_checkpoint(tmp_path / "m", model, {"steps": 7, "description": "tiny"})
    assert weights.suffix == ".safetensors" and meta_path.suffix == ".json"
    loaded, meta = load_checkpoint(tmp_path / "m.json")
    assert meta["training"]["steps"] == 7 and meta["model"] == kind
    stems, st, mask = _batch(tracks=4)
    with torch.no_grad():
        a, b = model(stems, st, mask), loaded(stems, st, mask)
    assert torch.equal(a.track, b.track) and torch.equal(a.master, b.master)


def test_checkpoint_schema_mismatch_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "m", _tiny("dmc"))
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["schema_version"] = 999
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="schema version 999"):
        load_checkpoint(tmp_path / "m")


def test_checkpoint_bad_kind_and_size_are_errors(tmp_path):
    save_checkpoint(tmp_path / "m", _tiny("dmc"))
    meta = json.loads((tmp_path / "m.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps({**meta, "model": "os.system"}))
    with pytest.raises(CheckpointError, match="unknown model kind"):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "m.json").write_text(json.dumps({**meta, "config": {**meta["config"], "embed_dim": 64}}))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "m")


def test_registry_lists_and_rejects_unknown_names(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path)
    save_checkpoint(tmp_path / "tiny-dmc", _tiny("dmc"), {"description": "a tiny test model\nmore"})
    assert registry.available_models() == {"tiny-dmc": "a tiny test model"}
    _, meta = registry.load_model("tiny-dmc")
    assert meta["model"] == "dmc"
    with pytest.raises(AutomixError, match="tiny-dmc"):
        registry.load_model("no-such-model")


def _stems(seconds: float = 6.0, rate: int = 16000) -> list[Stem]:
    rng = np.random.default_rng(3)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = []
    for i, level in enumerate([0.3, 0.02, 0.1]):
        x = level * np.sin(2 * np.pi * (110 * (i + 1)) * t) + 0.01 * rng.standard_normal(n)
        audio = np.stack([x, 0.8 * x]) if i == 2 else x[None]
        out.append(Stem(f"s{i}.wav", audio.astype(np.float32), rate))
    return out


@pytest.mark.parametrize("kind", ["dmc", "mst"])
def test_model_mixer_trims_to_normalised_level_and_is_deterministic(tmp_path, kind):
    save_checkpoint(tmp_path / "m", _tiny(kind), {"config": {"data": {"excerpt_s": 2.0, "method": "1"}}})
    mixer = registry.load_mixer(tmp_path / "m")
    assert isinstance(mixer, ModelMixer) and mixer.window_s == 1.0
    stems = _stems()
    a = mixer.predict(stems, 16000)
    b = mixer.predict(stems, 16000)
    assert np.array_equal(a.track, b.track)
    assert a.mixer == "m" and a.track_names == ["s0.wav", "s1.wav", "s2.wav"]
    for i, stem in enumerate(stems):
        trimmed = stem.audio * 10 ** (a.get(i, "trim_db") / 20)
        assert abs(integrated_lufs(trimmed, 16000) - NORMALISED_STEM_LUFS) < 0.1
    assert np.all(a.track >= TRACK.minimum()) and np.all(a.track <= TRACK.maximum())
    ref = np.random.default_rng(0).standard_normal((2, 16000 * 3)).astype(np.float32) * 0.1
    c = mixer.predict(stems, 16000, references=[ref])
    assert c.track.shape == a.track.shape
    if kind == "mst":
        assert not np.allclose(c.track[:, 1:], a.track[:, 1:])


def test_model_mixer_blends_every_reference_equally(tmp_path):
    save_checkpoint(tmp_path / "m", _tiny("mst"), {"config": {"data": {"excerpt_s": 2.0, "method": "1"}}})
    mixer = registry.load_mixer(tmp_path / "m")
    stems = _stems()
    rng = np.random.default_rng(5)
    bright = (0.1 * rng.standard_normal((2, 16000 * 3))).astype(np.float32)
    dark = np.cumsum(bright, axis=1).astype(np.float32) * np.float32(0.01)  # a very different spectrum
    one, two = (mixer.predict(stems, 16000, references=[r]) for r in (bright, dark))
    both = mixer.predict(stems, 16000, references=[bright, dark])
    free = [i for i, name in enumerate(TRACK.names) if name != "trim_db"]
    expected = (TRACK.to_normalised(one.track) + TRACK.to_normalised(two.track)) / 2
    np.testing.assert_allclose(TRACK.to_normalised(both.track)[:, free], expected[:, free], atol=1e-6)
    # the references pull the prediction apart by far more than the tolerance, so using only
    # the first one (or only the second) would fail the comparison above
    assert np.abs(TRACK.to_normalised(one.track) - TRACK.to_normalised(two.track))[:, free].max() > 1e-4
    expected_master = (MASTER.to_normalised(one.master) + MASTER.to_normalised(two.master)) / 2
    np.testing.assert_allclose(MASTER.to_normalised(both.master), expected_master, atol=1e-6)


def test_model_mixer_takes_the_median_over_song_excerpts(tmp_path, monkeypatch):
    import automix.models.mixer as mixer_module

    save_checkpoint(tmp_path / "m", _tiny("dmc"), {"config": {"data": {"excerpt_s": 2.0, "method": "1"}}})
    mixer = registry.load_mixer(tmp_path / "m")
    seen = []
    forward = mixer.model.forward

    def spy(*args, **kwargs):
        out = forward(*args, **kwargs)
        seen.append(out.track.double().numpy())
        return out

    monkeypatch.setattr(mixer.model, "forward", spy)
    settings = mixer.predict(_stems(), 16000)
    assert mixer_module.ANALYSIS_WINDOWS == seen[0].shape[0] == 3
    gain = TRACK.index("gain_db")
    median = TRACK.from_normalised(np.median(seen[0], axis=0))[:, gain]
    mean = TRACK.from_normalised(seen[0].mean(axis=0))[:, gain]
    np.testing.assert_allclose(settings.track[:, gain], median, atol=1e-3)
    assert np.abs(median - mean).max() > 1e-4 or np.ptp(seen[0][:, :, gain], axis=0).max() < 1e-6


def test_balance_estimate_recovers_gains_of_an_exact_mix():
    rng = np.random.default_rng(0)
    tracks = torch.from_numpy(rng.uniform(0.0, 1.0, (1, 3, 32)) ** 4)  # distinct spectra (B, T, M)
    gains_db = torch.tensor([[6.0, -12.0, 0.0]], dtype=torch.float64)
    mix = (tracks * 10 ** (gains_db[..., None] / 10)).sum(1)
    mask = torch.tensor([[True, True, True]])
    est = balance_estimate_db(tracks, mix, mask, iterations=2000)
    assert torch.allclose(est, gains_db, atol=0.1)
    padded = balance_estimate_db(torch.cat([tracks, tracks[:, :1]], 1), mix, torch.tensor([[True] * 3 + [False]]),
                                 iterations=2000)
    assert torch.allclose(padded[:, :3], gains_db, atol=0.1) and float(padded[0, 3]) == -40.0


def test_checkpoint_dir_prefers_env_then_checkout_then_installed_copy(tmp_path):
    checkout = tmp_path / "src"
    (checkout / "checkpoints").mkdir(parents=True)
    assert registry.checkpoint_dir({"AUTOMIX_CHECKPOINT_DIR": "/x/y"}, checkout, "/p") == registry.Path("/x/y")
    assert registry.checkpoint_dir({}, checkout, "/p") == checkout / "checkpoints"
    wheel_install = tmp_path / "site-packages"  # no checkpoints/ beside the package
    wheel_install.mkdir()
    assert registry.checkpoint_dir({}, wheel_install, tmp_path / "env") == (
        tmp_path / "env" / "share" / "automix" / "checkpoints")
