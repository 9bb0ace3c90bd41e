"""Try extra balance descriptors by the same package-grouped 5-fold cross-validation.

Companion to ``scripts/cv_balance_models.py`` (which varies the learner): here the learner is
the shipped forest and the *inputs* vary. Each variant adds columns to
:func:`automix.mixers.balance_features.song_features`, computed from descriptors already cached,
and is trained with each song weighted equally (every track ``1/K``) as well as unweighted. Prints the median per-song balance error (dB) overall and per family.
Results: docs/results/real-cv/features.txt. Use::

    python scripts/cv_balance_features.py --corpus data/real
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from cv_balance_models import (  # same folds and learner as the learner comparison
    FOLDS,
    cv_corpus,
    fold_errors,
    report_line,
    shipped_forest,
)

from automix.evaluate.features import balance_error_db
from automix.mixers.balance_features import TRACK_FEATURES, song_features
from automix.train.balance import group_folds
from automix.train.corpus_table import join_tables

_INDEX = {name: i for i, name in enumerate(TRACK_FEATURES)}
_BANDS = [_INDEX[f"band_{k:02d}_db"] for k in range(16)]


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


Variant = Callable[[np.ndarray], np.ndarray]
VARIANTS: dict[str, Variant] = {
    "shipped descriptors": lambda base: song_features(base),
    "+ band prominence": lambda base: np.concatenate([song_features(base), band_prominence(base)], 1),
    "+ more ranks": lambda base: np.concatenate([song_features(base), more_ranks(base)], 1),
    "+ song spread, shared roles": lambda base: np.concatenate([song_features(base), song_spread(base)], 1),
}


def main() -> None:
    args, tables, songs, families = cv_corpus(__doc__.splitlines()[0], threads=1)
    bases = [b for t in tables for b in t.tracks]
    levels = [lv for t in tables for lv in t.levels]
    folds = group_folds(join_tables(*tables).groups(), FOLDS)
    equal = np.array([balance_error_db(np.zeros(len(lv)), lv).mean() for lv in levels])
    print(f"{len(songs)} songs from {len({s.split('__')[0] for s in songs})} packages, {FOLDS} folds by package and composer")
    print(report_line("equal loudness", equal, equal, families), flush=True)
    for name, variant in VARIANTS.items():
        features = [variant(base) for base in bases]
        for weighted in (False, True):
            errors = fold_errors(lambda: shipped_forest(args.threads), features, levels, folds, songs_weighted=weighted)
            print(report_line(name + (", songs weighted equally" if weighted else ""), errors, equal, families),
                  flush=True)

if __name__ == "__main__":
    main()
