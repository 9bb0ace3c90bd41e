"""The real-balance corpus as a table: per-track descriptors and truths, song by song.

Shared by the balance trainer (:mod:`automix.train.balance`) and the synthetic arranger
balances (:mod:`automix.train.synthetic_balance`), which must not import each other in a circle.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from automix.data.real import composer_groups
from automix.mixers.balance_features import song_features


@dataclass
class CorpusTable:
    """Per-track descriptors and truths of one split, song by song.

    Attributes:
        songs: song ids.
        families: each song's source family.
        tracks: per song ``(K, len(TRACK_FEATURES))`` descriptors.
        levels: per song ``(K,)`` loudness in the author's mix relative to the mix (LU).
        sources: each song's ``(package, author)`` (author ``""`` when unknown).
    """

    songs: list[str]
    families: list[str]
    tracks: list[np.ndarray]
    levels: list[np.ndarray]
    sources: list[tuple[str, str]]

    def groups(self) -> list[str]:
        """Each song's package-and-composer group (:func:`automix.data.real.composer_groups`):
        songs of one package, or of packages that share a composer, share a group."""
        return composer_groups(self.sources)

    def centred_levels(self, k: int) -> np.ndarray:
        return self.levels[k] - self.levels[k].mean()

    def subset(self, indices: Sequence[int]) -> CorpusTable:
        """These songs only, in this order."""
        return CorpusTable(*([getattr(self, name)[i] for i in indices] for name in _COLUMNS))

    def song_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)``: every track's :data:`SONG_FEATURES` and centred level, songs stacked."""
        xs = [song_features(t) for t in self.tracks]
        ys = [self.centred_levels(k) for k in range(len(self.songs))]
        return np.concatenate(xs), np.concatenate(ys)


_COLUMNS = ("songs", "families", "tracks", "levels", "sources")


def join_tables(*tables: CorpusTable) -> CorpusTable:
    """Several splits' tables as one, songs in order."""
    return CorpusTable(*([row for t in tables for row in getattr(t, name)] for name in _COLUMNS))


def save_table(table: CorpusTable, path: Path) -> None:
    """Write ``table``'s songs, families, descriptors and levels to ``path`` (.npz, atomically);
    the sources are not stored (they are read from the songs' metadata each time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, songs=np.array(table.songs), families=np.array(table.families),
             counts=np.array([len(t) for t in table.tracks]), tracks=np.concatenate(table.tracks),
             levels=np.concatenate(table.levels))
    tmp.replace(path)


def read_table(path: Path, sources: list[tuple[str, str]]) -> CorpusTable:
    """The table :func:`save_table` wrote to ``path``, with each song's ``(package, author)``."""
    data = np.load(path, allow_pickle=False)
    bounds = np.concatenate([[0], np.cumsum(data["counts"])])
    return CorpusTable([str(s) for s in data["songs"]], [str(f) for f in data["families"]],
                       [data["tracks"][a:b] for a, b in itertools.pairwise(bounds)],
                       [data["levels"][a:b] for a, b in itertools.pairwise(bounds)], sources)
