"""How much of the real corpus' balance truth an instrument family explains.

For every source family (tracker, MIDI, Hydrogen) prints the spread (std, LU) of the tracks'
levels in their author's mix, each song centred on its mean track, overall and within the
General-MIDI family the track's name announces (:func:`automix.mixers.roles.family_from_name`),
and each name family's mean and spread. A within-family spread close to the overall one says
the name alone predicts little. Reads only ``song.json`` files. Use::

    python scripts/truth_spread.py --corpus data/real
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from automix.mixers.roles import family_from_name

MIN_TRACKS = 20
"""Name families with fewer tracks than this are left out of the per-family rows."""


def centred_levels(corpus: Path) -> dict[str, dict[str, list[float]]]:
    """``{source family: {name family or "none": [centred level LU, …]}}`` over every split."""
    levels: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(corpus.glob("*/*/song.json")):
        meta = json.loads(path.read_text(encoding="utf-8"))
        song = np.array([t["level_in_mix_lu"] for t in meta["tracks"]], dtype=np.float64)
        for track, level in zip(meta["tracks"], song - song.mean(), strict=True):
            levels[meta["family"]][family_from_name(track["name"]) or "none"].append(float(level))
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/real"))
    args = parser.parse_args()
    for source, by_name in sorted(centred_levels(args.corpus).items()):
        values = np.concatenate([np.array(v) for v in by_name.values()])
        within = sum(float(np.sum((np.array(v) - np.mean(v)) ** 2)) for v in by_name.values()) / values.size
        print(f"{source}: {values.size} tracks, spread {values.std():.2f} LU, within name families "
              f"{np.sqrt(within):.2f} LU")
        for name, v in sorted(by_name.items(), key=lambda kv: -len(kv[1])):
            if len(v) >= MIN_TRACKS:
                print(f"  {name:10s} {len(v):5d} tracks  mean {np.mean(v):+.2f}  spread {np.std(v):.2f}")


if __name__ == "__main__":
    main()
