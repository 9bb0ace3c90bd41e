"""The default mixer: a shipped model chosen on the real corpus's test split, and safe on real stems.

The default may only be a trained model when the committed held-out evaluation
(docs/results/real-test, `automix eval --dataset data/real --split test`) shows it beating
`rules`, equal loudness and unity; these tests fail when a retrained checkpoint or a new result
breaks that, and when the default spoils a balance the stems already carry.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import SR, bass, hats, kick, lead, pad
from typer.testing import CliRunner

from automix.cli import app
from automix.console.loudness import integrated_lufs
from automix.console.render import render_console
from automix.io import Stem
from automix.mixers import DEFAULT_MIXER, get_mixer
from automix.models.registry import available_models

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "real-test" / "summary.json"
BASELINES = ("unity", "equal-loudness", "rules")


def test_default_is_a_shipped_model_and_marked():
    assert DEFAULT_MIXER == "forest" and DEFAULT_MIXER in available_models()
    lines = CliRunner().invoke(app, ["models"]).stdout.splitlines()
    marked = [line.split()[0] for line in lines if line.rstrip().endswith("(default)")]
    assert marked == [DEFAULT_MIXER]
    assert "rules" in [line.split()[0] for line in lines if line.strip()]  # `--model rules` stays


def test_default_beats_the_baselines_on_the_real_test_split():
    summary = json.loads(RESULTS.read_text(encoding="utf-8"))
    assert summary["config"]["split"] == "test" and len(summary["songs"]) >= 50
    medians = {m: v["median"] for m, v in summary["metrics"]["balance_error_db"].items()}
    for baseline in BASELINES:
        assert medians[DEFAULT_MIXER] < medians[baseline], (baseline, medians)
    for family, metrics in summary["family_metrics"].items():
        family_medians = {m: v["median"] for m, v in metrics["balance_error_db"].items()}
        assert family_medians[DEFAULT_MIXER] <= family_medians["unity"] + 0.5, family


def _centred(levels: np.ndarray) -> np.ndarray:
    return levels - levels.mean()


def test_default_keeps_a_balance_the_stems_already_carry():
    """Stems exported at an engineer's balance (kick, bass, pad, lead, hats at chosen levels) must come
    out close to that balance: the model trusts a given balance that agrees with it."""
    sources = [kick(4.0), bass(4.0), pad(4.0), lead(4.0), hats(4.0)]
    names = ["kick.wav", "bass.wav", "pad.wav", "lead_vocal.wav", "hats.wav"]
    wanted_lu = np.array([2.0, 1.0, -4.0, 3.0, -6.0])
    stems = []
    for name, audio, level in zip(names, sources, wanted_lu, strict=True):
        gain = 10.0 ** ((-23.0 + level - integrated_lufs(audio, SR)) / 20.0)
        stems.append(Stem(name, (audio * gain).astype(np.float32), SR, None))
    settings = get_mixer(DEFAULT_MIXER).predict(stems, SR)
    _, tracks = render_console([s.audio for s in stems], SR, settings.rounded(), return_tracks=True)
    out_lu = np.array([integrated_lufs(t, SR) for t in tracks])
    error_db = np.abs(_centred(out_lu) - _centred(wanted_lu))
    # unity keeps it exactly; the default may move it, but not far (equal loudness: 3.2 dB mean)
    assert error_db.mean() < 1.5, (out_lu, error_db)
    equal_loudness_error = np.abs(_centred(wanted_lu)).mean()
    assert error_db.mean() < 0.5 * equal_loudness_error


def test_default_mixer_loads_without_torch():
    """The forest is numpy arrays: a `mix` with the default must not pay ≈ 1.6 s for importing torch."""
    import subprocess
    import sys

    code = ("import sys; from automix.mixers import DEFAULT_MIXER, get_mixer; "
            "m = get_mixer(DEFAULT_MIXER); print(type(m).__name__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["BalanceMixer", "False"]
