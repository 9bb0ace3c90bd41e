"""Compare balance-model variants by 5-fold cross-validation grouped by source package.

Uses the train and val splits of the real-balance corpus together (the test split stays
untouched) with every package's songs in one fold, so a fold's songs come from packages (and
composers) its model never saw. Prints the median per-song balance error (dB, overall level
removed) overall and per family, and the ratio to equal loudness. Use::

    python scripts/cv_balance_models.py --corpus data/real
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

from automix.evaluate.features import balance_error_db
from automix.mixers.balance_features import song_features
from automix.train.balance import FOREST_SIZES, group_folds, load_table
from automix.train.corpus_table import CorpusTable, join_tables

FOLDS = 5


def report_line(name: str, errors: np.ndarray, equal: np.ndarray, families: np.ndarray) -> str:
    """One result row: median and mean per-song error (dB), per family, ratio to equal loudness."""
    parts = "  ".join(f"{f} {np.median(errors[families == f]):.2f}" for f in sorted(set(families)))
    return (f"{name:44s} median {np.median(errors):.3f}  mean {errors.mean():.3f}  {parts}  "
            f"× equal loudness {np.median(errors) / np.median(equal):.3f}")


def shipped_forest(threads: int) -> RandomForestRegressor:
    """A forest with the shipped sizes (:data:`automix.train.balance.FOREST_SIZES`, as in
    configs/balance-forest.yaml), seed 0."""
    sizes = FOREST_SIZES
    return RandomForestRegressor(sizes["trees"], min_samples_leaf=sizes["min_samples_leaf"],
                                 max_features=sizes["max_features"], max_depth=sizes["max_depth"],
                                 random_state=0, n_jobs=threads)


def fold_errors(make: Callable[[], object], features: list[np.ndarray], levels: list[np.ndarray], folds: np.ndarray,
                allowed: Callable[[int], Sequence[int]] | None = None, songs_weighted: bool = False,
                extra: tuple[np.ndarray, np.ndarray, float] | None = None) -> np.ndarray:
    """Per-song balance error (dB) of the fold-wise models ``make()`` fitted to the centred levels.

    Args:
        allowed: the songs fold ``k``'s model may fit (default: every song outside fold ``k``).
        songs_weighted: weight every track ``1/K`` so each song counts the same.
        extra: ``(features, centred levels, weight per track)`` of rows every fold also fits.
    """
    errors = np.zeros(len(levels))
    for fold in sorted(set(folds)):
        train = allowed(fold) if allowed else np.where(folds != fold)[0]
        x = np.concatenate([features[i] for i in train])
        y = np.concatenate([levels[i] - levels[i].mean() for i in train])
        weights = (np.concatenate([np.full(len(levels[i]), 1.0 / len(levels[i])) for i in train]) if songs_weighted
                   else np.ones(len(y)))
        if extra is not None:
            x, y = np.concatenate([x, extra[0]]), np.concatenate([y, extra[1]])
            weights = np.concatenate([weights, np.full(len(extra[1]), extra[2])])
        model = make()
        model.fit(x, y, sample_weight=weights if songs_weighted or extra is not None else None)
        for i in np.where(folds == fold)[0]:
            errors[i] = balance_error_db(model.predict(features[i]), levels[i]).mean()
    return errors


def _variants(threads: int) -> dict[str, Callable[[], object]]:
    return {
        "forest (shipped config)": lambda: shipped_forest(threads),
        "forest, leaf 2, features 0.3": lambda: RandomForestRegressor(300, min_samples_leaf=2, max_features=0.3,
                                                                      random_state=0, n_jobs=threads),
        "forest, absolute error": lambda: RandomForestRegressor(100, criterion="absolute_error", min_samples_leaf=4,
                                                                max_features=0.4, max_depth=16, random_state=0,
                                                                n_jobs=threads),
        "boosted trees, L1": lambda: HistGradientBoostingRegressor(loss="absolute_error", max_iter=300,
                                                                   learning_rate=0.05, min_samples_leaf=20,
                                                                   random_state=0),
        "boosted trees, L2": lambda: HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05,
                                                                   min_samples_leaf=20, random_state=0),
    }


def cv_corpus(description: str, threads: int) -> tuple[argparse.Namespace, list[CorpusTable], list[str], np.ndarray]:
    """Parse ``--corpus/--cache/--threads``; the train and val tables, their song ids and families."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--corpus", type=Path, default=Path("data/real"))
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--threads", type=int, default=threads)
    args = parser.parse_args()
    tables = [load_table(args.corpus, split, args.cache) for split in ("train", "val")]
    return (args, tables, [s for t in tables for s in t.songs],
            np.array([f for t in tables for f in t.families]))


def main() -> None:
    args, tables, songs, families = cv_corpus(__doc__.splitlines()[0], threads=2)
    features = [song_features(rows) for t in tables for rows in t.tracks]
    levels = [lv for t in tables for lv in t.levels]
    folds = group_folds(join_tables(*tables).groups(), FOLDS)
    equal = np.array([balance_error_db(np.zeros(len(lv)), lv).mean() for lv in levels])
    print(f"{len(songs)} songs from {len({s.split('__')[0] for s in songs})} packages, {FOLDS} folds by package and composer")
    print(report_line("equal loudness", equal, equal, families), flush=True)
    for name, make in _variants(args.threads).items():
        print(report_line(name, fold_errors(make, features, levels, folds), equal, families), flush=True)


if __name__ == "__main__":
    main()
