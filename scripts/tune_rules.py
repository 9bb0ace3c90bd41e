"""Measure what real authors do per role, to tune the ``rules`` mixer's role offsets and pans.

Reads the train split of the real-balance corpus (``automix data real``): for every audible
track, the role the rules infer (from the file name the mixer would see, else the audio), its
level in the author's mix relative to the song's mean track level (the rules' fader offset is
relative to equal loudness, which is that mean), and its pan. Prints, per role, the count and
the median offset and |pan|, and writes them as JSON. Use::

    python scripts/tune_rules.py --corpus data/real --split train --out docs/results/rules-tuning.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.mixers.roles import infer_role
from automix.mixers.rules import ROLE_STYLES, left_alone
from automix.mixers.stem_analysis import analyse_stem


def song_rows(folder: str) -> list[tuple[str, float, float]]:
    """``(role, centred_level_lu, pan)`` of each audible track the rules would level."""
    meta = json.loads((Path(folder) / "song.json").read_text(encoding="utf-8"))
    rows = []
    for track in meta["tracks"]:
        audio, rate = sf.read(Path(folder) / track["file"], dtype="float32", always_2d=True)
        features = analyse_stem(audio.T, rate)
        if left_alone(features) is not None:
            continue
        role, _ = infer_role(Path(track["file"]).stem, features)
        rows.append((role, float(track["level_in_mix_lu"]), float(track.get("pan", 0.0))))
    if not rows:
        return []
    mean = float(np.mean([level for _, level, _ in rows]))
    return [(role, level - mean, pan) for role, level, pan in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/real"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    folders = sorted(str(p.parent) for p in (args.corpus / args.split).glob("*/song.json"))
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        songs = list(pool.map(song_rows, folders, chunksize=4))
    by_role: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for rows in songs:
        for role, level, pan in rows:
            by_role[role].append((level, pan))
    table = {}
    print(f"{len(folders)} songs, {sum(len(r) for r in songs)} tracks ({args.split})")
    print(f"{'role':15} {'n':>5} {'median LU':>10} {'IQR':>12} {'|pan| med':>10} {'centred':>8} {'now':>6}")
    for role in sorted(by_role, key=lambda r: -len(by_role[r])):
        levels = np.array([v[0] for v in by_role[role]])
        pans = np.abs(np.array([v[1] for v in by_role[role]]))
        q1, q3 = np.percentile(levels, [25, 75])
        table[role] = {"tracks": int(levels.size), "median_offset_lu": round(float(np.median(levels)), 2),
                       "iqr_lu": [round(float(q1), 2), round(float(q3), 2)],
                       "median_abs_pan": round(float(np.median(pans)), 3),
                       "share_centred": round(float(np.mean(pans < 0.05)), 3)}
        print(f"{role:15} {levels.size:5d} {np.median(levels):+10.2f} {q1:+6.1f}..{q3:+5.1f} "
              f"{np.median(pans):10.3f} {np.mean(pans < 0.05):8.2f} {ROLE_STYLES[role].offset_db:+6.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"corpus": str(args.corpus), "split": args.split, "songs": len(folders),
                                    "roles": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
