"""``loss.console: neural``: config validation and the neural strip render (small random TCN, so
the tests do not depend on the shipped checkpoint's weights)."""

from __future__ import annotations

import copy

import pytest
import torch

from automix.console.schema import FX, MASTER, TRACK
from automix.console.torch_console import mix_console
from automix.models.tcn import TCN, TCNConfig
from automix.train.config import validate
from automix.train.config_types import ConfigError, DataSection, LossSection, ModelSection, TrainConfig
from automix.train.neural_render import NeuralConsole

SR = 8000


def _config(**loss) -> TrainConfig:
    return TrainConfig(model=ModelSection(kind="dmc"),
                       data=DataSection(method="1", sample_rate_hz=SR, excerpt_s=1.0),
                       loss=LossSection(sum_diff_stft=1.0, fft_sizes=[256], **loss))


def test_console_defaults_to_dsp_and_accepts_neural() -> None:
    assert validate(_config()).loss.console == "dsp"
    assert validate(_config(console="neural")).loss.console == "neural"


def test_unknown_console_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"loss.console: expected 'dsp' or 'neural', got 'analog'"):
        validate(_config(console="analog"))


def test_neural_console_needs_the_full_render() -> None:
    with pytest.raises(ConfigError, match=r"loss.render: console"):
        validate(_config(console="neural", render="balance"))


def _console() -> NeuralConsole:
    torch.manual_seed(0)
    return NeuralConsole(TCN(TCNConfig(sample_rate_hz=SR, n_blocks=3, channels=4, kernel_size=5)), SR)


def _inputs(batch: int = 2, tracks: int = 3, n: int = 2048) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    stems = 0.1 * torch.randn(batch, tracks, 2, n, generator=g)
    is_stereo = torch.tensor([[True, False, True]] * batch)[:, :tracks]
    stems[..., 1, :] *= is_stereo[..., None]  # a mono stem holds channel 0 only
    mask = torch.ones(batch, tracks, dtype=torch.bool)
    mask[-1, -1] = False  # one padding track
    track = torch.from_numpy(TRACK.defaults()).float().expand(batch, tracks, -1).clone()
    # A compressing strip: the default threshold (0 dB) sits at its range's end, where the
    # schema's clamp gives no gradient.
    track[..., TRACK.index("compressor.threshold_db")] = -20.0
    track[..., TRACK.index("compressor.ratio")] = 4.0
    fx = torch.from_numpy(FX.defaults()).float().expand(batch, -1).clone()
    master = torch.from_numpy(MASTER.defaults()).float().expand(batch, -1).clone()
    return stems, is_stereo, track, fx, master, mask


def test_neural_render_has_the_dsp_render_shape() -> None:
    stems, is_stereo, track, fx, master, mask = _inputs()
    neural = _console()(stems, is_stereo, track, fx, master, mask)
    dsp = mix_console(stems, is_stereo, track, fx, master, SR, mask)
    assert neural.shape == dsp.shape == (2, 2, stems.shape[-1])
    assert torch.isfinite(neural).all()


def test_strip_is_frozen_and_gradients_reach_the_settings() -> None:
    console = _console().train()
    assert not console.strip.training
    assert not any(p.requires_grad for p in console.parameters())
    stems, is_stereo, track, fx, master, mask = _inputs()
    settings = TRACK.to_normalised(track).requires_grad_(True)  # what the controller outputs
    mix = console(stems, is_stereo, TRACK.from_normalised(settings), fx, master, mask)
    mix.square().mean().backward()
    grad = settings.grad
    assert grad is not None and torch.isfinite(grad).all()
    for name in ("eq.low_shelf.gain_db", "compressor.threshold_db", "gain_db"):
        assert grad[..., TRACK.index(name)][mask].abs().sum() > 0, name  # through the TCN conditioning too
    assert all(p.grad is None for p in console.parameters())


def test_changing_a_strip_parameter_changes_the_neural_render() -> None:
    console = _console()
    stems, is_stereo, track, fx, master, mask = _inputs()
    before = console(stems, is_stereo, track, fx, master, mask)
    boosted = copy.deepcopy(track)
    boosted[..., TRACK.index("eq.high_shelf.gain_db")] = 12.0
    after = console(stems, is_stereo, boosted, fx, master, mask)
    assert (after - before).abs().max() > 1e-6


def test_sample_rate_must_match_the_strip() -> None:
    with pytest.raises(Exception, match="set data.sample_rate_hz to 8000"):
        NeuralConsole(TCN(TCNConfig(sample_rate_hz=SR, n_blocks=1, channels=2, kernel_size=3)), 16000)
