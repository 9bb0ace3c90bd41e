"""The differentiable console and the block renderer produce the same mix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch

from automix.console.automation import Lane
from automix.console.biquad import eq_sos, sos_to_numpy
from automix.console.render import render_console
from automix.console.schema import FX, MASTER, TRACK
from automix.console.settings import MixSettings
from automix.console.torch_console import automation_curves, mix_console
from automix.errors import AutomixError

SR = 22050
N = SR  # one second
N_SETS = 50


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _signals() -> list[np.ndarray]:
    """White noise (mono), a stereo sine sum, drum-like decaying transients (mono), stereo noise bursts."""
    rng = np.random.default_rng(7)
    t = np.arange(N) / SR
    noise = rng.standard_normal((1, N)) * 0.1
    chord = np.stack([
        0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 440 * t + 1.0),
        0.2 * np.sin(2 * np.pi * 165 * t) + 0.1 * np.sin(2 * np.pi * 1320 * t),
    ])
    phase = (t * 4.0) % 1.0  # four hits per second
    kick = 0.8 * np.exp(-phase * 25.0) * np.sin(2 * np.pi * 60 * phase * (1 + 2 * np.exp(-phase * 40)))
    drums = (kick + 0.3 * rng.standard_normal(N) * np.exp(-((t * 8.0 + 0.5) % 1.0) * 40.0))[None]
    bursts = rng.standard_normal((2, N)) * 0.2 * (np.sin(2 * np.pi * 1.5 * t) > 0.3)
    return [s.astype(np.float32) for s in (noise, chord, drums, bursts)]


def _draw(rng: np.random.Generator, tracks: int, dynamics: bool) -> MixSettings:
    """Plausible-but-varied settings: the middle 70 % of every range, through the schema."""
    settings = MixSettings.neutral([f"t{i}" for i in range(tracks)])
    settings.track = TRACK.from_normalised(rng.uniform(0.15, 0.85, (tracks, len(TRACK))))
    settings.fx = FX.from_normalised(rng.uniform(0.15, 0.85, len(FX)))
    settings.master = MASTER.from_normalised(rng.uniform(0.15, 0.85, len(MASTER)))
    if not dynamics:  # linear chain only: compressors at ratio 1, reverb send off
        for i in range(tracks):
            settings.set(i, "compressor.ratio", 1.0)
            settings.set(i, "send.reverb_db", -60.0)
        settings.set_master("compressor.ratio", 1.0)
    return settings


def _torch_mixes(signals: list[np.ndarray], all_settings: list[MixSettings]) -> np.ndarray:
    batch, tracks = len(all_settings), len(signals)
    stems = torch.zeros(batch, tracks, 2, N)
    for i, s in enumerate(signals):
        stems[:, i, : s.shape[0]] = torch.from_numpy(s)
    is_stereo = torch.tensor([[s.shape[0] == 2 for s in signals]] * batch)

    def stack(attr: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(s, attr) for s in all_settings])).float()

    with torch.no_grad():
        return mix_console(stems, is_stereo, stack("track"), stack("fx"), stack("master"), SR).numpy()


def _error_db(reference: np.ndarray, other: np.ndarray) -> float:
    diff = np.sum((reference.astype(np.float64) - other) ** 2)
    return 10 * math.log10(diff / np.sum(reference.astype(np.float64) ** 2) + 1e-30)


@pytest.mark.parametrize(("dynamics", "max_error_db"), [(False, -40.0), (True, -30.0)])
def test_torch_console_matches_renderer(dynamics: bool, max_error_db: float) -> None:
    signals = _signals()
    rng = np.random.default_rng(11 if dynamics else 12)
    all_settings = [_draw(rng, len(signals), dynamics) for _ in range(N_SETS)]
    torch_mixes = _torch_mixes(signals, all_settings)
    errors = []
    for settings, torch_mix in zip(all_settings, torch_mixes):
        rendered = render_console(signals, SR, settings, block_size=4096, workers=1)  # pool tested below
        assert rendered.shape == (2, N) and rendered.dtype == np.float32
        errors.append(_error_db(rendered, torch_mix))
    worst = max(errors)
    assert worst < max_error_db, f"worst set {int(np.argmax(errors))}: {worst:.1f} dB"


def test_renderer_block_size_and_workers_do_not_change_the_result() -> None:
    signals = _signals()
    settings = _draw(np.random.default_rng(3), len(signals), dynamics=True)
    settings.set_fx("reverb.decay_s", 2.5)  # IR longer than the song: the tail spans many partitions
    small = render_console(signals, SR, settings, block_size=4096, workers=2)
    large = render_console(signals, SR, settings, block_size=65536, workers=2)
    single = render_console(signals, SR, settings, block_size=4096, workers=1)
    assert np.max(np.abs(small - large)) < 1e-6 * max(1.0, float(np.max(np.abs(large))))
    assert np.array_equal(small, single)
    odd = render_console(signals, SR, settings, block_size=1000, workers=3)
    assert np.max(np.abs(odd - large)) < 1e-6 * max(1.0, float(np.max(np.abs(large))))


def test_renderer_returns_post_pan_tracks_that_sum_to_the_dry_mix() -> None:
    signals = _signals()
    settings = _draw(np.random.default_rng(5), len(signals), dynamics=False)
    settings.master = MASTER.defaults()  # neutral master: only its 10 Hz DC blocker acts
    mix, tracks = render_console(signals, SR, settings, block_size=4096, return_tracks=True)
    assert len(tracks) == len(signals) and all(t.shape == (2, N) and t.dtype == np.float32 for t in tracks)
    master_sos = sos_to_numpy(eq_sos(torch.from_numpy(settings.master), MASTER, SR))
    expected = scipy.signal.sosfilt(master_sos, np.sum(tracks, axis=0, dtype=np.float64), axis=-1)
    assert _error_db(expected, mix) < -100.0


def test_padding_tracks_contribute_nothing() -> None:
    signals = _signals()
    settings = _draw(np.random.default_rng(9), len(signals), dynamics=True)
    stems = torch.zeros(1, len(signals), 2, N)
    for i, s in enumerate(signals):
        stems[0, i, : s.shape[0]] = torch.from_numpy(s)
    is_stereo = torch.tensor([[s.shape[0] == 2 for s in signals]])
    args = (torch.from_numpy(settings.track)[None].float(), torch.from_numpy(settings.fx)[None].float(),
            torch.from_numpy(settings.master)[None].float(), SR)
    mask = torch.tensor([[True, True, False, True]])
    with torch.no_grad():
        masked = mix_console(stems, is_stereo, *args, track_mask=mask)
        stems[0, 2] = 0.0
        silent = mix_console(stems, is_stereo, *args)
    assert torch.allclose(masked, silent, atol=1e-6)
    assert float(masked.abs().max()) > 0.01


def test_renderer_rejects_inconsistent_stems() -> None:
    signals = _signals()
    settings = MixSettings.neutral([f"t{i}" for i in range(len(signals))])
    with pytest.raises(AutomixError, match="3 stems but the settings have 4 tracks"):
        render_console(signals[:3], SR, settings)
    with pytest.raises(AutomixError, match="has 100 samples"):
        render_console([*signals[:3], signals[3][:, :100]], SR, settings)
    with pytest.raises(AutomixError, match="1 or 2 channels"):
        render_console([*signals[:3], np.zeros((3, N), np.float32)], SR, settings)


def test_track_sinks_receive_the_returned_tracks_and_do_not_change_the_mix() -> None:
    signals = _signals()
    settings = _draw(np.random.default_rng(13), len(signals), dynamics=True)
    plain = render_console(signals, SR, settings, block_size=5000, workers=2)
    mix, tracks = render_console(signals, SR, settings, block_size=5000, workers=1, return_tracks=True)
    received: list[list[np.ndarray]] = [[] for _ in signals]
    sinks = [blocks.append for blocks in received]
    streamed = render_console(signals, SR, settings, block_size=5000, workers=2, track_sinks=sinks)
    assert np.array_equal(plain, mix) and np.array_equal(plain, streamed)
    for blocks, track in zip(received, tracks):
        assert [b.shape[1] for b in blocks] == [5000] * 4 + [N - 20000]
        assert np.array_equal(np.concatenate(blocks, axis=1), track)
    assert min(float(np.abs(t).max()) for t in tracks) > 1e-3


@pytest.mark.parametrize("stereo", [False, True])
def test_a_ridden_eq_band_feeds_the_compressor_in_both_paths(stereo: bool) -> None:
    """A bell ridden 0 → +12 dB on its tone, into a hard compressor: the compressor hears the ride
    (the level rises far less than 12 dB), and both paths agree closely."""
    t = np.arange(2 * N) / SR
    tone = (0.3 * np.sin(2 * np.pi * 700.0 * t)).astype(np.float32)[None].repeat(2 if stereo else 1, axis=0)
    settings = MixSettings.neutral(["tone.wav"])
    for name, value in [("eq.band_2.freq_hz", 700.0), ("eq.band_2.q", 1.0), ("compressor.threshold_db", -30.0),
                        ("compressor.ratio", 20.0), ("compressor.attack_ms", 1.0), ("compressor.knee_db", 0.0)]:
        settings.set(0, name, value)
    settings.automation = {"tone.wav": {"eq.band_2.gain_db": Lane((0.5, 1.5), (0.0, 12.0))}}
    rendered = render_console([tone], SR, settings, block_size=5000, workers=1)
    stems = torch.zeros(1, 1, 2, 2 * N)
    stems[0, 0, : tone.shape[0]] = torch.from_numpy(tone)
    with torch.no_grad():
        mixed = mix_console(stems, torch.tensor([[stereo]]), torch.from_numpy(settings.track)[None].float(),
                            torch.from_numpy(settings.fx)[None].float(),
                            torch.from_numpy(settings.master)[None].float(), SR,
                            automation=automation_curves([settings], 2 * N, SR))[0].numpy()
    assert _error_db(rendered, mixed) < -80.0

    def rise_db(mix: np.ndarray) -> float:  # level over the last 0.2 s against 0.1…0.3 s (after the attack)
        return 10 * math.log10(np.mean(mix[:, -int(0.2 * SR):] ** 2) / np.mean(mix[:, int(0.1 * SR):int(0.3 * SR)] ** 2))

    assert rise_db(rendered) < 1.5  # ratio 20 above the threshold: 12 dB in, 0.6 dB out
    settings.set(0, "compressor.ratio", 1.0)
    assert rise_db(render_console([tone], SR, settings, block_size=5000, workers=1)) > 11.5
