"""The real-balance corpus layout, its truth, the split, and the balance models trained on it.

A fake source family renders generated songs whose "author" always balances the same way
(bass +4 LU, hats −8 LU, lead +2 LU against the kick, with pans), so the truths written are
known exactly and a model trained on them must learn the rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, bass, hats, kick, lead

from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs
from automix.data import real
from automix.data.human_mix import HumanMix, SourceFile
from automix.data.loaders import find_songs
from automix.errors import AutomixError
from automix.mixers.balance_features import SONG_FEATURES, song_features, track_features
from automix.mixers.roles import FAMILIES, family_from_name
from automix.models.balance import BalanceNet, BalanceNetConfig, ForestBalance

RULE_LU = {"kick": 0.0, "bass": 4.0, "hats": -8.0, "lead": 2.0}
PANS = {"kick": 0.0, "bass": 0.0, "hats": 0.6, "lead": -0.4}
SECONDS = 2.0


def _panned(mono: np.ndarray, pan: float) -> np.ndarray:
    theta = (pan + 1.0) * np.pi / 4.0
    return np.stack([mono[0] * np.cos(theta), mono[0] * np.sin(theta)]).astype(np.float32)


def _fake_render(source: SourceFile, sample_rate: int = SR, max_seconds: float = 30.0) -> HumanMix:
    if source.title == "broken":
        raise AutomixError(f"{source.source_path}: cannot load")
    index = int(source.title.split("_")[1])
    rng = np.random.default_rng(index)
    makers = {"kick": kick, "bass": bass, "hats": hats, "lead": lead}
    tracks = []
    for name, make in makers.items():
        mono = make(SECONDS)
        mono = mono * 10 ** ((-20.0 - integrated_lufs(mono, SR)) / 20.0)  # all at −20 LUFS ...
        gain_db = RULE_LU[name] + rng.normal(0.0, 0.3) + (rng.uniform(-6, 6) if index % 5 == 0 else 0.0)
        tracks.append((f"{name}_{index}", _panned(mono * 10 ** (gain_db / 20.0), PANS[name])))  # ... then balanced
    mix = np.sum([t for _, t in tracks], axis=0).astype(np.float32)
    return HumanMix(source, sample_rate, tracks, mix)


def _fake_sources(count: int) -> list[SourceFile]:
    return [SourceFile("tracker", f"pkg{i % 6}", Path(f"/nowhere/{i}.mod"), f"usr/share/x/{i}.mod", "GPL-2+",
                       author=f"author{i % 4}" if i % 6 < 4 else "", title=f"song_{i}") for i in range(count)]


@pytest.fixture
def fake_family(monkeypatch):
    sources = _fake_sources(30) + [SourceFile("tracker", "pkg0", Path("/x"), "usr/broken.mod", "GPL", title="broken")]
    module = SimpleNamespace(find_sources=lambda cache, log=print: sources, render=_fake_render)
    monkeypatch.setattr(real, "_source_module", lambda family: module)
    return sources


@pytest.fixture
def corpus(tmp_path: Path, fake_family) -> Path:
    out = tmp_path / "real"
    real.build_real(out, families=("tracker",), jobs=1, log=lambda m: None)
    return out


def test_split_keeps_packages_and_authors_together():
    sources = _fake_sources(60)
    splits = real.assign_splits(sources, seed=3)
    by_package: dict[str, set[str]] = {}
    by_author: dict[str, set[str]] = {}
    for s in sources:
        by_package.setdefault(s.package, set()).add(splits[real.song_id(s)])
        if s.author:
            by_author.setdefault(s.author, set()).add(splits[real.song_id(s)])
    assert all(len(v) == 1 for v in by_package.values())
    assert all(len(v) == 1 for v in by_author.values())
    # author0..3 tie packages 0..3 together (i % 4 vs i % 6), packages 4 and 5 stand alone
    assert len(set(splits.values())) >= 2


def test_corpus_layout_and_truth(corpus: Path):
    rows = [json.loads(p.read_text()) for p in corpus.glob("*/*/song.json")]
    assert len(rows) == 30  # the broken file was skipped
    manifest = (corpus / "manifest.csv").read_text().splitlines()
    assert len(manifest) == 31 and manifest[0].startswith("split,song_id,family")
    meta = rows[0]
    folder = corpus / meta["split"] / meta["song_id"]
    mix, rate = sf.read(folder / "mix.flac", always_2d=True)
    levels = {}
    for track in meta["tracks"]:
        stem, _ = sf.read(folder / track["file"], always_2d=True)
        assert stem.shape[1] == 1  # mono: the stem's channels do not tell the pan
        assert integrated_lufs(stem.T, rate) == pytest.approx(NORMALISED_STEM_LUFS, abs=0.05)
        role = track["name"].split("_")[0]
        levels[role] = track["level_in_mix_lu"]
        assert track["pan"] == pytest.approx(PANS[role], abs=0.02)
        # the stored stem at its truth gain, panned, is the author's track
        restored = _panned(stem.T * 10 ** (track["gain_db"] / 20.0), track["pan"])
        assert integrated_lufs(restored, rate) - meta["mix"]["lufs"] == pytest.approx(track["level_in_mix_lu"], abs=0.1)
    index = int(meta["title"].split("_")[1])
    if index % 5:
        for role in ("bass", "hats", "lead"):
            assert levels[role] - levels["kick"] == pytest.approx(RULE_LU[role], abs=1.5)
    assert mix.shape[1] == 2 and np.max(np.abs(mix)) < 1.0
    songs = find_songs(corpus)
    assert songs[0].meta["layout"] == "automix-real" and songs[0].mix_path.name == "mix.flac"


def test_build_resumes_without_rendering_again(corpus: Path, monkeypatch):
    monkeypatch.setattr(real, "_render_one", lambda args: pytest.fail("rendered again"))
    rows = real.build_real(corpus, families=("tracker",), jobs=1, log=lambda m: None)
    assert len(rows) == 30


def test_features_ignore_level_and_see_context():
    a = track_features(bass(2.0), SR, "bass")
    assert np.allclose(a, track_features(bass(2.0) * 1e-3, SR, "bass"), atol=1e-6)
    assert np.all(np.isfinite(track_features(np.zeros((1, SR), np.float32), SR)))
    rows = song_features([a, track_features(hats(2.0), SR, "hh")])
    assert rows.shape == (2, len(SONG_FEATURES))
    assert rows[0, SONG_FEATURES.index("rank_centroid")] == 0.0 and rows[1, SONG_FEATURES.index("rank_centroid")] == 1.0


@pytest.mark.parametrize(("name", "family"), [
    ("Bassdrum", "drums"), ("Organ Bass", "bass"), ("909 Claps", "drums"), ("04_slap_bass_2", "bass"),
    ("bright_acoustic_piano", "piano"), ("String Ensemble 1", "strings"), ("Pan Flute", "pipe"),
    ("lead_2_sawtooth", "lead"), ("pad_3_polysynth", "pad"), ("Choir Aahs", "choir"), ("ch9", None),
    ("marjamaentie 10", None)])
def test_family_from_name(name: str, family: str | None):
    assert family_from_name(name) == family


def test_family_columns_one_hot_and_relative_to_the_song():
    pianos = [track_features(bass(1.0), SR, name) for name in ("piano 1", "piano 2", "violin")]
    rows = song_features(pianos)
    column = SONG_FEATURES.index
    assert rows[:, column("family_piano")].tolist() == [1.0, 1.0, 0.0]
    assert rows[:, column("family_strings")].tolist() == [0.0, 0.0, 1.0]
    # the violin is the song's only string: +2/3 above the song's mean; each piano one of two
    assert rows[:, column("rel_family_strings")] == pytest.approx([-1 / 3, -1 / 3, 2 / 3])
    assert rows[:, column("rel_family_piano")] == pytest.approx([1 / 3, 1 / 3, -2 / 3])
    assert sum(rows[0, column(f"family_{f}")] for f in FAMILIES) == 1.0


def test_forest_export_reproduces_sklearn():
    from sklearn.ensemble import RandomForestRegressor

    from automix.train.balance import export_forest

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(SONG_FEATURES)))
    y = x[:, 0] * 3 - x[:, 5] ** 2
    estimator = RandomForestRegressor(n_estimators=7, max_depth=6, random_state=0).fit(x, y)
    forest = export_forest(estimator)
    test = rng.normal(size=(50, len(SONG_FEATURES)))
    assert np.allclose(forest.predict(test), estimator.predict(test))
    broken = forest.arrays()
    broken["left"] = broken["left"].copy()
    broken["left"][broken["left"] >= 0] += 10**6
    with pytest.raises(AutomixError, match="outside"):
        ForestBalance(**broken)


def test_balance_net_is_permutation_equivariant():
    net = BalanceNet(BalanceNetConfig(width=32, layers=1, heads=2, dropout=0.0)).eval()
    x = np.random.default_rng(1).normal(size=(5, len(SONG_FEATURES)))
    order = np.array([3, 0, 4, 1, 2])
    assert np.allclose(net.predict(x)[order], net.predict(x[order]), atol=1e-5)


def _config(path: Path, corpus: Path, kind: str, sizes: str, steps: int = 60) -> Path:
    path.write_text(f"""
