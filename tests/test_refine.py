"""Inference-time refinement: it lowers the AF loss to a reference, stays in range, keeps frozen values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from automix.console.render import render_console
from automix.console.schema import FX, MASTER, TRACK
from automix.console.settings import MixSettings
from automix.measure.distances import AudioFeatureLoss
from automix.refine import ANALYSIS_RMS_DBFS, normalise_rms, reference_targets, refine

SR = 22050  # the console works at any rate (EQ frequencies are clamped below 0.45·fs); half the cost


@pytest.fixture
def example(synth):
    """Three 1 s stems mixed flat, and a reference made of the same sounds mixed differently:
    kick 10 dB down, the pad wide, hats loud and panned right (the style to move towards)."""
    stems = [synth.kick(1.0, SR), synth.pad(1.0, SR), synth.hats(1.0, SR)]
    names = ["kick.wav", "pad.wav", "hats.wav"]
    styled = MixSettings.neutral(names)
    styled.set("kick.wav", "gain_db", -10.0)
    styled.set("pad.wav", "width", 1.8)
    styled.set("hats.wav", "gain_db", 8.0)
    styled.set("hats.wav", "pan", 0.6)
    reference = render_console(stems, SR, styled)
    return stems, names, reference


def test_refinement_lowers_the_af_loss(example):
    stems, names, reference = example
    init = MixSettings.neutral(names)
    init.set("kick.wav", "trim_db", 1.5)
    result = refine([stems], [[reference]], init, SR, steps=6, lr=0.1, penalty=0.1)
    af = result.terms["af"]
    assert len(af) == 7 and len(result.loss_history) == 7
    assert af[-1] < 0.7 * af[0], af
    out = result.settings
    for group, values in ((TRACK, out.track), (FX, out.fx), (MASTER, out.master)):
        assert np.all(values >= group.minimum()) and np.all(values <= group.maximum())
    # Frozen: trim (the stems' loudness normalisation) and the master level.
    np.testing.assert_array_equal(out.track[:, TRACK.index("trim_db")], init.track[:, TRACK.index("trim_db")])
    assert out.master[MASTER.index("gain_db")] == init.master[MASTER.index("gain_db")]
    # It moved the balance the way the reference is mixed: hats up relative to the kick.
    gain = TRACK.index("gain_db")
    assert out.track[2, gain] - out.track[0, gain] > 0.5
    assert result.seconds_per_step > 0


def test_zero_steps_return_the_start_exactly(example):
    stems, names, reference = example
    init = MixSettings.neutral(names)
    init.set("pad.wav", "eq.band_2.freq_hz", 913.7)
    result = refine([stems], [[reference]], init, SR, steps=0)
    np.testing.assert_array_equal(result.settings.track, init.track)
    np.testing.assert_array_equal(result.settings.fx, init.fx)
    np.testing.assert_array_equal(result.settings.master, init.master)
    assert len(result.terms["af"]) == 1 and result.terms["af"][0] > 0


def test_rms_normalisation_hits_the_analysis_level():
    x = torch.randn(3, 2, 1000) * torch.tensor([0.01, 0.3, 2.0])[:, None, None]
    y = normalise_rms(x)
    level_db = 10 * torch.log10(y.pow(2).mean(dim=(-2, -1)))
    torch.testing.assert_close(level_db, torch.full((3,), ANALYSIS_RMS_DBFS), atol=1e-3, rtol=0)


def test_several_references_blend_to_the_mean_of_their_features(synth):
    af = AudioFeatureLoss(SR)
    bright = np.concatenate([synth.hats(1.0, SR)] * 2)
    dark = np.concatenate([synth.bass(1.0, SR)] * 2)
    blended = reference_targets(af, [[bright], [dark, dark]])
    alone = [reference_targets(af, [[r]]) for r in (bright, dark)]
    for name, value in blended.items():
        torch.testing.assert_close(value, (alone[0][name] + alone[1][name]) / 2)
    # Bark spectra of the two really differ, so the blend is a real compromise.
    assert float((alone[0]["bark_spectrum"] - alone[1]["bark_spectrum"]).abs().max()) > 1.0
