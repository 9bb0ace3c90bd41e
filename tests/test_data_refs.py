"""Reference corpus helpers: DEP-5 licences, excerpt decoding, resampling, manifest round trip."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from automix.data.refs import (
    RefTrack,
    _candidates,
    _decode_excerpt,
    licence_for,
    package_split,
    parse_copyright,
    read_manifest,
    to_rate,
    write_manifest,
)
from automix.errors import AutomixError

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: game

Files: *
Copyright: 2011 Someone
License: GPL-2+

Files: music/hr3-*.ogg
       music/extra.ogg
Copyright: 2015 Composer
License: CC-BY-SA-3.0

Files: data/sfx/*
Copyright: 2012 Foley
License: CC0-1.0

Files: debian/*
Copyright: 2016 Packager
License: GPL-2+
"""


def test_licence_from_copyright_stanzas() -> None:
    stanzas = parse_copyright(COPYRIGHT)
    assert [lic for _, lic in stanzas] == ["GPL-2+", "CC-BY-SA-3.0", "CC0-1.0", "GPL-2+"]
    assert licence_for("/usr/share/game/music/hr3-caves.ogg", stanzas, "x") == "CC-BY-SA-3.0"
    assert licence_for("/usr/share/game/music/extra.ogg", stanzas, "x") == "CC-BY-SA-3.0"
    assert licence_for("/usr/share/game/music/other.ogg", stanzas, "x") == "GPL-2+"
    assert licence_for("/usr/share/game/music/other.ogg", [], "fallback") == "fallback"
    # source path data/sfx/* installed without its leading data/ folder
    assert licence_for("/usr/share/games/game/sfx/boom/a.ogg", stanzas, "x") == "CC0-1.0"


def test_package_splits_are_fixed_and_disjoint() -> None:
    assert package_split("hyperrogue-music") == "test" and package_split("freedroidrpg-data") == "val"
    assert package_split("warzone2100-music") == "train"
    assert package_split("some-new-music") == package_split("some-new-music")


def test_decode_excerpt_takes_the_middle_in_stereo(tmp_path: Path) -> None:
    rate = 48000
    t = np.arange(3 * rate) / rate
    ramp = (0.5 * t / 3.0).astype(np.float32)  # the level tells where in the file we are
    sf.write(tmp_path / "x.flac", ramp, rate)
    audio, got_rate, start_s, source_s = _decode_excerpt(tmp_path / "x.flac", 1.0)
    assert got_rate == rate and audio.shape == (2, rate)
    assert start_s == pytest.approx(1.0) and source_s == pytest.approx(3.0)
    assert np.allclose(audio[0], audio[1]) and audio[0, 0] == pytest.approx(0.5 / 3, abs=1e-3)


def test_resampling_keeps_duration_and_pitch() -> None:
    rate = 48000
    tone = np.sin(2 * np.pi * 1000.0 * np.arange(rate) / rate).astype(np.float32)[None]
    out = to_rate(tone, rate, 44100)
    assert out.shape == (1, 44100)
    spectrum = np.abs(np.fft.rfft(out[0] * np.hanning(out.shape[1])))
    assert np.argmax(spectrum) * 44100 / out.shape[1] == pytest.approx(1000.0, abs=1.0)
    assert 20 * np.log10(np.sqrt(np.mean(out[0, 1000:-1000] ** 2))) == pytest.approx(-3.01, abs=0.05)


def test_candidates_find_music_files_and_archive_members(tmp_path: Path) -> None:
    root = tmp_path / "root"
    tone = np.zeros(100, dtype=np.float32)
    (root / "usr/share/game/music").mkdir(parents=True)
    (root / "usr/share/game/sounds").mkdir(parents=True)
    sf.write(root / "usr/share/game/music/theme.ogg", tone, 44100)
    sf.write(root / "usr/share/game/sounds/click.ogg", tone, 44100)
    sf.write(tmp_path / "track.ogg", tone, 44100)
    with zipfile.ZipFile(root / "usr/share/game/music.pk3", "w") as archive:
        archive.write(tmp_path / "track.ogg", "sound/cdtracks/track1.ogg")
    found = [src for _, src in _candidates(root, "game-data", tmp_path / "work")]
    assert found == ["/usr/share/game/music/theme.ogg", "/usr/share/game/music.pk3!sound/cdtracks/track1.ogg"]


def test_manifest_round_trip(tmp_path: Path) -> None:
    rows = [RefTrack("test", "pkg", "test/pkg__a.flac", "usr/a.ogg", "GPL-2+", 120.0, 200.5, 40.25, 48000, -14.2)]
    write_manifest(rows, tmp_path / "manifest.csv")
    assert read_manifest(tmp_path / "manifest.csv") == rows
    with pytest.raises(AutomixError, match="automix data refs"):
        read_manifest(tmp_path / "missing.csv")