name: {kind}-test
out_dir: {path.parent / (kind + '-run')}
model: {{kind: {kind}, sizes: {sizes}}}
data: {{method: balance, songs_root: {corpus}, cache_dir: {path.parent / 'cache'}, train_split: train,
       val_split: val}}
steps: {steps}
batch_size: 8
lr: 0.003
warmup_steps: 5
val_every: 20
""")
    return path


@pytest.mark.parametrize("kind,sizes", [("forest", "{trees: 30, min_samples_leaf: 1}"),
                                        ("balance-net", "{width: 32, layers: 1, heads: 2}")])
def test_train_learns_the_authors_rule_and_mixes(tmp_path: Path, corpus: Path, kind: str, sizes: str):
    from automix.io import Stem
    from automix.mixers import get_mixer
    from automix.train import balance
    from automix.train.balance import load_table, summary
    from automix.train.config import load_config

    cfg = load_config(_config(tmp_path / "c.yaml", corpus, kind, sizes, steps=400))
    path = balance.run(cfg, log=lambda m: None)
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["model"] == kind and info["inputs"] == list(SONG_FEATURES)
    split = "test" if (corpus / "test").is_dir() else "val"
    table = load_table(corpus, split, tmp_path / "cache")
    mixer = get_mixer(str(path))
    learned = summary(table, mixer.model.predict)["median_balance_error_db"]
    equal = summary(table, None)["median_balance_error_db"]
    assert equal > 3.0 and learned < 0.5 * equal, (learned, equal)

    stems = [Stem(f"{name}.wav", make(SECONDS), SR) for name, make in
             (("kick", kick), ("bass", bass), ("hats", hats), ("lead", lead))]
    settings = mixer.predict(stems, SR)
    gains = {n.split(".")[0]: settings.get(n, "gain_db") for n in settings.track_names}
    assert gains["bass"] > gains["hats"] + 6.0  # the rule: bass 12 LU above hats
    assert any("the model puts it" in note for note in settings.notes["bass.wav"])


def test_eval_reports_unity_and_families(tmp_path: Path, corpus: Path):
    from automix.evaluate.run import evaluate_dataset
    from automix.train import balance
    from automix.train.config import load_config

    cfg = load_config(_config(tmp_path / "c.yaml", corpus, "forest", "{trees: 30, min_samples_leaf: 1}"))
    checkpoint = balance.run(cfg, log=lambda m: None)
    split = "test" if (corpus / "test").is_dir() else "val"
    result = evaluate_dataset(corpus, ["unity", "equal-loudness", str(checkpoint)], tmp_path / "report",
                              split=split, plots=False)
    balance_error = result.summary["metrics"]["balance_error_db"]
    # stored stems are loudness-normalised: unity and equal loudness are the same balance
    assert balance_error["unity"]["median"] == pytest.approx(balance_error["equal-loudness"]["median"], abs=0.2)
    assert balance_error[str(checkpoint)]["median"] < 0.5 * balance_error["unity"]["median"]
    assert list(result.summary["families"]) == ["tracker"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Per source family" in report and "tracker (" in report


def test_given_balance_is_trusted_only_when_it_agrees():
    from automix.mixers.learned_balance import given_balance_weight

    rng = np.random.default_rng(0)
    truth = rng.normal(0.0, 5.0, size=12)
    predicted = truth + rng.normal(0.0, 3.0, size=12)
    assert given_balance_weight(np.zeros(12), predicted, 9.0) == 0.0  # normalised stems: no balance
    assert given_balance_weight(truth, predicted, 9.0) > 0.8  # stems that carry the author's balance
    recorded = rng.uniform(-15.0, 15.0, size=12)  # arbitrary recording levels
    assert given_balance_weight(recorded, predicted, 9.0) < 0.3


def test_eval_reads_the_recorded_truth_not_an_estimate(corpus: Path):
    from automix.evaluate.measure_song import known_truth
    from automix.evaluate.song_audio import load_song

    # a song whose author kept the rule (every fifth one moves its faders at random)
    song = next(s for s in find_songs(corpus) if int(s.name.rsplit("_", 1)[1]) % 5)
    stems = load_song(song).stems
    levels_lu, pans = known_truth(song, stems)
    recorded = {Path(t["file"]).name: t for t in song.meta["tracks"]}
    for stem, level, pan in zip(stems, levels_lu, pans):
        assert level == pytest.approx(recorded[stem.path.name]["level_in_mix_lu"])
        assert pan == pytest.approx(recorded[stem.path.name]["pan"])
    # the fake author's rule: hats 8 LU under the kick (each fader wobbles by 0.3 dB)
    by_role = {stem.path.stem.split("_")[1]: level for stem, level in zip(stems, levels_lu)}
    assert by_role["hats"] - by_role["kick"] == pytest.approx(RULE_LU["hats"] - RULE_LU["kick"], abs=1.5)
    stems[0].path = stems[0].path.with_name("renamed.flac")  # a stem the metadata does not know
    assert known_truth(song, stems) is None


def test_refit_with_val_fits_both_and_validates_by_package(tmp_path: Path, corpus: Path):
    from automix.models.balance import ForestBalance
    from automix.models.checkpoint import load_checkpoint
    from automix.train import balance
    from automix.train.config import load_config

    config = _config(tmp_path / "c.yaml", corpus, "forest", "{trees: 20, min_samples_leaf: 1}")
    config.write_text(config.read_text().replace("val_split: val}", "val_split: val, refit_with_val: true}"))
    cfg = load_config(config)
    path = balance.run(cfg, log=lambda m: None)
    info = json.loads(path.with_suffix(".json").read_text())["training"]
    train = balance.load_table(corpus, "train", tmp_path / "cache")
    val = balance.load_table(corpus, "val", tmp_path / "cache")
    both = balance.join_tables(train, val)
    assert info["data"]["train_songs"] == info["data"]["val_songs"] == len(both.songs) == len(train.songs) + len(val.songs)
    assert info["validation"].startswith("package-grouped cross-validation")
    # the shipped forest is the one fitted on train + val
    shipped = load_checkpoint(path)[0]
    _, on_both = balance._fit_forest(cfg, both)
    x = song_features(both.tracks[0])
    assert isinstance(shipped, ForestBalance) and np.allclose(shipped.predict(x), on_both.predict(x))

    # every song is predicted by a forest fitted without any song of its package or composer
    held = balance.cross_validated_predictions(cfg, both, log=lambda m: None)
    assert info["val"] == balance.summary_of(both, held)
    groups = both.groups()
    folds = balance.group_folds(groups, balance.CV_FOLDS, seed=cfg.seed)
    for fold in sorted(set(folds)):
        inside = np.where(folds == fold)[0]
        outside = [i for i in range(len(both.songs)) if folds[i] != fold]
        assert not {both.sources[i][0] for i in inside} & {both.sources[i][0] for i in outside}
        assert not ({both.sources[i][1] for i in inside} & {both.sources[i][1] for i in outside}) - {""}
        _, alone = balance._fit_forest(cfg, both.subset(outside))
        for i in inside:
            assert np.allclose(held[i], alone.predict(song_features(both.tracks[i])))
    # the author's rule holds in every package, so songs predicted without their package still beat equal loudness
    assert info["val"]["median_balance_error_db"] < 0.5 * info["equal_loudness_val"]["median_balance_error_db"]


def test_composer_groups_join_packages_that_share_an_author():
    songs = [("pkg_a", "Ann"), ("pkg_b", "ann "), ("pkg_c", ""), ("pkg_d", "Bob"), ("pkg_c", "Bob"), ("pkg_e", "")]
    groups = real.composer_groups(songs)
    assert groups[0] == groups[1]  # one author (case and spaces aside) in two packages
    assert groups[2] == groups[3] == groups[4]  # pkg_c's second song brings Bob's pkg_d in
    assert len({groups[0], groups[2], groups[5]}) == 3  # an unknown author joins nothing


def test_refit_with_val_is_for_forests_only(tmp_path: Path, corpus: Path):
    from automix.train.config import ConfigError, load_config

    config = _config(tmp_path / "c.yaml", corpus, "balance-net", "{width: 32, layers: 1, heads: 2}")
    config.write_text(config.read_text().replace("val_split: val}", "val_split: val, refit_with_val: true}"))
    with pytest.raises(ConfigError, match="refit_with_val: only a forest"):
        load_config(config)
    config.write_text(config.read_text().replace("refit_with_val: true", "refit_with_val: 'no'"))
    with pytest.raises(ConfigError, match="refit_with_val: expected true or false"):
        load_config(config)
    mst = tmp_path / "mst.yaml"
    mst.write_text("model: {kind: mst}\ndata: {refit_with_val: true}\nloss: {param: 1.0}\n")
    with pytest.raises(ConfigError, match="refit_with_val: only a forest"):
        load_config(mst)


def _fake_synthetic(root: Path, songs: int = 6) -> None:
    """MMA-like songs whose arranger keeps the same rule (and one OpenMSX song that must be skipped)."""
    makers = {"kick": kick, "bass": bass, "hats": hats, "lead": lead}
    for index in range(songs + 1):
        folder = root / ("train" if index % 3 else "val") / f"song_{index:05d}"
        (folder / "stems").mkdir(parents=True)
        stems = []
        for k, (name, make) in enumerate(makers.items()):
            mono = make(SECONDS)
            offset_db = (k - 1.5) * 5.0  # an arbitrary recording level around -20 LUFS
            file = f"stems/{k + 1:02d}_{name}.flac"
            sf.write(folder / file, (mono[0] * 10 ** ((-20.0 - integrated_lufs(mono, SR) + offset_db) / 20.0)
                                     ).astype(np.float32), SR)
            # the arranger's gain puts the stem at the rule: -20 + offset + gain = -20 + rule
            stems.append({"file": file, "name": name, "stem_to_mix_gain_db": RULE_LU[name] - offset_db})
        kind = "openmsx" if index == songs else "mma"
        (folder / "song.json").write_text(json.dumps({"song_id": folder.name, "source": {"kind": kind}, "stems": stems}))


def test_synthetic_table_reads_mma_arranger_balances(tmp_path: Path):
    from automix.train.synthetic_balance import load_synthetic_table

    _fake_synthetic(tmp_path / "synth")
    table = load_synthetic_table(tmp_path / "synth", tmp_path / "cache", jobs=1, log=lambda m: None)
    assert len(table.songs) == 6 and "song_00006" not in table.songs  # the OpenMSX song is left out
    for levels in table.levels:  # level in the mix = stem loudness + arranger gain: the rule, whatever the recording
        centred = levels - levels[0]
        assert np.allclose(centred, [RULE_LU[n] - RULE_LU["kick"] for n in ("kick", "bass", "hats", "lead")], atol=0.05)
    assert all(len(rows) == 4 for rows in table.tracks)
    logged: list[str] = []
    again = load_synthetic_table(tmp_path / "synth", tmp_path / "cache", jobs=1, log=logged.append)
    assert not logged  # read from the cache, nothing measured again
    assert np.array_equal(np.concatenate(again.levels), np.concatenate(table.levels))


def test_forest_fits_synthetic_rows_at_their_weight(tmp_path: Path, corpus: Path):
    from automix.train import balance
    from automix.train.config import ConfigError, load_config
    from automix.train.synthetic_balance import load_synthetic_table

    _fake_synthetic(tmp_path / "synth")
    config = _config(tmp_path / "c.yaml", corpus, "forest", "{trees: 20, min_samples_leaf: 1}")
    text = config.read_text().replace("val_split: val}", f"val_split: val, synthetic_root: {tmp_path / 'synth'}, "
                                                         "synthetic_weight: 0.5}")
    config.write_text(text)
    cfg = load_config(config)
    path = balance.run(cfg, log=lambda m: None)
    data = json.loads(path.with_suffix(".json").read_text())["training"]["data"]
    assert (data["synthetic_songs"], data["synthetic_tracks"], data["synthetic_weight"]) == (6, 24, 0.5)
    train = balance.load_table(corpus, "train", tmp_path / "cache")
    extra = load_synthetic_table(tmp_path / "synth", tmp_path / "cache")
    x = song_features(train.tracks[0])
    with_extra = balance._fit_forest(cfg, train, extra)[1].predict(x)
    assert not np.allclose(with_extra, balance._fit_forest(cfg, train)[1].predict(x))
    cfg.data.synthetic_weight = 1.0  # the weight reaches the fit
    assert not np.allclose(with_extra, balance._fit_forest(cfg, train, extra)[1].predict(x))

    bad = tmp_path / "net.yaml"
    bad.write_text(text.replace("kind: forest, sizes: {trees: 20, min_samples_leaf: 1}",
                                "kind: balance-net, sizes: {width: 32, layers: 1, heads: 2}"))
    with pytest.raises(ConfigError, match="synthetic_root: only a forest"):
        load_config(bad)
