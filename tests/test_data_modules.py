"""Tracker modules: a generated ProTracker MOD with known sample volumes → known truth per channel."""

from __future__ import annotations

import ctypes.util
import gzip
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from automix.console.loudness import integrated_lufs
from automix.data import modules
from automix.data.human_mix import SourceFile, energy_pan, mono_stem, track_truth
from automix.errors import AutomixError

HAVE_OPENMPT = ctypes.util.find_library("openmpt") is not None
needs_openmpt = pytest.mark.skipif(not HAVE_OPENMPT, reason="needs apt package libopenmpt0")

PERIOD_C3 = 428  # ProTracker period of C-3 (~8.3 kHz sample playback)
SAMPLE_WORDS = 512  # one 1024-byte looped sample: 16 cycles of a sine


def _sine_sample() -> bytes:
    n = 2 * SAMPLE_WORDS
    wave = np.round(100.0 * np.sin(2.0 * np.pi * 16.0 * np.arange(n) / n)).astype(np.int8)
    return wave.tobytes()


def _write_mod(path: Path, volumes: list[int], channels_playing: list[int], title: str = "test song") -> Path:
    """A 4-channel M.K. module: sample ``k+1`` is the same looped sine at ``volumes[k]`` (0…64);
    channel ``c`` in ``channels_playing`` holds one note of sample ``c+1`` for the one pattern
    (64 rows at speed 6, 125 bpm: 7.68 s), the other channels are empty."""
    header = title.encode("ascii")[:20].ljust(20, b"\0")
    for k in range(31):
        if k < len(volumes):
            header += f"sine{k + 1}".encode().ljust(22, b"\0")
            header += struct.pack(">HBBHH", SAMPLE_WORDS, 0, volumes[k], 0, SAMPLE_WORDS)
        else:
            header += b"\0" * 22 + struct.pack(">HBBHH", 0, 0, 0, 0, 1)
    header += bytes([1, 127]) + bytes(128) + b"M.K."
    pattern = bytearray(64 * 4 * 4)
    for channel in channels_playing:
        sample = channel + 1
        pattern[channel * 4: channel * 4 + 4] = bytes([(sample & 0xF0) | (PERIOD_C3 >> 8), PERIOD_C3 & 0xFF,
                                                        (sample & 0x0F) << 4, 0])
    body = bytes(pattern) + _sine_sample() * len(volumes)
    path.write_bytes(header + body)
    return path


def _source(path: Path, package: str = "test") -> SourceFile:
    return SourceFile(modules.FAMILY, package, path, path.name, "CC0", "", path.stem)


@needs_openmpt
def test_soloed_channels_carry_the_sample_volumes_and_sum_to_the_mix(tmp_path: Path) -> None:
    # Channel 1 (Amiga left) at full volume, channel 2 (right) at 16/64 = -12.04 dB.
    # The whole song is the excerpt, so the rows that name the samples are seen.
    song = modules.render(_source(_write_mod(tmp_path / "a.mod", [64, 16], [0, 1])), max_seconds=8.0)
    assert [name for name, _ in song.tracks] == ["sine1", "sine2"]
    loud, quiet = (audio for _, audio in song.tracks)
    total = loud + quiet
    error = np.sqrt(np.mean((song.mix - total) ** 2)) / np.sqrt(np.mean(song.mix ** 2))
    assert error < modules.MAX_SUM_ERROR
    rate = song.sample_rate
    mix_lufs = integrated_lufs(song.mix.astype(np.float64), rate)
    truths = [track_truth(audio, mono_stem(audio), mix_lufs, rate) for audio in (loud, quiet)]
    assert truths[0].level_in_mix_lu - truths[1].level_in_mix_lu == pytest.approx(20 * np.log10(4), abs=0.3)
    # The mono stems hide the difference only after normalisation: their gains keep it.
    assert truths[0].gain_db - truths[1].gain_db == pytest.approx(20 * np.log10(4), abs=0.3)
    assert energy_pan(loud) < -0.1 < 0.1 < energy_pan(quiet)


@needs_openmpt
def test_silent_channels_are_not_stems(tmp_path: Path) -> None:
    song = modules.render(_source(_write_mod(tmp_path / "b.mod", [64, 40, 30], [0, 2])), max_seconds=8.0)
    assert [name for name, _ in song.tracks] == ["sine1", "sine3"]
    assert any("silent" in note for note in song.notes)


@needs_openmpt
def test_a_broken_module_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xm"
    bad.write_bytes(b"Extended Module: " + bytes(50))
    with pytest.raises(AutomixError, match="bad.xm"):
        modules.render(_source(bad))
    with pytest.raises(AutomixError):
        modules.render(_source(tmp_path / "missing.mod"))


@needs_openmpt
@pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None,
                    reason="needs apt-get and dpkg-deb")
def test_find_sources_reads_plain_compressed_and_zipped_modules(tmp_path: Path) -> None:
    # An already unpacked package in the cache: nothing is downloaded.
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    (cache / "debs" / "fake-music_1.0_all.deb").write_bytes(b"")
    root = cache / "unpacked" / "fake-music"
    music = root / "usr/share/games/fake/music"
    music.mkdir(parents=True)
    (root / ".unpacked").write_text("fake-music_1.0_all.deb\n")
    _write_mod(music / "one.mod", [64, 32], [0, 1], title="first by Jane Roe")
    (music / "two.mod.gz").write_bytes(gzip.compress(_write_mod(tmp_path / "two.mod", [50], [0]).read_bytes()))
    with zipfile.ZipFile(music / "pack.zip", "w") as archive:
        archive.write(_write_mod(tmp_path / "three.mod", [64], [0]), "three.mod")
    (music / "readme.txt").write_text("not a module")
    doc = root / "usr/share/doc/fake-music"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("The music is under the GNU GPL, see /usr/share/common-licenses/GPL-2\n")

    found = modules.find_sources(cache, packages=["fake-music"], log=lambda _message: None)
    rels = sorted(source.source_path for source in found)
    assert rels == ["usr/share/games/fake/music/one.mod", "usr/share/games/fake/music/pack.zip!three.mod",
                    "usr/share/games/fake/music/two.mod.gz"]
    assert {source.licence for source in found} == {"GPL-2"}
    one = next(source for source in found if source.source_path.endswith("one.mod"))
    assert one.title == "first by Jane Roe"
    for source in found:
        assert modules.render(source, max_seconds=2.0).tracks


def test_excerpt_skips_an_intro_but_is_never_cut_short() -> None:
    assert modules.excerpt_offset_s(20.0, 30.0) == 0.0
    assert modules.excerpt_offset_s(100.0, 30.0) == pytest.approx(10.0)
    assert modules.excerpt_offset_s(600.0, 30.0) == pytest.approx(modules.MAX_INTRO_SKIP_S)
    assert modules.excerpt_offset_s(32.0, 30.0) == pytest.approx(2.0)


def test_only_impulse_tracker_files_lose_their_random_swing(tmp_path: Path) -> None:
    data = _write_mod(tmp_path / "c.mod", [64], [0]).read_bytes()
    assert modules.without_random_swing(data) == data
