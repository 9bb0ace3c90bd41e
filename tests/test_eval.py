"""``automix eval``: one file (known levels of generated audio) and a tiny generated dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
from signals import sine as _signal_sine
from typer.testing import CliRunner

from automix.console.settings import MixSettings
from automix.errors import AutomixError
from automix.evaluate.measure_file import evaluate_file
from automix.evaluate.results import read_results
from automix.evaluate.run import evaluate_dataset
from automix.evaluate.selection import pair_reference

RATE = 44100


def _sine(peak_dbfs: float, seconds: float, freq_hz: float = 1000.0) -> np.ndarray:
    return _signal_sine(freq_hz, seconds, amplitude=10 ** (peak_dbfs / 20), sr=RATE)


def _write(path: Path, audio: np.ndarray) -> Path:
    """``audio`` (channels, samples) → float WAV."""
    sf.write(path, np.atleast_2d(audio).T, RATE, subtype="FLOAT")
    return path


def _app() -> typer.Typer:
    from automix.cli import app

    return app


# --------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------

def test_sine_levels_and_width(tmp_path: Path) -> None:
    x = _sine(-20.0, 4.0)
    stereo = evaluate_file(_write(tmp_path / "stereo.wav", np.stack([x, x])))
    # Both channels of a −20 dBFS 1 kHz sine: K-weighting ≈ +0.69 dB at 1 kHz cancels the −0.691 offset.
    assert stereo["integrated_lufs"] == pytest.approx(-20.0, abs=0.1)
    assert stereo["true_peak_dbtp"] == pytest.approx(-20.0, abs=0.1)
    assert stereo["crest_factor_db"] == pytest.approx(10 * math.log10(2), abs=0.05)  # a sine: √2
    assert stereo["rms_dbfs"] == pytest.approx(-23.01, abs=0.05)
    assert abs(stereo["stereo_width"]) < 1e-6  # duplicated mono has no side signal
    assert abs(stereo["stereo_imbalance"]) < 1e-6
    assert stereo["loudness_range_lu"] == pytest.approx(0.0, abs=0.1)  # steady tone
    assert len(stereo["bark_band_db"]) == 24 and len(stereo["bark_band_hz"]) == 24
    assert np.argmax(stereo["bark_band_db"]) == np.argmin(np.abs(np.array(stereo["bark_band_hz"]) - 1000.0))

    mono = evaluate_file(_write(tmp_path / "mono.wav", x))  # one channel: 3 dB less loud
    assert mono["integrated_lufs"] == pytest.approx(-23.01, abs=0.1)

    left = evaluate_file(_write(tmp_path / "left.wav", np.stack([x, 0 * x])))
    assert left["stereo_imbalance"] == pytest.approx(-1.0, abs=1e-3)


def test_reference_and_target_comparisons(tmp_path: Path) -> None:
    x = _sine(-20.0, 3.0)
    mix = _write(tmp_path / "mix.wav", np.stack([x, x]))
    other = _write(tmp_path / "other.wav", np.stack([_sine(-6.0, 3.0, 200.0), 0.5 * _sine(-6.0, 3.0, 200.0)]))
    same = evaluate_file(mix, ref=mix, target=mix)
    assert same["reference"]["af_loss"] == pytest.approx(0.0, abs=1e-6)
    assert same["target"]["mrstft"] == pytest.approx(0.0, abs=1e-4)
    assert same["target"]["sum_diff_mrstft"] == pytest.approx(0.0, abs=1e-4)
    diff = evaluate_file(mix, ref=other, target=other)
    terms = [diff["reference"][f"af_{k}"] for k in
             ("rms", "crest_factor", "stereo_width", "stereo_imbalance", "bark_spectrum")]
    assert diff["reference"]["af_loss"] == pytest.approx(sum(terms), rel=1e-9)
    assert diff["reference"]["af_stereo_imbalance"] > 0.01  # the reference leans left
    assert diff["target"]["mrstft"] > 0.5


def test_cli_json_and_errors(tmp_path: Path) -> None:
    x = _sine(-20.0, 3.5)
    mix = _write(tmp_path / "mix.wav", np.stack([x, x]))
    runner = CliRunner()
    result = runner.invoke(_app(), ["eval", str(mix), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert data["integrated_lufs"] == pytest.approx(-20.0, abs=0.1)

    table = runner.invoke(_app(), ["eval", str(mix), "--ref", str(mix)])
    assert table.exit_code == 0 and "af_loss" in table.stdout and "integrated loudness" in table.stdout

    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    for args in (["eval", str(tmp_path / "missing.wav")], ["eval", str(tmp_path / "broken.wav")],
                 ["eval"], ["eval", "--dataset", str(tmp_path)],
                 ["eval", str(mix), "--target", str(tmp_path / "missing.wav")]):
        bad = runner.invoke(_app(), args)
        assert bad.exit_code == 2, (args, bad.output)
        assert bad.output.startswith("error: ") and bad.output.count("\n") == 1


def test_a_target_of_another_length_is_noted_and_a_silent_one_refused(tmp_path: Path) -> None:
    x = _sine(-20.0, 3.0)
    mix = _write(tmp_path / "mix.wav", np.stack([x, x]))
    longer = _write(tmp_path / "longer.wav", np.stack([_sine(-20.0, 4.0)] * 2))
    result = evaluate_file(mix, target=longer)
    assert result["target"]["compared_s"] == pytest.approx(3.0, abs=1e-6)
    assert result["target"]["mrstft"] == pytest.approx(0.0, abs=1e-3)  # the common 3 s are identical
    assert result["notes"] == ["the mix is 3.00 s long and the target 4.00 s: compared over the first 3.00 s"]
    assert "notes" not in evaluate_file(mix, target=mix)

    runner = CliRunner()
    noted = runner.invoke(_app(), ["eval", str(mix), "--target", str(longer), "--json"])
    assert noted.exit_code == 0 and json.loads(noted.stdout)["target"]["compared_s"] == pytest.approx(3.0)
    assert noted.stderr.startswith("note: the mix is 3.00 s long and the target 4.00 s")

    silent = _write(tmp_path / "silent.wav", np.zeros((2, RATE), np.float32))
    with pytest.raises(AutomixError, match="silent"):
        evaluate_file(mix, target=silent)
    bad = runner.invoke(_app(), ["eval", str(mix), "--target", str(silent)])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


# --------------------------------------------------------------------------------------
# A dataset
# --------------------------------------------------------------------------------------

GAINS_DB = {"a.wav": -6.0, "b.wav": 0.0, "c.wav": -14.0}
PANS = {"a.wav": -0.6, "b.wav": 0.1, "c.wav": 0.8}


class KnownGainsMixer:
    """Reproduces the faders and pans the test's target mixes were made with."""

    name = "known"

    def predict(self, stems, sample_rate, *, seed=0):
        settings = MixSettings.neutral([s.name for s in stems], mixer=self.name)
        for stem in stems:
            settings.set(stem.name, "gain_db", GAINS_DB[stem.name])
            settings.set(stem.name, "pan", PANS[stem.name])
        settings.set_fx("reverb.return_db", -60.0)
        return settings


