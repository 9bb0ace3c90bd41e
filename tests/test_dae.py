"""The deep-autoencoder baseline (``dae``): shapes, equivariance, group routing, a training step,
a code-free checkpoint, the group ids the supervised batches carry, and ``mix --model``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from cli_helpers import run

from automix.data.samplers import collate
from automix.models.checkpoint import load_checkpoint, save_checkpoint
from automix.models.dae import DAE, GROUPS, DAEConfig, group_of
from automix.models.registry import load_mixer

RATE = 16000


def _tiny(seed: int = 0) -> DAE:
    torch.manual_seed(seed)
    model = DAE(DAEConfig(sample_rate_hz=RATE, n_fft=256, hop=128, hidden_1=32, hidden_2=16, hidden_3=8))
    with torch.no_grad():  # away from the unity-gain start, so the groups differ
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_groups_from_names():
    assert [GROUPS[group_of(n)] for n in ("bass.wav", "gtr_rhythm.flac", "LeadVox.wav", "piano.wav", "kick.wav",
                                          "ch3.flac", "sax.wav", "pad.wav")] == \
        ["bass", "guitar", "vocal", "keys", "other", "other", "vocal", "keys"]


def test_untrained_is_the_unity_sum():
    model = DAE(DAEConfig(sample_rate_hz=RATE, n_fft=256, hop=128, hidden_1=8, hidden_2=8, hidden_3=8))
    stems = torch.randn(1, 3, 2, 3000)
    torch.testing.assert_close(model(stems), stems.sum(1), atol=1e-5, rtol=1e-4)


def test_any_number_of_stems_and_permutation_equivariance():
    model = _tiny()
    for t in (1, 3, 20):
        stems = torch.randn(2, t, 2, 1500)
        groups = torch.randint(0, len(GROUPS), (2, t))
        stereo = torch.rand(2, t) > 0.5
        with torch.no_grad():
            out = model(stems, stereo, None, None, groups)
            perm = torch.randperm(t)
            again = model(stems[:, perm], stereo[:, perm], None, None, groups[:, perm])
        assert out.shape == (2, 2, 1500) and torch.isfinite(out).all()
        torch.testing.assert_close(out, again, atol=1e-5, rtol=1e-4)


def test_masked_stems_are_ignored_and_group_routing_matters():
    model = _tiny()
    stems = torch.randn(1, 2, 2, 2000)
    mask = torch.tensor([[True, False]])
    with torch.no_grad():
        a = model(stems, None, mask, None, torch.tensor([[0, 3]]))
        b = model(stems[:, :1], None, None, None, torch.tensor([[0]]))
        bass = model(stems[:, :1], None, None, None, torch.tensor([[GROUPS.index("bass")]]))
        keys = model(stems[:, :1], None, None, None, torch.tensor([[GROUPS.index("keys")]]))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert (bass - keys).abs().mean() > 1e-3 * bass.abs().mean()


def test_one_training_step_changes_weights_with_a_finite_loss():
    from automix.measure.distances import SumDiffSTFTLoss
    from automix.train.loop import level_matched

    model = _tiny().train()
    stems, groups = torch.randn(2, 3, 2, 4000), torch.tensor([[0, 1, 2], [3, 4, 0]])
    target = (stems * torch.tensor([1.0, 0.3, 0.6])[None, :, None, None]).sum(1)
    loss_fn = SumDiffSTFTLoss(fft_sizes=[128, 512])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for _ in range(3):
        optimiser.zero_grad()
        loss = loss_fn(level_matched(model(stems, None, None, None, groups), target), target)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert any((p - q).abs().max() > 0 for p, q in zip(model.parameters(), before))


def test_checkpoint_round_trip_and_supervised_batches_carry_groups(tmp_path):
    model = _tiny()
    save_checkpoint(tmp_path / "dae", model, {"description": "tiny dae"})
    loaded, meta = load_checkpoint(tmp_path / "dae")
    assert meta["model"] == "dae" and isinstance(loaded, DAE)
    stems, groups = torch.randn(1, 2, 2, 1000), torch.tensor([[1, 2]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(stems, None, None, None, groups), model(stems, None, None, None, groups))
    batch = collate([{"stems": torch.zeros(2, 2, 8), "is_stereo": torch.ones(2, dtype=torch.bool),
                      "track_groups": torch.tensor([1, 2])},
                     {"stems": torch.zeros(1, 2, 8), "is_stereo": torch.ones(1, dtype=torch.bool),
                      "track_groups": torch.tensor([3])}])
    assert batch["track_groups"].tolist() == [[1, 2], [3, 0]]


def test_mixer_routes_by_file_name_and_mix_cli_works(tmp_path):
    from automix.io import Stem

    model = _tiny()
    save_checkpoint(tmp_path / "dae", model, {"description": "tiny dae"})
    mixer = load_mixer(tmp_path / "dae")
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((1, RATE))).astype(np.float32)
    as_bass = mixer.mix_audio([Stem("bass.wav", audio, RATE)], RATE)
    as_keys = mixer.mix_audio([Stem("piano.wav", audio, RATE)], RATE)
    assert as_bass.shape == (2, RATE) and np.abs(as_bass - as_keys).mean() > 0
    examples = Path(__file__).resolve().parents[1] / "examples" / "stems"
    result = run("mix", examples, "--model", tmp_path / "dae", "-o", tmp_path / "mix.wav")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mix.wav").is_file()


# --- loss.per_stem: each processed stem against its truth-processed stem ---------------------

def test_per_stem_loss_is_zero_at_the_truth_and_one_for_a_stem_6db_too_loud():
    from automix.train.stem_targets import relative_l1, stem_targets

    stems = torch.zeros(1, 4, 2, 3000)
    stems[:, :, 0] = torch.randn(1, 4, 3000)  # mono stems (channel 0), the 4th is padding
    stereo, mask = torch.zeros(1, 4, dtype=torch.bool), torch.tensor([[True, True, True, False]])
    gains, pans = torch.tensor([[-6.0, 0.0, 3.0, 0.0]]), torch.tensor([[0.0, -0.5, 1.0, 0.0]])
    truth = stem_targets(stems, stereo, gains, pans)
    # The console's constant-power law: centre at −3.01 dB per side, hard right all on R.
    torch.testing.assert_close(truth[0, 0, 0], stems[0, 0, 0] * 10 ** (-6 / 20) * 2 ** -0.5)
    assert float(truth[0, 2, 0].abs().max()) < 1e-6 and float(truth[0, 2, 1].abs().max()) > 0.5
    assert float(relative_l1(truth, truth, mask)) == 0.0
    off = truth.clone()
    off[0, 1] *= 10 ** (6.0206 / 20)  # one of three stems 6 dB too loud: its term is 1
    assert abs(float(relative_l1(off, truth, mask)) - 1 / 3) < 1e-3
    off[0, 3] = 1.0  # the padding row does not count
    assert abs(float(relative_l1(off, truth, mask)) - 1 / 3) < 1e-3


def _per_stem_config(tmp_path):
    from automix.train.config import validate
    from automix.train.config_types import TrainConfig

    cfg = TrainConfig()
    cfg.model.kind, cfg.model.sizes = "dae", {"n_fft": 256, "hop": 128, "hidden_1": 32, "hidden_2": 16, "hidden_3": 8}
    cfg.data.method, cfg.data.sample_rate_hz, cfg.data.excerpt_s = "supervised", RATE, 0.5
    cfg.data.songs_root, cfg.data.cache_dir = str(tmp_path / "real"), str(tmp_path / "cache")
    cfg.data.excerpts_per_song = 1
    cfg.loss.sum_diff_stft, cfg.loss.per_stem, cfg.loss.level_match = 1.0, 1.0, True
    cfg.loss.fft_sizes = [128, 512]
    return validate(cfg)


def test_a_training_step_on_the_per_stem_loss_reduces_it():
    from automix.train.loop import Objective
    from automix.train.stem_targets import stem_targets

    cfg = _per_stem_config(Path("unused"))
    torch.manual_seed(1)
    items = []
    for t in (3, 2):
        stems = torch.zeros(t, 2, 4000)
        stems[:, 0] = 0.1 * torch.randn(t, 4000)
        gain_db, pan = torch.full((t,), -6.0), torch.zeros(t)
        truth = stem_targets(stems[None], torch.zeros(1, t, dtype=torch.bool), gain_db[None], pan[None])[0]
        items.append({"stems": stems, "is_stereo": torch.zeros(t, dtype=torch.bool),
                      "track_groups": torch.arange(t), "target": truth.sum(0),
                      "track_gain_db": gain_db, "track_pan": pan})
    batch = collate(items)  # pads the per-stem truth like every track-axis key
    assert batch["track_gain_db"].tolist() == [[-6.0, -6.0, -6.0], [-6.0, -6.0, 0.0]]
    model = DAE(DAEConfig(sample_rate_hz=RATE, **cfg.model.sizes)).train()
    objective = Objective(cfg)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-2)
    first = None
    for _ in range(5):
        optimiser.zero_grad()
        loss, terms = objective(model, batch)
        loss.backward()
        optimiser.step()
        first = terms["per_stem"] if first is None else first
    # Unity gain vs −6 dB and −3 dB centre pan: |1 − 0.354| / 0.354 ≈ 1.83 at the start.
    assert abs(first - 1.83) < 0.02
    assert objective(model, batch)[1]["per_stem"] < 0.9 * first


def test_per_stem_truth_from_song_json_sums_to_the_cached_mix(tmp_path):
    """A real-corpus-style song whose mix is its stems at the recorded gains and pans: the
    dataset's truth-processed stems add up to the cached mix."""
    import json

    import soundfile as sf

    from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs
    from automix.train import loop, stem_targets

    cfg = _per_stem_config(tmp_path)
    rng = np.random.default_rng(0)
    n = RATE
    for split in ("train", "val"):
        folder = tmp_path / "real" / split / f"song_{split}"
        (folder / "stems").mkdir(parents=True)
        tracks, mix = [], np.zeros((2, n))
        for k, (name, gain, pan) in enumerate((("bass", -4.0, 0.0), ("piano", 2.0, -0.6), ("kick", -9.0, 0.3))):
            x = np.sin(2 * np.pi * 110 * (k + 1) * np.arange(n) / RATE) + 0.1 * rng.standard_normal(n)
            x *= 10 ** ((NORMALISED_STEM_LUFS - integrated_lufs(x[None], RATE)) / 20)
            file = f"stems/{k + 1:02d}_{name}.flac"
            sf.write(folder / file, x.astype(np.float32), RATE, subtype="PCM_24")
            theta = (pan + 1) * np.pi / 4
            mix += 10 ** (gain / 20) * np.array([[np.cos(theta)], [np.sin(theta)]]) * x
            tracks.append({"file": file, "gain_db": gain, "pan": pan, "stem_lufs": NORMALISED_STEM_LUFS})
        sf.write(folder / "mix.flac", mix.T.astype(np.float32), RATE, subtype="PCM_24")
        (folder / "song.json").write_text(json.dumps({"format": "automix-real-song", "split": split,
                                                      "mix": {"file": "mix.flac", "gain_db": 0.0},
                                                      "tracks": tracks}))
    data = loop.make_dataset(cfg, "val", 0, 4, print)
    assert isinstance(data, stem_targets.StemTargetDataset)
    batch = collate([data[i] for i in range(2)])
    assert sorted(batch["track_gain_db"][0].tolist()) == [-9.0, -4.0, 2.0]
    truth = stem_targets.stem_targets(batch["stems"], batch["is_stereo"], batch["track_gain_db"], batch["track_pan"])
    residual = (truth.sum(1) - batch["target"]).square().mean() / batch["target"].square().mean()
    assert float(10 * torch.log10(residual)) < -30.0


def test_per_stem_loss_config_errors():
    import pytest

    from automix.train.config import ConfigError, validate

    cfg = _per_stem_config(Path("unused"))
    cfg.loss.per_stem = -1.0
    with pytest.raises(ConfigError, match="loss.per_stem: expected a number ≥ 0"):
        validate(cfg)
    cfg.loss.per_stem, cfg.model.kind, cfg.model.sizes = 1.0, "wave-u-net", {}
    with pytest.raises(ConfigError, match="loss.per_stem: a wave-u-net model outputs only the mix"):
        validate(cfg)


def test_no_burst_at_the_end_whatever_the_length():
    """A length just short of a whole number of hops left the last samples under one frame's
    window tail, which the iSTFT divides by (the shipped dae peaked at 11.9 there on a 30 s song)."""
    model = _tiny()
    for remainder in (4, 64, 124, 127):
        torch.manual_seed(0)
        stems = torch.randn(1, 1, 2, 128 * 20 + remainder)
        with torch.no_grad():
            out = model(stems, None, None, None, torch.tensor([[4]]))[0].abs().amax(0)
        assert float(out[-128:].max()) < 1.5 * float(out[:-128].max()), remainder
