"""Training samplers on small generated songs: cache levels, determinism, silence, targets."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs
from automix.console.schema import TRACK
from automix.console.torch_console import mix_console
from automix.data import samplers
from automix.data.random_params import random_fx_params, random_master_params, random_track_params
from automix.errors import AutomixError
from automix.models.inputs import REFERENCE_LUFS

FILE_RATE = 22050
RATE = 8000
EXCERPT_S = 2.0


def _write_song(folder, levels, seconds=5.0, silent_second_half=(), seed=0):
    """Noise-burst stems at the given peak levels; returns (stem paths, mix path)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FILE_RATE)
    (folder / "stems").mkdir(parents=True)
    paths, mix = [], np.zeros((2, n), dtype=np.float32)
    for i, level in enumerate(levels):
        x = (level * rng.standard_normal(n)).astype(np.float32)
        if i in silent_second_half:
            x[n // 2 - FILE_RATE // 2:] = 0.0  # silent in the later half of every excerpt
        path = folder / "stems" / f"{i:02d}.flac"
        audio = np.stack([x, 0.5 * x]) if i % 2 else x[None]
        sf.write(path, audio.T, FILE_RATE, subtype="FLOAT" if path.suffix == ".wav" else "PCM_24")
        mix += audio if audio.shape[0] == 2 else np.repeat(audio, 2, axis=0)
        paths.append(path)
    sf.write(folder / "mix.flac", (0.5 * mix).T, FILE_RATE, subtype="PCM_24")
    return paths, folder / "mix.flac"


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("songs")
    out = []
    for k, levels in enumerate([[0.1, 0.01, 0.3], [0.05, 0.2, 0.02, 0.1]]):
        stems, mix = _write_song(root / f"song{k}", levels, seed=k)
        out.append(samplers.cache_song(f"song{k}", stems, mix, root / "cache", RATE, EXCERPT_S, 2))
    return out


def test_cached_stems_are_loudness_normalised(songs):
    for song in songs:
        stems = song.stems()
        assert stems.dtype == np.float16 and stems.shape[:2] == (2, len(song.is_stereo))
        for k, stereo in enumerate(song.is_stereo):
            x = np.asarray(stems[0, k, : 1 + int(stereo)], dtype=np.float64)
            assert abs(integrated_lufs(x, RATE) - NORMALISED_STEM_LUFS) < 0.5


def test_cache_is_reused(tmp_path):
    stems, _ = _write_song(tmp_path / "s", [0.1, 0.2], seconds=3.0)
    first = samplers.cache_song("s", stems, None, tmp_path / "cache", RATE, EXCERPT_S, 1)
    mtime = first.stems_path.stat().st_mtime_ns
    again = samplers.cache_song("s", stems, None, tmp_path / "cache", RATE, EXCERPT_S, 1)
    assert again.stems_path == first.stems_path and first.stems_path.stat().st_mtime_ns == mtime
    with pytest.raises(AutomixError, match="no stems"):
        samplers.cache_song("empty", [], None, tmp_path / "cache", RATE, EXCERPT_S, 1)


def test_method1_is_deterministic_for_a_seed(songs):
    a = samplers.Method1Dataset(songs, RATE, seed=5, length=10)
    b = samplers.Method1Dataset(songs, RATE, seed=5, length=10)
    c = samplers.Method1Dataset(songs, RATE, seed=6, length=10)
    for i in range(4):
        x, y = a[i], b[i]
        assert all(torch.equal(x[k], y[k]) for k in x)
    differs = [a[i]["track_params"].shape != c[i]["track_params"].shape
               or not torch.equal(a[i]["track_params"], c[i]["track_params"]) for i in range(4)]
    assert all(differs)


def test_method1_never_emits_a_stem_silent_in_either_half(tmp_path):
    stems, _ = _write_song(tmp_path / "s", [0.1, 0.1, 0.1], seconds=EXCERPT_S + 0.5, silent_second_half=(1,))
    song = samplers.cache_song("s", stems, None, tmp_path / "cache", RATE, EXCERPT_S, 1)
    ds = samplers.Method1Dataset([song], RATE, seed=0, length=30)
    for i in range(30):
        item = ds[i]
        power_db = 10 * np.log10(item["stems"].square().mean(dim=(-2, -1)).numpy() + 1e-12)
        assert item["stems"].shape[0] == 2  # only the two stems playing in both halves
        assert power_db.min() > NORMALISED_STEM_LUFS - 30


def test_random_params_are_plausible_and_in_range():
    rng = np.random.default_rng(0)
    tracks = np.concatenate([random_track_params(rng, np.array([True, False] * 50)) for _ in range(10)])
    assert np.all(tracks >= TRACK.minimum()) and np.all(tracks <= TRACK.maximum())
    gain = tracks[:, TRACK.index("gain_db")]
    assert np.mean(np.abs(gain) <= 12.0) > 0.85
    eq_gain = tracks[:, TRACK.index("eq.band_2.gain_db")]
    assert np.mean(np.abs(eq_gain) <= 6.0) > 0.8
    ratio = tracks[:, TRACK.index("compressor.ratio")]
    assert 0.3 < np.mean(ratio > 1.0) < 0.7 and ratio.max() <= 6.0 + 1e-9
    assert np.all(tracks[:, TRACK.index("trim_db")] == 0.0)
    fx, master = random_fx_params(rng), random_master_params(rng)
    assert fx.shape == (4,) and master.shape[0] > 10


def test_method1_targets_reproduce_from_their_parameters(songs):
    """Re-rendering A+B with the differentiable console from the item's own settings gives its
    reference and target (the sampler uses the block renderer: same coefficients, exact IIR)."""
    song = songs[1]
    ds = samplers.Method1Dataset([song], RATE, seed=1, length=4)
    item = ds[0]
    n = int(EXCERPT_S * RATE)
    # Find which cached excerpt and stems the sampler picked (the B halves match exactly).
    cached = np.asarray(song.stems(), dtype=np.float32)
    picks = [(e, k) for e in range(cached.shape[0]) for k in range(cached.shape[1])
             for x in item["stems"] if np.array_equal(cached[e, k, :, n // 2:], x.numpy())]
    e = picks[0][0]
    rows = [k for ee, k in picks if ee == e]
    assert len(rows) == item["stems"].shape[0]
    full = torch.from_numpy(cached[e, rows])[None]
    again = mix_console(full, item["is_stereo"][None], item["track_params"][None], item["fx_params"][None],
                        item["master_params"][None], RATE)[0]
    half = n // 2
    for got, want in ((item["reference"], again[:, :half]), (item["target"], again[:, half:])):
        err_db = 10 * np.log10(float((got - want).square().mean()) / float(want.square().mean()))
        assert err_db < -40.0
    assert float(item["target"].square().mean()) > 1e-6  # a real, audible mix


def test_collate_pads_tracks_with_a_mask(songs):
    ds = samplers.Method1Dataset(songs, RATE, seed=2, length=8)
    items = [ds[i] for i in range(4)]
    batch = samplers.collate(items)
    counts = [it["stems"].shape[0] for it in items]
    assert batch["track_mask"].sum(1).tolist() == counts
    assert batch["stems"].shape[:2] == (4, max(counts))
    for b, c in enumerate(counts):
        assert float(batch["stems"][b, c:].abs().sum()) == 0.0
        assert torch.equal(batch["track_params"][b, :c], items[b]["track_params"])


def test_supervised_target_is_the_mix_of_the_same_excerpt(tmp_path):
    # Equal-level stems get equal trims, so the cached mix (0.5 × raw sum) ∝ the sum of the cached stems.
    stems, mix = _write_song(tmp_path / "s", [0.1, 0.1, 0.1], seconds=6.0)
    song = samplers.cache_song("s", stems, mix, tmp_path / "cache", RATE, EXCERPT_S, 2)
    ds = samplers.SupervisedDataset([song], RATE, seed=0, length=4)
    for i in range(4):
        item = ds[i]
        assert item["stems"].shape[0] == 3 and item["target"].shape == (2, int(EXCERPT_S * RATE))
        corr = np.corrcoef(item["target"][0].numpy(), item["stems"][:, 0].sum(0).numpy())[0, 1]
        assert corr > 0.995


def test_method2_pairs_stems_with_a_reference(songs, tmp_path):
    x = (0.1 * np.random.default_rng(0).standard_normal((FILE_RATE * 6, 2))).astype(np.float32)
    sf.write(tmp_path / "ref.flac", x, FILE_RATE, subtype="PCM_24")
    ref = samplers.cache_reference(tmp_path / "ref.flac", tmp_path / "cache", RATE, EXCERPT_S, 2)
    cached = np.load(ref)
    assert cached.shape == (2, 2, int(EXCERPT_S * RATE))
    assert abs(integrated_lufs(cached[0].astype(np.float64), RATE) - REFERENCE_LUFS) < 0.5
    ds = samplers.Method2Dataset(songs, [ref], RATE, seed=0, length=3)
    item = ds[0]
    assert item["reference"].shape == (2, int(EXCERPT_S * RATE) // 2)
    assert item["stems"].shape[-1] == int(EXCERPT_S * RATE) // 2


def test_a_reference_shorter_than_an_excerpt_is_refused_with_its_length(tmp_path):
    short = (0.1 * np.random.default_rng(1).standard_normal((FILE_RATE // 2, 2))).astype(np.float32)
    sf.write(tmp_path / "short.flac", short, FILE_RATE, subtype="PCM_24")
    with pytest.raises(samplers.TooShortError, match=r"short.flac: 0.5 s, shorter than one"):
        samplers.cache_reference(tmp_path / "short.flac", tmp_path / "cache", RATE, EXCERPT_S, 2)
