"""Try extra balance descriptors by the same package-grouped 5-fold cross-validation.

Companion to ``scripts/cv_balance_models.py`` (which varies the learner): here the learner is
the shipped forest and the *inputs* vary. Each variant adds columns to
:func:`automix.mixers.balance_features.song_features`, computed from descriptors already cached
(or from the track names), and is trained with each song weighted equally (every track ``1/K``)
as well as unweighted. Prints the median per-song balance error (dB) overall and per family.
Results: docs/results/real-cv/cv.txt. Use::

    python scripts/cv_balance_features.py --corpus data/real
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from automix.evaluate.features import balance_error_db
from automix.mixers.balance_features import TRACK_FEATURES, song_features
from automix.train.balance import load_table

FOLDS = 5
_INDEX = {name: i for i, name in enumerate(TRACK_FEATURES)}
_BANDS = [_INDEX[f"band_{k:02d}_db"] for k in range(16)]

# General MIDI instrument families by the words a track name uses (first match wins).
GM_FAMILY_WORDS: dict[str, str] = {
    "piano": r"piano|clav|harpsi|rhodes|keys", "chromatic": r"celesta|glock|music_box|vibra|marimba|xylo|bell",
    "organ": r"organ|accordion|harmonica|bandoneon", "guitar": r"guitar|gtr|nylon|overdrive|distortion|banjo",
    "bass": r"bass", "strings": r"violin|viola|cello|string|harp|pizz|tremolo",
    "choir": r"choir|voice|voc|aahs|oohs|vox", "brass": r"trumpet|trombone|tuba|horn|brass",
    "reed": r"sax|oboe|bassoon|clarinet", "pipe": r"flute|piccolo|recorder|whistle|ocarina",
    "lead": r"lead|square|saw|calliope|chiff", "pad": r"pad|warm|polysynth|halo|sweep",
    "fx": r"fx|rain|soundtrack|crystal|atmosphere|goblin|echo|effect",
    "drums": r"drum|kick|snare|hat|cymbal|crash|ride|tom|perc|timpani|clap|conga",
}


def _rank(values: np.ndarray) -> np.ndarray:
    if values.size == 1:
        return np.full(1, 0.5)
    return np.argsort(np.argsort(values, kind="stable"), kind="stable") / (values.size - 1)


def band_prominence(base: np.ndarray) -> np.ndarray:
    """Per band, the track's power over the other tracks' mean (dB; the stems are at equal
    loudness), the largest of those, and how much of its energy sits where it dominates."""
    power = 10.0 ** (base[:, _BANDS] / 10.0)
    total = power.sum(axis=0, keepdims=True)
    others = (total - power) / max(len(base) - 1, 1) + 1e-9
    prominence = 10.0 * np.log10((power + 1e-9) / others)
    dominance = (power / (total + 1e-12) * power).sum(axis=1, keepdims=True)
    return np.concatenate([prominence, prominence.max(axis=1, keepdims=True), dominance], axis=1)


def more_ranks(base: np.ndarray) -> np.ndarray:
    names = ("crest_db", "active_share", "onset_strength", "peak_to_loudness_db", "flatness_db", "rolloff_oct",
             "loudness_minus_active_db")
    return np.stack([_rank(base[:, _INDEX[n]]) for n in names], axis=1)


def song_spread(base: np.ndarray) -> np.ndarray:
    """The song's spread of four descriptors, and how many other tracks share the track's role."""
    spreads = [np.full(len(base), base[:, _INDEX[n]].std()) for n in
               ("centroid_oct", "crest_db", "active_share", "onset_strength")]
    roles = base[:, [i for n, i in _INDEX.items() if n.startswith("name_")]]
    same_role = (roles @ roles.T).sum(axis=1) - roles.sum(axis=1)
    return np.stack([*spreads, same_role], axis=1)


def gm_families(names: list[str]) -> np.ndarray:
    """One-hot GM family from each name, and the same relative to the song's mean."""
    onehot = np.zeros((len(names), len(GM_FAMILY_WORDS)))
    for row, name in enumerate(names):
        for col, pattern in enumerate(GM_FAMILY_WORDS.values()):
            if re.search(pattern, name.lower()):
                onehot[row, col] = 1.0
                break
    return np.concatenate([onehot, onehot - onehot.mean(axis=0)], axis=1)


Variant = Callable[[np.ndarray, list[str]], np.ndarray]
VARIANTS: dict[str, Variant] = {
    "shipped descriptors": lambda base, names: song_features(base),
    "+ band prominence": lambda base, names: np.concatenate([song_features(base), band_prominence(base)], 1),
    "+ more ranks": lambda base, names: np.concatenate([song_features(base), more_ranks(base)], 1),
    "+ song spread, shared roles": lambda base, names: np.concatenate([song_features(base), song_spread(base)], 1),
    "+ GM family from names": lambda base, names: np.concatenate([song_features(base), gm_families(names)], 1),
}


def _track_names(corpus: Path) -> dict[str, list[str]]:
    names = {}
    for path in corpus.glob("*/*/song.json"):
        meta = json.loads(path.read_text(encoding="utf-8"))
        names[meta["song_id"]] = [t["name"] for t in meta["tracks"]]
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/real"))
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    tables = [load_table(args.corpus, split, args.cache) for split in ("train", "val")]
    songs = [s for t in tables for s in t.songs]
    families = np.array([f for t in tables for f in t.families])
    bases = [b for t in tables for b in t.tracks]
    levels = [lv for t in tables for lv in t.levels]
    names = _track_names(args.corpus)
    packages = sorted({s.split("__")[0] for s in songs})
    order = np.random.default_rng(0).permutation(len(packages))
    fold_of = {packages[i]: k % FOLDS for k, i in enumerate(order)}
    folds = np.array([fold_of[s.split("__")[0]] for s in songs])
    equal = np.array([balance_error_db(np.zeros(len(lv)), lv).mean() for lv in levels])

    def report(name: str, errors: np.ndarray) -> None:
        parts = "  ".join(f"{f} {np.median(errors[families == f]):.2f}" for f in sorted(set(families)))
        print(f"{name:44s} median {np.median(errors):.3f}  mean {errors.mean():.3f}  {parts}  "
              f"× equal loudness {np.median(errors) / np.median(equal):.3f}", flush=True)

    print(f"{len(songs)} songs from {len(packages)} packages, {FOLDS} folds by package")
    report("equal loudness", equal)
    for name, variant in VARIANTS.items():
        features = [variant(base, names[song]) for base, song in zip(bases, songs)]
        for weighted in (False, True):
            errors = np.zeros(len(songs))
            for fold in range(FOLDS):
                train, held = np.where(folds != fold)[0], np.where(folds == fold)[0]
                weights = np.concatenate([np.full(len(levels[i]), 1.0 / len(levels[i])) for i in train])
                model = RandomForestRegressor(300, min_samples_leaf=4, max_features=0.4, max_depth=16,
                                              random_state=0, n_jobs=args.threads)
                model.fit(np.concatenate([features[i] for i in train]),
                          np.concatenate([levels[i] - levels[i].mean() for i in train]),
                          sample_weight=weights if weighted else None)
                for i in held:
                    errors[i] = balance_error_db(model.predict(features[i]), levels[i]).mean()
            report(name + (", songs weighted equally" if weighted else ""), errors)


if __name__ == "__main__":
    main()
