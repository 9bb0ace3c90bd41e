"""Read and write a report folder's ``results.csv`` and the ``config.json`` its numbers were computed with.

``results.csv`` is long format, one row per song × method × metric (× track):
``song, method, metric, track, value``. ``track`` is empty for song-level metrics, a stem
name for per-track ones, and ``bark_NN`` for the Bark spectrum. The ``seconds`` row (compute
time) is written last for a song × method and marks it complete: a second run skips complete
pairs, so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from automix.errors import AutomixError
from automix.evaluate.layout import CONFIG_FILE, CSV_FIELDS, DONE_METRIC
from automix.io import write_text_atomic

Row = dict[str, Any]
"""One line of ``results.csv``: the keys of :data:`~automix.evaluate.layout.CSV_FIELDS`, ``value`` a float."""

CONFIG_KEYS = ("dataset", "layout", "split", "seconds", "refs", "seed", "automate")
"""Options that change the numbers: a report folder only ever holds results computed with one set."""


def row(song: str, method: str, metric: str, value: float, track: str = "") -> Row:
    """A results row (``track`` empty for a song-level metric)."""
    return {"song": song, "method": method, "metric": metric, "track": track, "value": float(value)}


def read_results(path: Path) -> list[Row]:
    """Rows of ``results.csv`` (values as floats); missing file → no rows."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != CSV_FIELDS:
            raise AutomixError(f"{path}: not an automix results file (columns {reader.fieldnames})")
        return [{**r, "value": float(r["value"])} for r in reader]


def completed_pairs(rows: Iterable[Row]) -> set[tuple[str, str]]:
    """``(song, method)`` pairs whose closing :data:`~automix.evaluate.layout.DONE_METRIC` row is present."""
    return {(r["song"], r["method"]) for r in rows if r["metric"] == DONE_METRIC and not r["track"]}


def write_rows(path: Path, rows: Sequence[Row], mode: str) -> None:
    """Write (``mode="w"``) or append (``"a"``) rows; the header goes into a new file only."""
    new = mode == "w" or not path.exists()
    with path.open(mode, newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerows({**r, "value": repr(float(r["value"]))} for r in rows)


def read_completed(path: Path) -> list[Row]:
    """Rows of ``results.csv`` of complete song × method pairs.

    A pair without its closing row was cut off by an interrupted run: its rows are dropped from
    the file too, so that computing the pair again does not append a second copy.
    """
    rows = read_results(path)
    done = completed_pairs(rows)
    if any((r["song"], r["method"]) not in done for r in rows):
        rows = [r for r in rows if (r["song"], r["method"]) in done]
        write_rows(path, rows, "w")
    return rows


def check_config(out_dir: Path, config: dict[str, Any]) -> None:
    """Record the options of :data:`CONFIG_KEYS` in ``config.json``, refusing other options than recorded.

    Raises:
        AutomixError: the folder holds results computed with other options.
    """
    path = out_dir / CONFIG_FILE
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in CONFIG_KEYS if old.get(k) != config.get(k)]
        if changed:
            what = ", ".join(f"{k} {old.get(k)!r} → {config.get(k)!r}" for k in changed)
            raise AutomixError(f"{out_dir} holds results computed with other options ({what}); "
                               "use another --out or the same options")
    write_text_atomic(path, json.dumps({k: config[k] for k in CONFIG_KEYS}, indent=1) + "\n", force=True)
