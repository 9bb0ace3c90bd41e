"""The synthetic multitracks' arranger balances as extra training rows for the balance forest.

``automix data synth`` renders MMA arrangements whose grooves carry their author's balance (the
MMA library's per-part volumes, Bob van der Poel's and his contributors' choices; CC7 and
velocities) and records, per stem, the gain that puts it at that balance in the arranger mix
(``stem_to_mix_gain_db``). A stem's level in the mix is therefore its loudness plus that gain
(LU; the pan laws keep a panned stem's loudness). These songs are many and cheap, and cross-package
validation shows them helping the real-corpus forest (docs/results/real-cv/synthetic.txt), so
``data.synthetic_root`` adds them to its fit at a weight of ``data.synthetic_weight`` per track.

Only MMA songs are used: the synthetic OpenMSX excerpts are General MIDI files of
``openttd-openmsx``, the real corpus's MIDI test package. Only the train and val splits of the
synthetic set are read, so its test split stays unseen.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.console.loudness import integrated_lufs
from automix.data.human_mix import AUDIBLE_TRACK_LUFS
from automix.errors import AutomixError
from automix.mixers.balance_features import TRACK_FEATURES, track_features
from automix.train.corpus_table import CorpusTable, read_table, save_table

SYNTHETIC_SPLITS = ("train", "val")
SYNTHETIC_FAMILY = "synthetic"


def _song_rows(folder: str) -> tuple[str, np.ndarray, np.ndarray] | None:
    """``(song id, descriptors, levels in the arranger mix)`` of an MMA song, else None."""
    meta = json.loads((Path(folder) / "song.json").read_text(encoding="utf-8"))
    if meta.get("source", {}).get("kind") != "mma":
        return None
    rows, levels = [], []
    for stem in meta["stems"]:
        audio, rate = sf.read(Path(folder) / stem["file"], dtype="float32", always_2d=True)
        lufs = float(integrated_lufs(audio.T.astype(np.float64), rate))
        if lufs <= AUDIBLE_TRACK_LUFS:
            continue
        rows.append(track_features(audio.T, rate, Path(stem["file"]).stem))
        levels.append(lufs + float(stem["stem_to_mix_gain_db"]))
    return (meta["song_id"], np.array(rows), np.array(levels)) if len(rows) >= 2 else None


def load_synthetic_table(root: Path, cache_dir: Path, jobs: int = 2, log=print) -> CorpusTable:
    """Every MMA song of ``root``'s train and val splits as a table (cached in ``cache_dir``)."""
    folders = sorted(p.parent for split in SYNTHETIC_SPLITS for p in Path(root, split).glob("*/song.json"))
    if not folders:
        raise AutomixError(f"no synthetic songs in {root}/train or {root}/val; "
                           "build them with `automix data synth` (see docs/data-card.md)")
    key = hashlib.sha1(json.dumps([TRACK_FEATURES, [str(f.relative_to(root)) for f in folders]]).encode())
    cache = Path(cache_dir) / f"synthetic-balance-{key.hexdigest()[:16]}.npz"
    if not cache.is_file():
        started = time.time()
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = [r for r in pool.map(_song_rows, [str(f) for f in folders], chunksize=4) if r is not None]
        if not results:
            raise AutomixError(f"{root}: no MMA song with two audible stems")
        save_table(CorpusTable([r[0] for r in results], [SYNTHETIC_FAMILY] * len(results), [r[1] for r in results],
                               [r[2] for r in results], []), cache)
        log(f"synthetic: descriptors of {len(results)} MMA songs in {time.time() - started:.0f} s")
    table = read_table(cache, [])
    table.sources = [(f"synthetic:{s}", "") for s in table.songs]  # each song its own group: no composer known
    return table