def _make_dataset(root: Path, songs: int = 2, seconds: float = 2.0) -> Path:
    """Generic folder layout: ``<song>/{a,b,c}.wav`` (mono) + ``mix.wav`` panned constant-power."""
    rng = np.random.default_rng(7)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    for s in range(songs):
        folder = root / f"song{s}"
        folder.mkdir(parents=True)
        mix = np.zeros((2, n))
        for k, name in enumerate(GAINS_DB):
            tone = 0.25 * np.sin(2 * np.pi * (150.0 * (k + 1) + 11 * s) * t)
            stem = tone * (1.0 + 0.6 * np.sin(2 * np.pi * (0.7 + k) * t)) + 0.01 * rng.standard_normal(n)
            _write(folder / name, stem.astype(np.float32))
            theta = (PANS[name] + 1.0) * math.pi / 4.0
            gain = 10 ** (GAINS_DB[name] / 20.0)
            mix += gain * np.stack([np.cos(theta) * stem, np.sin(theta) * stem])
        _write(folder / "mix.wav", mix.astype(np.float32))
    return root


def test_dataset_eval_report_resume_and_balance(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "data")
    out = tmp_path / "report"
    first = evaluate_dataset(data, ["mono", "equal-loudness", "rules"], out, split=None)
    assert first.computed == 6 and first.songs == ["song0", "song1"]
    for name in ("results.csv", "summary.json", "report.md"):
        assert (out / name).is_file()
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert {"balance_error.png", "balance_song0.png", "eq_song0.png", "spectra_song1.png"} <= set(pngs)
    assert all((out / "plots" / p).stat().st_size > 5000 for p in pngs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["target", "mono", "equal-loudness", "rules"]
    assert summary["metrics"]["integrated_lufs"]["mono"]["mean"] == pytest.approx(-14.0, abs=0.2)
    report = (out / "report.md").read_text()
    assert "### balance_error_db (dB) ↓" in report and "| equal-loudness |" in report

    rows = read_results(out / "results.csv")
    mtime = (out / "results.csv").stat().st_mtime_ns
    second = evaluate_dataset(data, ["mono", "equal-loudness", "rules"], out, split=None, plots=False)
    assert second.computed == 0 and second.skipped == 6
    assert (out / "results.csv").stat().st_mtime_ns == mtime
    assert read_results(out / "results.csv") == rows

    third = evaluate_dataset(data, ["known", "random", "mono"], out, split=None, plots=False,
                             extra_mixers={"known": KnownGainsMixer})
    assert third.computed == 4 and third.skipped == 2
    rows_after = read_results(out / "results.csv")
    assert rows_after[: len(rows)] == rows  # earlier results untouched
    balance = third.summary["metrics"]["balance_error_db"]
    assert balance["known"]["mean"] < 0.5
    assert balance["random"]["mean"] > 1.0 and balance["random"]["mean"] > 3 * balance["known"]["mean"]
    assert third.summary["metrics"]["pan_error"]["known"]["mean"] < 0.05
    per_track = [r for r in rows_after if r["metric"] == "track_balance_error_db" and r["method"] == "known"]
    assert len(per_track) == 6 and max(r["value"] for r in per_track) < 0.5

    with pytest.raises(AutomixError, match="other options"):
        evaluate_dataset(data, ["mono"], out, split=None, seconds=1.0)
    with pytest.raises(AutomixError, match="unknown model"):
        evaluate_dataset(data, ["no-such-mixer"], tmp_path / "other", split=None)


def test_reference_pairing_is_deterministic() -> None:
    refs = [Path(f"r{i}.flac") for i in range(5)]
    picks = [pair_reference(f"song_{i:05d}", refs) for i in range(40)]
    assert picks == [pair_reference(f"song_{i:05d}", refs) for i in range(40)]
    assert len(set(picks)) > 1  # songs spread over the references
    assert pair_reference("song_00003", refs) == pair_reference("song_00003", list(refs))


class KnownAudioMixer:
    """An end-to-end mixer (audio out, no settings) that sums the stems with the target's gains and pans."""

    name = "known-audio"

    def mix_audio(self, stems, sample_rate, *, seed=0):
        mix = np.zeros((2, stems[0].frames))
        for stem in stems:
            theta = (PANS[stem.name] + 1.0) * math.pi / 4.0
            mono = stem.audio[0] * 10 ** (GAINS_DB[stem.name] / 20.0)
            mix += np.stack([np.cos(theta) * mono, np.sin(theta) * mono])
        return mix.astype(np.float32)


class FlippedAudioMixer(KnownAudioMixer):
    """The same, with every gain negated: a balance far from the target's."""

    name = "flipped-audio"

    def mix_audio(self, stems, sample_rate, *, seed=0):
        mix = np.zeros((2, stems[0].frames))
        for stem in stems:
            mix += stem.audio[0] * 10 ** (-GAINS_DB[stem.name] / 20.0)
        return mix.astype(np.float32)


def test_end_to_end_mixers_are_measured_from_their_audio(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "data")
    result = evaluate_dataset(data, ["known-audio", "flipped-audio"], tmp_path / "report", split=None, plots=False,
                              extra_mixers={"known-audio": KnownAudioMixer, "flipped-audio": FlippedAudioMixer})
    balance = result.summary["metrics"]["balance_error_db"]
    assert balance["known-audio"]["mean"] < 0.5 and balance["flipped-audio"]["mean"] > 2.0
    assert result.summary["metrics"]["integrated_lufs"]["known-audio"]["mean"] == pytest.approx(-14.0, abs=0.3)
    # the artifact measures and the AF loss to the target are reported for a mix with a target
    metrics = result.summary["metrics"]
    # (the known-gains mix is the target itself: no residual, so no flatness for it)
    assert metrics["residual_flatness_db"]["flipped-audio"]["n"] == 2
    assert metrics["residual_flatness_db"]["flipped-audio"]["mean"] < -10.0  # a balance difference is tonal
    assert metrics["target_af_loss"]["known-audio"]["mean"] < metrics["target_af_loss"]["flipped-audio"]["mean"]
    # no settings file: an end-to-end mix has none
    assert not list((tmp_path / "report").rglob("*known-audio*.json"))
