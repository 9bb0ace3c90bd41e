"""Synthetic multitracks: one short song rendered with fluidsynth + MMA (skipped if not installed)."""

from __future__ import annotations

import ctypes.util
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from automix.data import soundfonts
from automix.data.fluid import ChannelSpec, MidiEvent, render_channels
from automix.data.synth import pan_stem, render_song, song_split

HAVE_FLUIDSYNTH = ctypes.util.find_library("fluidsynth") is not None
HAVE_MMA = shutil.which("mma") is not None
HAVE_FONTS = all(sf_.path.is_file() for sf_ in soundfonts.CATALOGUE if sf_.name in ("FluidR3_GM", "Black_Pearl_4_LV2"))
needs_synth = pytest.mark.skipif(
    not (HAVE_FLUIDSYNTH and HAVE_MMA and HAVE_FONTS),
    reason="needs apt packages fluidsynth, mma, fluid-soundfont-gm, avldrums.lv2-soundfont "
           "(plus musescore-general-soundfont-small, timgm6mb-soundfont, openttd-openmsx)",
)
SEED, INDEX, SECONDS = 7, 3, 4.0


def _db(x: float) -> float:
    return 20 * np.log10(max(x, 1e-12))


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    if not (HAVE_FLUIDSYNTH and HAVE_MMA and HAVE_FONTS):
        pytest.skip("fluidsynth/mma/SoundFonts not installed")
    root = tmp_path_factory.mktemp("synth")
    meta = render_song(SEED, INDEX, SECONDS, root)
    return root / meta["split"] / meta["song_id"], meta


@needs_synth
def test_stems_are_nonsilent_44k1_and_named_by_role(song: tuple[Path, dict]) -> None:
    folder, meta = song
    assert 2 <= len(meta["stems"]) <= 20
    for stem in meta["stems"]:
        audio, rate_hz = sf.read(folder / stem["file"], always_2d=True)
        info = sf.info(folder / stem["file"])
        assert rate_hz == 44100 and info.subtype == "PCM_24"
        assert audio.shape == (int(SECONDS * 44100), stem["channels"])
        assert _db(np.abs(audio).max()) > -60.0
        assert abs(_db(np.abs(audio).max()) - stem["peak_dbfs"]) < 0.05
        assert stem["role"] in Path(stem["file"]).stem
    peaks = [s["peak_dbfs"] for s in meta["stems"]]
    assert max(peaks) <= -0.9  # the loudest stem peaks at -6..-1 dBFS: no clipping
    assert all(abs(s["level_offset_db"]) <= 12.0 for s in meta["stems"])


@needs_synth
def test_render_is_deterministic(song: tuple[Path, dict], tmp_path: Path) -> None:
    folder, meta = song
    again = render_song(SEED, INDEX, SECONDS, tmp_path)
    assert json.dumps(again, sort_keys=True) == json.dumps(meta, sort_keys=True)
    assert _digest(tmp_path / meta["split"] / meta["song_id"]) == _digest(folder)


@needs_synth
def test_stems_with_recorded_gains_rebuild_the_arranger_mix(song: tuple[Path, dict]) -> None:
    folder, meta = song
    mix, _ = sf.read(folder / "arranger_mix.flac", always_2d=True)
    assert abs(_db(np.abs(mix).max()) - (-1.0)) < 0.01
    rebuilt = np.zeros_like(mix.T)
    plain_sum = np.zeros(mix.shape[0])
    for stem in meta["stems"]:
        audio, _ = sf.read(folder / stem["file"], always_2d=True)
        rebuilt += pan_stem(audio.T * 10 ** (stem["stem_to_mix_gain_db"] / 20), stem["arranger_pan"])
        plain_sum += audio.mean(axis=1)
    rebuilt *= 10 ** (meta["mix"]["mix_gain_db"] / 20)
    assert np.abs(rebuilt - mix.T).max() < 1e-4
    # the raw stems (unbalanced) still correlate with the mix, but less than the rebuilt balance
    corr = np.corrcoef(plain_sum, mix.mean(axis=1))[0, 1]
    assert 0.2 < corr < 1.0


@needs_synth
def test_split_holds_out_soundfonts_and_grooves() -> None:
    splits = [song_split(1, i) for i in range(400)]
    counts = {s: splits.count(s) for s in ("train", "val", "test")}
    assert 280 < counts["train"] < 360 and counts["val"] > 20 and counts["test"] > 20
    train_fonts = {sf_.name for kind in ("gm", "drumkit") for sf_ in soundfonts.available(kind, "train")}
    assert not train_fonts & soundfonts.TEST_ONLY_SOUNDFONTS
    assert soundfonts.TEST_ONLY_SOUNDFONTS <= {sf_.name for kind in ("gm", "drumkit")
                                              for sf_ in soundfonts.available(kind, "test")}


@needs_synth
def test_channels_render_to_separate_outputs() -> None:
    font = soundfonts.by_name("FluidR3_GM").path
    notes = [MidiEvent(0.0, "on", 60, 100), MidiEvent(0.3, "off", 60)]
    specs = [ChannelSpec(font, 0, 0, False, notes), ChannelSpec(font, 0, 33, False, []),
             ChannelSpec(font, 0, 0, False, [MidiEvent(0.25, "on", 72, 120)])]
    out = render_channels(specs, 0.5)
    assert out.shape == (3, 2, 22050)
    assert _db(np.abs(out[0]).max()) > -40 and np.abs(out[1]).max() == 0.0
    onset = int(np.argmax(np.abs(out[2, 0]) > 1e-4))
    # events start at the next 64-sample fluidsynth block; the attack adds a few samples
    assert 0 <= onset - int(0.25 * 44100) < 96
