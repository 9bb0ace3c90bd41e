"""How far more data could take the forest: a learning curve over packages, and song-grouped folds.

Companion to ``scripts/cv_balance_models.py`` (same corpus, folds, learner and report rows).
Two measurements on the train and val splits of the real-balance corpus:

* **Learning curve.** The 5-fold cross-validation by package and composer, with each fold's
  model fitted on a random share (25, 50, 75, 100 %) of the package-and-composer groups it may
  see (three draws per share; a group is mostly one package). The slope per doubling of groups
  says how many more a target error would need.
* **Songs, not packages.** Folds that deal songs, not packages, so a held-out song's composer and
  package are usually in its model's training data: a loose upper bound on what more songs by the
  same composers could give.

Results: docs/results/real-cv/ceiling.txt. Use::

    python scripts/cv_balance_ceiling.py --corpus data/real
"""

from __future__ import annotations

import numpy as np
from cv_balance_models import FOLDS, cv_corpus, fold_errors, report_line, shipped_forest

from automix.evaluate.features import balance_error_db
from automix.mixers.balance_features import song_features
from automix.train.balance import group_folds
from automix.train.corpus_table import join_tables

SHARES = (0.25, 0.5, 0.75, 1.0)
DRAWS = 3


def main() -> None:
    args, tables, songs, families = cv_corpus(__doc__.splitlines()[0], threads=2)
    features = [song_features(rows) for t in tables for rows in t.tracks]
    levels = [lv for t in tables for lv in t.levels]
    group = np.array(join_tables(*tables).groups())
    folds = group_folds(list(group), FOLDS)
    equal = np.array([balance_error_db(np.zeros(len(lv)), lv).mean() for lv in levels])
    print(f"{len(songs)} songs from {len(set(group))} package-and-composer groups, {FOLDS} folds")
    print(report_line("equal loudness", equal, equal, families), flush=True)

    print("\nlearning curve: share of each fold's training groups")
    for share in SHARES:
        ratios = []
        for draw in range(DRAWS if share < 1.0 else 1):
            rng = np.random.default_rng(draw)

            def allowed(fold: int, share: float = share, rng: np.random.Generator = rng) -> list[int]:
                seen = sorted(set(group[folds != fold]))
                kept = set(rng.permutation(seen)[: max(1, round(share * len(seen)))])
                return [i for i in np.where(folds != fold)[0] if group[i] in kept]

            errors = fold_errors(lambda: shipped_forest(args.threads), features, levels, folds, allowed)
            ratios.append(np.median(errors) / np.median(equal))
            print(report_line(f"  {share:.0%} of groups, draw {draw}", errors, equal, families), flush=True)
        print(f"  {share:.0%} of groups: mean × equal loudness {np.mean(ratios):.3f}")

    song_folds = np.random.default_rng(0).integers(0, FOLDS, len(songs))
    errors = fold_errors(lambda: shipped_forest(args.threads), features, levels, song_folds)
    print("\nfolds by song (composers and packages shared with the training folds)")
    print(report_line("  forest", errors, equal, families), flush=True)


if __name__ == "__main__":
    main()
