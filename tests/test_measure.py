"""Losses: hand-computed feature values, AF/MRSTFT behaviour, parameter loss."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from automix.console.schema import FX, MASTER, TRACK
from automix.measure.bark import bark_band_centres_hz, bark_fft_size, bark_to_hz, hz_to_bark
from automix.measure.distances import AF_WEIGHTS, AudioFeatureLoss, MRSTFTLoss, SumDiffSTFTLoss
from automix.measure.features import BarkSpectrum, crest_factor_db, rms, stereo_imbalance, stereo_width
from automix.train.losses import ParameterLoss

SR = 22050


def sine(freq_hz: float, seconds: float, amplitude: float = 1.0, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return (amplitude * torch.sin(2 * math.pi * freq_hz * t)).float()


def stereo(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    return torch.stack([left, right])[None]  # (1, 2, N)


def noise_mix(seconds: float, seed: int, sr: int = SR) -> torch.Tensor:
    """A partly correlated, slightly left-heavy stereo noise (1, 2, N)."""
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(int(seconds * sr), generator=g)
    left = 0.2 * (common + 0.5 * torch.randn(common.shape, generator=g))
    right = 0.15 * (common + 0.5 * torch.randn(common.shape, generator=g))
    return stereo(left, right)


# ---- features ----------------------------------------------------------------------------------


def test_rms_of_sine_is_amplitude_over_sqrt2():
    x = sine(441.0, 1.0, amplitude=0.5)  # 441 Hz at 22.05 kHz: exactly 441 periods
    assert rms(x).item() == pytest.approx(0.5 / math.sqrt(2), rel=1e-5)
    assert rms(torch.zeros(1, 2, 100))[0].tolist() == pytest.approx([1e-4, 1e-4])  # −80 dBFS floor


def test_crest_factor_square_is_0db_and_sine_is_3db():
    square = torch.sign(sine(441.0, 1.0) + 1e-9)  # ±1 full scale
    assert crest_factor_db(square).item() == pytest.approx(0.0, abs=1e-4)
    # 1 kHz at 48 kHz: 48 samples a period, a sample lands on each crest.
    s = sine(1000.0, 1.0, sr=48000)
    assert crest_factor_db(s).item() == pytest.approx(10 * math.log10(2), abs=1e-4)  # 3.0103 dB


def test_width_and_imbalance_hand_values():
    x = sine(441.0, 1.0, 0.5)
    mono = stereo(x, x)
    assert stereo_width(mono).item() == pytest.approx(0.0, abs=1e-9)
    assert stereo_imbalance(mono).item() == pytest.approx(0.0, abs=1e-7)
    left_only = stereo(x, torch.zeros_like(x))
    assert stereo_imbalance(left_only).item() == pytest.approx(-1.0)
    assert stereo_width(left_only).item() == pytest.approx(1.0)
    assert stereo_imbalance(stereo(torch.zeros_like(x), x)).item() == pytest.approx(1.0)
    # R = L/2: side/mid energy (1/2)² / (3/2)² = 1/9; imbalance (1/4 − 1) / (1/4 + 1) = −0.6
    half = stereo(x, 0.5 * x)
    assert stereo_width(half).item() == pytest.approx(1 / 9, rel=1e-5)
    assert stereo_imbalance(half).item() == pytest.approx(-0.6, rel=1e-5)


def test_bark_scale_inverse_and_band_layout():
    freqs = np.array([20.0, 100.0, 1000.0, 5000.0, 15000.0, 20000.0])
    assert bark_to_hz(hz_to_bark(freqs)) == pytest.approx(freqs, rel=1e-9)
    assert (bark_fft_size(44100), bark_fft_size(48000), bark_fft_size(22050)) == (32768, 32768, 16384)
    centres = bark_band_centres_hz()
    assert len(centres) == 24 and np.all(np.diff(centres) > 0)
    assert 20.0 < centres[0] < 150.0 and 10000.0 < centres[-1] < 20000.0


@pytest.mark.parametrize("band", [3, 10, 17])
def test_bark_spectrum_puts_a_sine_in_its_band(band):
    bark = BarkSpectrum(SR)
    bin_hz = SR / bark.fft_size
    freq = round(bark_band_centres_hz()[band] / bin_hz) * bin_hz  # bin-centred: exact Hann bins
    x = sine(freq, 3.0, amplitude=0.5)
    spec = bark(stereo(x, x))[0]  # (2, 24)
    mid_db = spec[0] * (20 / math.log(10))
    # Hann: A/2 in the bin, A/4 in each neighbour, triangle weight ≈ 1 at the centre → ≈ A.
    assert mid_db[band].item() == pytest.approx(20 * math.log10(0.5), abs=0.3)
    others = torch.cat([mid_db[:band], mid_db[band + 1 :]])
    assert others.max().item() < mid_db[band].item() - 40.0
    assert spec[1].max().item() == pytest.approx(math.log(1e-8), abs=0.01)  # no side signal


# ---- AF loss -------------------------------------------------------------------------------------


def test_af_loss_zero_for_identical_and_monotonic_in_gain():
    loss = AudioFeatureLoss(SR)
    ref = noise_mix(2.0, seed=1)
    assert loss(ref, ref).item() == pytest.approx(0.0, abs=1e-10)
    values = [loss(ref * 10 ** (g / 20), ref).item() for g in (1.0, 2.0, 4.0, 8.0)]
    assert all(a < b for a, b in itertools.pairwise(values))
    # A pure gain moves only RMS and Bark: ln-offset g·ln10/20 in every band → 0.1·offset².
    terms = loss.terms(ref * 10 ** (6 / 20), ref)
    offset = 6 * math.log(10) / 20
    # Bands above Nyquist (22.05 kHz rate) are empty: log(eps) for both, no contribution.
    active = (loss.bark.filterbank.sum(0) > 0).float().mean().item()
    assert active < 1.0
    assert terms["bark_spectrum"].item() == pytest.approx(0.1 * offset**2 * active, rel=1e-3)
    assert terms["crest_factor"].item() == pytest.approx(0.0, abs=1e-9)
    assert terms["stereo_width"].item() == pytest.approx(0.0, abs=1e-9)
    assert set(terms) == set(AF_WEIGHTS)
    assert sum(t.item() for t in terms.values()) == pytest.approx(loss(ref * 10 ** (6 / 20), ref).item())


def test_af_loss_weighted_terms_hand_values():
    loss = AudioFeatureLoss(SR)
    x = sine(441.0, 1.0, 0.5)
    pred, ref = stereo(x, torch.zeros_like(x)), stereo(x, x)  # left only vs centred
    terms = loss.terms(pred, ref)
    assert terms["stereo_imbalance"].item() == pytest.approx(1.0 * (-1.0 - 0.0) ** 2, rel=1e-5)
    assert terms["stereo_width"].item() == pytest.approx(1.0 * (1.0 - 0.0) ** 2, rel=1e-5)
    # RMS per channel: (0.3536 − 0.3536)² and (1e-4 − 0.3536)², mean over 2 channels, × 0.1
    expected_rms = 0.1 * (0.5 / math.sqrt(2) - 1e-4) ** 2 / 2
    assert terms["rms"].item() == pytest.approx(expected_rms, rel=1e-4)


def test_af_loss_is_length_invariant():
    loss = AudioFeatureLoss(SR)
    short, long = noise_mix(2.0, seed=3), noise_mix(5.0, seed=3)
    other = noise_mix(2.0, seed=4) * 0.5
    same_process = loss(short, long).item()
    assert same_process < 0.02 * loss(other, long).item()  # same signal statistics ≈ 0
    x = sine(441.0, 5.0, 0.5)
    pair = loss.terms(stereo(x[: 3 * SR], x[: 3 * SR]), stereo(x, x))
    for name in ("rms", "crest_factor", "stereo_width", "stereo_imbalance"):
        assert pair[name].item() == pytest.approx(0.0, abs=1e-9)


def test_af_loss_gradients_finite_even_for_silence():
    loss = AudioFeatureLoss(SR)
    ref = noise_mix(1.0, seed=5)
    pred = noise_mix(1.0, seed=6).requires_grad_()
    loss(pred, ref).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # Exact silence is a stationary point (every feature is even in x) but must not give NaN.
    silent = torch.zeros(1, 2, SR, requires_grad=True)
    loss(silent, ref).backward()
    assert torch.isfinite(silent.grad).all()


def test_af_loss_rejects_bad_input():
    loss = AudioFeatureLoss(SR)
    with pytest.raises(ValueError, match="batch, 2, samples"):
        loss(torch.zeros(1, 1, 100), torch.zeros(1, 2, 100))
    with pytest.raises(ValueError, match="unknown AF-loss"):
        AudioFeatureLoss(SR, weights={"loudness": 1.0})


# ---- MRSTFT --------------------------------------------------------------------------------------


def test_mrstft_losses_zero_for_identical_positive_otherwise():
    ref = noise_mix(0.5, seed=7)
    for loss in (MRSTFTLoss(), SumDiffSTFTLoss()):
        assert loss(ref, ref).item() == pytest.approx(0.0, abs=1e-7)
        assert loss(ref.transpose(1, 2).contiguous().transpose(1, 2), ref).item() == pytest.approx(0.0, abs=1e-7)
        assert loss(ref * 0.5, ref).item() > 0.1
        pred = (ref * 0.5).requires_grad_()
        loss(pred, ref).backward()
        assert torch.isfinite(pred.grad).all()
    # Swapping channels changes only the difference signal's sign: sum/diff ignores it, MRSTFT does not.
    swapped = ref.flip(1)
    assert SumDiffSTFTLoss()(swapped, ref).item() == pytest.approx(0.0, abs=1e-6)
    assert MRSTFTLoss()(swapped, ref).item() > 0.1
    with pytest.raises(ValueError, match="one shape"):
        MRSTFTLoss()(ref[..., :1000], ref)
    with pytest.raises(ValueError, match="stereo"):
        SumDiffSTFTLoss()(ref[:, :1], ref[:, :1])


# ---- parameter loss ------------------------------------------------------------------------------


def test_parameter_loss_masked_weighted_l1():
    b, t = 2, 3
    true = {"track": torch.full((b, t, len(TRACK)), 0.5), "fx": torch.zeros(b, len(FX)),
            "master": torch.zeros(b, len(MASTER))}
    pred = {k: v.clone() for k, v in true.items()}
    pred["track"][:, 0] += 0.1  # every parameter of track 0 off by 0.1
    pred["track"][:, 2] = 9.0  # padding track: must not count
    pred["fx"][:, FX.index("reverb.decay_s")] = 0.4
    mask = torch.tensor([[True, True, False]] * b)
    loss = ParameterLoss()
    terms = loss.terms(pred, true, mask)
    assert terms["track"].item() == pytest.approx(0.1 / 2, rel=1e-5)  # 1 of 2 active tracks off by 0.1
    assert terms["fx"].item() == pytest.approx(0.4 / len(FX), rel=1e-5)
    assert terms["master"].item() == pytest.approx(0.0, abs=1e-9)
    assert loss(pred, true, mask).item() == pytest.approx(0.05 + 0.1, rel=1e-5)

    # Only the fader counts: track 0's fader error 0.1, averaged with track 1's 0.
    fader_only = {name: 0.0 for name in TRACK.names} | {"gain_db": 1.0}
    weighted = ParameterLoss(group_weights={"fx": 0.0}, param_weights={"track": fader_only})
    assert weighted(pred, true, mask).item() == pytest.approx(0.05, rel=1e-5)
    only_track = weighted({"track": pred["track"]}, true, mask)
    assert only_track.item() == pytest.approx(0.05, rel=1e-5)


def test_parameter_loss_validates():
    with pytest.raises(ValueError, match="unknown track parameter"):
        ParameterLoss(param_weights={"track": {"volume": 1.0}})
    with pytest.raises(ValueError, match="must match"):
        ParameterLoss()({"fx": torch.zeros(1, 2)}, {"fx": torch.zeros(1, 2)})
