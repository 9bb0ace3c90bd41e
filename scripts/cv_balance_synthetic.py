"""Does the forest learn more from real balances when the synthetic arranger balances join its fit?

Same corpus, folds, learner and report as ``scripts/cv_balance_models.py``; every fold's forest
also fits the MMA songs of a synthetic set (:mod:`automix.train.synthetic_balance`: each stem's
loudness plus its arranger gain) at a weight per track, and a forest fitted on the synthetic songs
alone is scored on all real songs. The real ``mma`` package (Bob van der Poel's example songs) shares
its author with the MMA groove library, so its songs are also reported apart. Results:
docs/results/real-cv/synthetic.txt. Use::

    make data-synth-balance && python scripts/cv_balance_synthetic.py --corpus data/real
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cv_balance_models import FOLDS, cv_corpus, fold_errors, report_line, shipped_forest

from automix.evaluate.features import balance_error_db
from automix.mixers.balance_features import song_features
from automix.train.balance import group_folds
from automix.train.corpus_table import join_tables
from automix.train.synthetic_balance import load_synthetic_table

SYNTHETIC_ROOT = Path("data/synth-balance")
WEIGHTS = (0.0, 0.2, 1.0)


def main() -> None:
    args, tables, songs, families = cv_corpus(__doc__.splitlines()[0], threads=2)
    synthetic = load_synthetic_table(SYNTHETIC_ROOT, args.cache)
    extra_x, extra_y = synthetic.song_matrix()
    features = [song_features(rows) for t in tables for rows in t.tracks]
    levels = [lv for t in tables for lv in t.levels]
    folds = group_folds(join_tables(*tables).groups(), FOLDS)
    equal = np.array([balance_error_db(np.zeros(len(lv)), lv).mean() for lv in levels])
    not_mma = np.array([not s.startswith("mma__") for s in songs])
    print(f"{len(songs)} real songs, {FOLDS} folds by package and composer; synthetic: {len(synthetic.songs)} MMA "
          f"songs / {len(extra_y)} tracks from {SYNTHETIC_ROOT}")
    print(report_line("equal loudness", equal, equal, families), flush=True)
    for weight in WEIGHTS:
        extra = (extra_x, extra_y, weight) if weight > 0 else None
        errors = fold_errors(lambda: shipped_forest(args.threads), features, levels, folds, extra=extra)
        name = f"real + synthetic at weight {weight:g}" if weight > 0 else "real only"
        print(report_line(name, errors, equal, families), flush=True)
        print(report_line("  without the mma package's songs", errors[not_mma], equal[not_mma], families[not_mma]),
              flush=True)
    model = shipped_forest(args.threads).fit(extra_x, extra_y)
    errors = np.array([balance_error_db(model.predict(f), lv).mean() for f, lv in zip(features, levels, strict=True)])
    print(report_line("synthetic only", errors, equal, families), flush=True)


if __name__ == "__main__":
    main()
