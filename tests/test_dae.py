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
