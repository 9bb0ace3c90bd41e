"""Dataset loaders: every layout on tiny generated fixtures, auto-detection, group-safe splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from automix.data.loaders import Song, detect_layout, find_songs, split_songs
from automix.errors import AutomixError

RATE_HZ = 8000


def _wav(path: Path, channels: int = 1, freq_hz: float = 220.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(0.2 * RATE_HZ)) / RATE_HZ
    audio = 0.1 * np.sin(2 * np.pi * freq_hz * t)
    sf.write(path, np.repeat(audio[:, None], channels, axis=1), RATE_HZ)
    return path


def make_synth(root: Path) -> None:
    for split, song in (("train", "song_00000"), ("val", "song_00001"), ("test", "song_00002")):
        folder = root / split / song
        _wav(folder / "stems" / "01_kick_drums.flac")
        _wav(folder / "stems" / "02_bass.flac")
        _wav(folder / "arranger_mix.flac", 2)
        (folder / "song.json").write_text(json.dumps({"song_id": song, "split": split,
                                                      "mix": {"file": "arranger_mix.flac"}}))


def make_folder(root: Path) -> None:
    for song in ("alpha", "beta"):
        _wav(root / song / "drums.wav")
        _wav(root / song / "vocals.wav")
        _wav(root / song / "mix.wav", 2)
    _wav(root / "gamma" / "stems" / "bass.flac")


def make_medleydb(root: Path) -> None:
    for artist, title in (("Ann", "One"), ("Ann", "Two"), ("Bob", "Three")):
        name = f"{artist}_{title}"
        _wav(root / name / f"{name}_RAW" / f"{name}_RAW_01_01.wav")
        _wav(root / name / f"{name}_RAW" / f"{name}_RAW_02_01.wav")
        _wav(root / name / f"{name}_MIX.wav", 2)
        (root / name / f"{name}_METADATA.yaml").write_text(f"artist: {artist}\ntitle: {title}\ngenre: Pop\n")


def make_enst(root: Path) -> None:
    for drummer in ("drummer_1", "drummer_2"):
        for take in ("001_hits", "002_groove"):
            for mic in ("kick", "snare", "overhead_L"):
                _wav(root / drummer / "audio" / mic / f"{take}.wav")
            _wav(root / drummer / "audio" / "wet_mix" / f"{take}.wav")
            _wav(root / drummer / "audio" / "dry_mix" / f"{take}.wav")


def make_cambridge(root: Path) -> None:
    for name in ("Artist_SongA", "Other_SongB"):
        _wav(root / name / f"{name}_Full" / "01_Kick.wav")
        _wav(root / name / f"{name}_Full" / "02_Vox.wav")
    _wav(root / "Artist_SongA" / "Artist_SongA_Mix.wav", 2)


def make_musdb(root: Path) -> None:
    for split, song in (("train", "A Band - First"), ("train", "B Band - Second"), ("train", "C Band - Third"),
                        ("test", "D Band - Fourth")):
        for stem in ("drums", "bass", "other", "vocals", "mixture"):
            _wav(root / split / song / f"{stem}.wav", 2)


MAKERS = {"automix-synth": make_synth, "folder": make_folder, "medleydb": make_medleydb, "enst": make_enst,
          "cambridge": make_cambridge, "musdb18hq": make_musdb}


@pytest.mark.parametrize("layout", sorted(MAKERS))
def test_auto_detects_every_layout(tmp_path: Path, layout: str) -> None:
    MAKERS[layout](tmp_path)
    assert detect_layout(tmp_path) == layout
    assert [s.name for s in find_songs(tmp_path)] == [s.name for s in find_songs(tmp_path, layout)]


def test_synth_layout(tmp_path: Path) -> None:
    make_synth(tmp_path)
    songs = {s.name: s for s in find_songs(tmp_path)}
    assert sorted(songs) == ["song_00000", "song_00001", "song_00002"]
    assert [songs[n].split for n in sorted(songs)] == ["train", "val", "test"]
    assert [p.name for p in songs["song_00000"].stem_paths] == ["01_kick_drums.flac", "02_bass.flac"]
    assert songs["song_00001"].mix_path == tmp_path / "val" / "song_00001" / "arranger_mix.flac"


def test_folder_layout_separates_mix(tmp_path: Path) -> None:
    make_folder(tmp_path)
    songs = {s.name: s for s in find_songs(tmp_path, "folder")}
    assert sorted(songs) == ["alpha", "beta", "gamma"]
    assert [p.name for p in songs["alpha"].stem_paths] == ["drums.wav", "vocals.wav"]
    assert songs["alpha"].mix_path is not None and songs["alpha"].mix_path.name == "mix.wav"
    assert songs["gamma"].mix_path is None and len(songs["gamma"].stem_paths) == 1
    # a folder that holds stems itself is one song
    single = find_songs(tmp_path / "alpha", "folder")
    assert len(single) == 1 and len(single[0].stem_paths) == 2


def test_medleydb_layout_reads_artist(tmp_path: Path) -> None:
    make_medleydb(tmp_path)
    songs = {s.name: s for s in find_songs(tmp_path, "medleydb")}
    assert sorted(songs) == ["Ann_One", "Ann_Two", "Bob_Three"]
    assert songs["Ann_Two"].meta["artist"] == "Ann" and songs["Ann_Two"].meta["genre"] == "Pop"
    assert len(songs["Bob_Three"].stem_paths) == 2 and songs["Bob_Three"].mix_path.name == "Bob_Three_MIX.wav"


def test_enst_layout_one_song_per_take(tmp_path: Path) -> None:
    make_enst(tmp_path)
    songs = {s.name: s for s in find_songs(tmp_path, "enst")}
    assert sorted(songs) == ["drummer_1/001_hits", "drummer_1/002_groove", "drummer_2/001_hits",
                             "drummer_2/002_groove"]
    song = songs["drummer_2/002_groove"]
    assert sorted(p.parent.name for p in song.stem_paths) == ["kick", "overhead_L", "snare"]
    assert song.mix_path.parent.name == "wet_mix" and song.meta["group"] == "drummer_2"


def test_cambridge_and_musdb_layouts(tmp_path: Path) -> None:
    make_cambridge(tmp_path / "cam")
    cam = {s.name: s for s in find_songs(tmp_path / "cam", "cambridge")}
    assert sorted(cam) == ["Artist_SongA", "Other_SongB"]
    assert cam["Artist_SongA"].mix_path.name == "Artist_SongA_Mix.wav" and cam["Other_SongB"].mix_path is None
    make_musdb(tmp_path / "musdb")
    musdb = {s.name: s for s in find_songs(tmp_path / "musdb", "musdb18hq")}
    assert len(musdb) == 4 and musdb["D Band - Fourth"].split == "test"
    assert [p.stem for p in musdb["A Band - First"].stem_paths] == ["drums", "bass", "other", "vocals"]


def test_unknown_layout_and_empty_folder_raise(tmp_path: Path) -> None:
    with pytest.raises(AutomixError, match="layout"):
        find_songs(tmp_path, "nonsense")
    with pytest.raises(AutomixError, match="no multitrack songs"):
        find_songs(tmp_path)


def _songs(n_artists: int, per_artist: int) -> list[Song]:
    return [Song(f"{a}_{k}", [Path(f"{a}_{k}.wav")], None, None, {"artist": f"artist{a}", "group": f"artist{a}"})
            for a in range(n_artists) for k in range(per_artist)]


def test_split_keeps_artists_together_and_is_deterministic() -> None:
    songs = _songs(20, 3)
    splits = split_songs(songs, (0.6, 0.2, 0.2), seed=3)
    names = [{s.name for s in splits[k]} for k in ("train", "val", "test")]
    assert sum(len(n) for n in names) == 60 and not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    artists = [{s.meta["artist"] for s in splits[k]} for k in ("train", "val", "test")]
    assert not (artists[0] & artists[1] or artists[0] & artists[2] or artists[1] & artists[2])
    assert [len(splits[k]) for k in ("train", "val", "test")] == [36, 12, 12]
    again = split_songs(songs, (0.6, 0.2, 0.2), seed=3)
    assert [s.name for s in again["test"]] == [s.name for s in splits["test"]]
    other = split_songs(songs, (0.6, 0.2, 0.2), seed=4)
    assert [s.name for s in other["test"]] != [s.name for s in splits["test"]]


def test_split_uses_given_splits_and_carves_val_from_train(tmp_path: Path) -> None:
    make_musdb(tmp_path)
    splits = split_songs(find_songs(tmp_path), (0.5, 0.5, 0.0), seed=0)
    assert [s.name for s in splits["test"]] == ["D Band - Fourth"]  # given split kept
    assert len(splits["train"]) + len(splits["val"]) == 3 and len(splits["val"]) >= 1
    assert all(s.split == "train" for s in splits["val"])


def test_split_rejects_bad_fractions() -> None:
    with pytest.raises(AutomixError, match="fractions"):
        split_songs(_songs(2, 1), (0.5, -0.1, 0.6))
