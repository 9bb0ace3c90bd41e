"""Stems with a few damaged samples (NaN/Inf, or beyond +60 dBFS) are repaired and mixed;
``--strict`` refuses them; a mostly damaged stem is refused either way (issue 17, part 1)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_helpers import assert_user_error, run

from automix import engine
from automix.console.loudness import true_peak_dbtp

DAMAGED_AT = (22050, 30000, 61740)
"""Frames of the lead's damaged samples: NaN, NaN, 1e6 (the first at 0.500 s)."""

NOTE = "3 damaged samples (NaN/Inf or beyond +60 dBFS) silenced, first at 0.500 s"


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _song(folder: Path, synth, damaged: bool) -> Path:
    """Kick, bass and a lead (float32 WAV, 2 s) whose samples at :data:`DAMAGED_AT` are NaN, NaN
    and 1e6 (``damaged``) or exactly 0 (the repair done by hand)."""
    folder.mkdir(parents=True)
    synth.write(folder / "kick.wav", synth.kick(2.0))
    synth.write(folder / "bass.wav", synth.bass(2.0))
    lead = synth.lead(2.0)
    lead[0, list(DAMAGED_AT)] = [np.nan, np.nan, 1e6] if damaged else 0.0
    synth.write(folder / "lead.wav", lead)
    return folder


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, synth) -> Path:
    return _song(tmp_path_factory.mktemp("damaged") / "stems", synth, damaged=True)


def test_mix_silences_damaged_samples_and_says_so(damaged, tmp_path, synth):
    before = _digest(damaged)
    result = run("mix", damaged, "-o", tmp_path / "mix.wav", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert f"lead.wav: {NOTE}" in summary["notes"] and f"lead.wav: {NOTE}" in result.stderr
    tracks = json.loads((tmp_path / "mix.json").read_text())["tracks"]
    assert tracks["lead.wav"]["notes"][0] == NOTE  # first, before the mixer's own decisions
    assert not any("damaged" in n for n in tracks["kick.wav"]["notes"] + tracks["bass.wav"]["notes"])

    mix, rate = sf.read(tmp_path / "mix.wav", always_2d=True, dtype="float32")
    assert np.isfinite(mix).all() and true_peak_dbtp(mix.T, rate) <= -1.0 and summary["true_peak_dbtp"] <= -1.0
    assert abs(summary["loudness_lufs"] + 14.0) <= 0.5  # the 1e6 sample did not steer the level
    # The same mix as the stems repaired by hand: the damage is gone, nothing else changed.
    by_hand = _song(tmp_path / "by_hand", synth, damaged=False)
    assert run("mix", by_hand, "-o", tmp_path / "by_hand.wav", "--quiet").exit_code == 0
    assert (tmp_path / "by_hand.wav").read_bytes() == (tmp_path / "mix.wav").read_bytes()
    assert _digest(damaged) == before  # inputs are only read


def test_streamed_stems_are_repaired_the_same(damaged, tmp_path):
    results = {stream: engine.mix(damaged, tmp_path / f"s{int(stream)}.wav", stream=stream, bit_depth="32f")
               for stream in (False, True)}
    a, b = (sf.read(r.mix_path, always_2d=True)[0] for r in results.values())
    assert a.shape == b.shape and np.max(np.abs(a - b)) <= 1e-6
    assert results[True].notes == results[False].notes and f"lead.wav: {NOTE}" in results[True].notes
    notes = [json.loads(r.params_path.read_text())["tracks"]["lead.wav"]["notes"][0] for r in results.values()]
    assert notes == [NOTE, NOTE]


def test_strict_refuses_damaged_stems(damaged, tmp_path, synth):
    before = _digest(damaged)
    line = assert_user_error(run("mix", damaged, "-o", tmp_path / "mix.wav", "--strict"), "lead.wav",
                             "2 NaN/Inf samples", "--strict")
    assert "Traceback" not in line
    reference = synth.write(tmp_path / "ref.wav", synth.pad(2.0))
    assert_user_error(run("style-transfer", damaged, "--ref", reference, "-o", tmp_path / "st.wav", "--refine", "0",
                          "--strict"), "lead.wav", "2 NaN/Inf samples")
    assert run("mix", damaged, "-o", tmp_path / "ok.wav", "--quiet").exit_code == 0
    assert_user_error(run("render", damaged, tmp_path / "ok.json", "-o", tmp_path / "again.wav", "--strict"),
                      "lead.wav", "2 NaN/Inf samples")
    assert_user_error(run("reverse", damaged, "--mix", tmp_path / "ok.wav", "-o", tmp_path / "rev.json", "--strict"),
                      "lead.wav", "2 NaN/Inf samples")
    assert not any((tmp_path / name).exists()
                   for name in ("mix.wav", "mix.json", "st.wav", "st.json", "again.wav", "rev.json"))
    # Without --strict, reverse repairs the stems too and says so in the settings it writes.
    assert run("reverse", damaged, "--mix", tmp_path / "ok.wav", "-o", tmp_path / "rev.json", "--steps", "0",
               "--quiet").exit_code == 0
    assert json.loads((tmp_path / "rev.json").read_text())["tracks"]["lead.wav"]["notes"][0] == NOTE
    assert _digest(damaged) == before


def test_mostly_damaged_stem_is_refused(tmp_path, synth):
    folder = tmp_path / "stems"
    folder.mkdir()
    synth.write(folder / "kick.wav", synth.kick(1.0))
    noise = synth.hats(1.0)
    noise[0, ::40] = np.nan  # 2.5 % of the samples
    synth.write(folder / "hats.wav", noise)
    for strict in ((), ("--strict",)):
        assert_user_error(run("mix", folder, "-o", tmp_path / "mix.wav", *strict), "hats.wav", "NaN/Inf")
    line = assert_user_error(run("mix", folder, "-o", tmp_path / "mix.wav"), "1103 of its 44100 samples (2.5%)")
    assert "too damaged" in line
    assert not (tmp_path / "mix.wav").exists() and not (tmp_path / "mix.json").exists()
