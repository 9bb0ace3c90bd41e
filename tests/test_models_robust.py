"""Every shipped mixer and trained model on hostile stems (issue 17, part 1b): absurd level,
near silence, DC, clicks only, very short, very many. Each must give finite settings and a mix
under the true-peak ceiling: predicting directly, through :func:`automix.engine.mix`, through
``automix mix``, and (the model that takes references) through style transfer with refinement.

Absurd levels reach the mixers only with ``strict`` (the loader otherwise refuses a stem whose
samples are mostly beyond +60 dBFS), so the file-based paths run with ``--strict``; predicting
directly also covers what the loader never passes on (a stem at −100 dBFS).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_helpers import run
from signals import sine as _signal_sine

from automix import engine
from automix.console.finalize import finalize
from automix.console.loudness import true_peak_dbtp
from automix.console.render import render_console
from automix.console.schema import DEFAULT_CEILING_DBTP
from automix.errors import AutomixError
from automix.io import SILENCE_PEAK_DBFS, Stem
from automix.mixers import available_mixers, get_mixer
from automix.mixers.base import outputs_audio

SR = 22050
"""Rate of the generated stems, Hz (low, to keep the test short; the models resample anyway)."""

SECONDS = 1.0
ABSURD_PEAK = 1e28
"""Finite, but its square (1e56) overflows float32: the +569 dBFS broken render of the issue."""

MIXERS = list(available_mixers())
END_TO_END = {name for name in MIXERS if name in ("wave-u-net", "demucs-lite")}


def _tone(freq_hz: float, seconds: float = SECONDS, amp: float = 0.3, channels: int = 1) -> np.ndarray:
    return _signal_sine(freq_hz, seconds, amplitude=amp, sr=SR, channels=channels)


def _at_peak(audio: np.ndarray, peak: float) -> np.ndarray:
    return (audio.astype(np.float64) / np.abs(audio).max() * peak).astype(np.float32)


def _clicks(seconds: float = SECONDS) -> np.ndarray:
    x = np.zeros((1, round(seconds * SR)), np.float32)
    x[0, ::SR // 4] = 0.9  # four impulses a second, nothing between
    return x


def _band(synth) -> dict[str, np.ndarray]:
    return {"kick.wav": synth.kick(SECONDS, SR), "bass.wav": synth.bass(SECONDS, SR), "pad.wav": synth.pad(SECONDS, SR)}


def hostile_sets(synth) -> dict[str, dict[str, np.ndarray]]:
    """Name → stems (file name → float32 ``(channels, samples)``, equal lengths in a set)."""
    band = _band(synth)
    return {
        "absurd level": {**band, "lead.wav": _at_peak(synth.lead(SECONDS, SR), ABSURD_PEAK)},
        "absurd level alone": {"lead.wav": _at_peak(synth.lead(SECONDS, SR), ABSURD_PEAK)},
        "every stem absurd": {name: _at_peak(x, ABSURD_PEAK) for name, x in band.items()},
        "near-silent stem": {**band, "lead.wav": _at_peak(synth.lead(SECONDS, SR), 1e-5)},  # −100 dBFS
        "near-silent alone": {"lead.wav": _at_peak(synth.lead(SECONDS, SR), 1e-5)},
        "pure DC": {"dc.wav": np.full((2, round(SECONDS * SR)), 0.5, np.float32)},
        "DC in a band": {**band, "dc.wav": np.full((1, round(SECONDS * SR)), -0.25, np.float32)},
        "clicks only": {"clicks.wav": _clicks()},
        "very short": {name: x[:, :round(0.1 * SR)].copy() for name, x in band.items()},
        "many stems": {f"tone{i:02d}.wav": _tone(60.0 * 1.09 ** i, 0.25) for i in range(40)},
    }


LOADER_SKIPS = {"near-silent alone"}
"""Sets the loader refuses as a whole (every stem below −80 dBFS is skipped as silent)."""


@pytest.fixture(scope="module")
def sets(synth) -> dict[str, dict[str, np.ndarray]]:
    return hostile_sets(synth)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, sets) -> dict[str, Path]:
    """Each set written as float32 WAV stems (float keeps the absurd levels)."""
    root = tmp_path_factory.mktemp("hostile")
    out = {}
    for name, stems in sets.items():
        folder = root / name.replace(" ", "_") / "stems"
        folder.mkdir(parents=True)
        for file_name, audio in stems.items():
            sf.write(folder / file_name, audio.T, SR, subtype="FLOAT")
        out[name] = folder
    return out


def _check_mix(audio: np.ndarray, where: str, ceiling_dbtp: float = DEFAULT_CEILING_DBTP) -> None:
    assert np.isfinite(audio).all(), f"{where}: the mix is not finite"
    assert true_peak_dbtp(audio, SR) <= ceiling_dbtp, f"{where}: true peak {true_peak_dbtp(audio, SR):.2f} dBTP"


def _finite_settings(settings, names: list[str], where: str) -> None:
    assert settings.track_names == names, where
    for group in (settings.track, settings.fx, settings.master):
        assert np.isfinite(group).all(), f"{where}: non-finite settings"


def test_the_shipped_models_are_covered():
    assert {"rules", "dmc-small", "mst-small"} <= set(MIXERS)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # an overflow or 0/0 inside a mixer is a bug, even if clipped
@pytest.mark.parametrize("model", MIXERS)
def test_predict_and_render_hostile_stems(model, sets):
    """``predict`` on the stems as arrays, then the console and finalize the engine uses."""
    mixer = get_mixer(model, "cpu")
    for name, files in sets.items():
        stems = [Stem(file_name, audio, SR) for file_name, audio in files.items()]
        where = f"{model} on {name}"
        if outputs_audio(mixer):  # an end-to-end model: its audio through the output stage
            if mixer.max_tracks is not None and len(stems) > mixer.max_tracks:
                with pytest.raises(AutomixError, match=f"at most {mixer.max_tracks} stems"):
                    mixer.mix_audio(stems, SR)
                continue
            final, _ = finalize(mixer.mix_audio(stems, SR), SR, -14.0, DEFAULT_CEILING_DBTP)
            _check_mix(final, where)
            continue
        settings = mixer.predict(stems, SR, seed=0)
        _finite_settings(settings, list(files), where)
        settings = settings.clipped().rounded()
        mix = render_console([s.audio for s in stems], SR, settings)
        final, _ = finalize(mix, SR, settings.target_lufs, settings.ceiling_dbtp)
        _check_mix(final, where)


@pytest.mark.parametrize("model", MIXERS)
def test_engine_mix_hostile_stems(model, sets, folders, tmp_path):
    for name, folder in folders.items():
        if name in LOADER_SKIPS:
            continue
        out = tmp_path / f"{name.replace(' ', '_')}.wav"
        if len(sets[name]) > 16 and model in END_TO_END:  # fixed inputs: refused in one line, nothing written
            with pytest.raises(AutomixError, match="at most 16 stems"):
                engine.mix(folder, out, model=model, device="cpu", strict=True)
            assert not out.exists()
            continue
        result = engine.mix(folder, out, model=model, device="cpu", strict=True)
        audio, rate = sf.read(out, always_2d=True, dtype="float32")
        assert rate == SR
        _check_mix(audio.T, f"{model} on {name}")
        params = json.loads(result.params_path.read_text())
        audible = sorted(n for n, x in sets[name].items() if np.abs(x).max() >= 10 ** (SILENCE_PEAK_DBFS / 20))
        assert list(params["tracks"]) == audible, name  # the loader skips the −100 dBFS stem


def _one_folder(tmp_path: Path, synth) -> Path:
    """Every kind of hostile stem at once: absurd, DC, clicks, a short one (padded), a −100 dBFS
    one (skipped as silent), beside a normal kick."""
    folder = tmp_path / "stems"
    folder.mkdir()
    files = {"kick.wav": synth.kick(SECONDS, SR), "absurd.wav": _at_peak(synth.lead(SECONDS, SR), ABSURD_PEAK),
             "dc.wav": np.full((2, round(SECONDS * SR)), 0.5, np.float32), "clicks.wav": _clicks(),
             "short.wav": synth.bass(0.1, SR), "whisper.wav": _at_peak(synth.pad(SECONDS, SR), 1e-5)}
    for file_name, audio in files.items():
        sf.write(folder / file_name, audio.T, SR, subtype="FLOAT")
    return folder


@pytest.mark.parametrize("model", MIXERS)
def test_cli_mix_hostile_stems(model, tmp_path, synth):
    folder = _one_folder(tmp_path, synth)
    result = run("mix", folder, "-o", tmp_path / "mix.wav", "--model", model, "--strict", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["tracks"] == ["absurd.wav", "clicks.wav", "dc.wav", "kick.wav", "short.wav"]  # whisper: silent
    assert summary["true_peak_dbtp"] <= DEFAULT_CEILING_DBTP
    _check_mix(sf.read(tmp_path / "mix.wav", always_2d=True, dtype="float32")[0].T, model)


@pytest.mark.parametrize("which", ["every kind", "many stems", "absurd level alone"])
def test_style_transfer_with_refinement_on_hostile_stems(which, tmp_path, synth, folders):
    """mst-small (it takes the reference) and two refinement steps through the differentiable console."""
    folder = _one_folder(tmp_path, synth) if which == "every kind" else folders[which]
    reference = tmp_path / "reference.wav"
    sf.write(reference, (synth.pad(2.0, SR) + np.tile(synth.kick(2.0, SR), (2, 1))).T, SR, subtype="FLOAT")
    result = run("style-transfer", folder, "--ref", reference, "-o", tmp_path / "st.wav", "--model", "mst-small",
                 "--refine", "2", "--strict", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    refine = summary["style"]["refine"]
    assert refine["steps"] == 2 and np.isfinite([refine["af_before"], refine["af_after"]]).all()
    assert summary["true_peak_dbtp"] <= DEFAULT_CEILING_DBTP
    _check_mix(sf.read(tmp_path / "st.wav", always_2d=True, dtype="float32")[0].T, which)
    settings = json.loads((tmp_path / "st.json").read_text())
    assert all(np.isfinite(v) for v in _numbers(settings)), which


def _numbers(tree: object) -> list[float]:
    """Every number in a JSON tree (the settings file)."""
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in _numbers(v)]
    if isinstance(tree, list):
        return [x for v in tree for x in _numbers(v)]
    return [float(tree)] if isinstance(tree, int | float) and not isinstance(tree, bool) else []
