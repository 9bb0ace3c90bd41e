"""Where a dataset evaluation writes what in its report folder, and how its files and methods are named.

A report folder holds ``results.csv`` (:mod:`automix.evaluate.results`), ``config.json``,
``summary.json`` and ``report.md`` (:mod:`automix.evaluate.report`), ``plots/*.png``
(:mod:`automix.evaluate.plots`) and ``settings/<song>/<method>.json``: the settings each method
rendered.

Pseudo-methods next to the mixers of :func:`automix.mixers.get_mixer`:

* ``target`` (added automatically for songs with a mix): the song's own mix, measured like a
  method's (its loudness, spectrum, per-track levels; AF loss with ``--refs``);
* ``reference`` (added automatically with ``--refs``): the reference paired with the song,
  measured as a mix (loudness, stereo image, spectrum) for comparison;
* ``oracle`` (on request): faders and pans fitted to the target mix by least squares, every
  other control neutral: the best a pure fader/pan mix of these stems can do.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS_FILE = "results.csv"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
SETTINGS_DIR = "settings"

CSV_FIELDS = ("song", "method", "metric", "track", "value")
DONE_METRIC = "seconds"
"""Written last for a song × method: its presence marks the pair complete."""

TARGET_METHOD = "target"
REFERENCE_METHOD = "reference"
ORACLE_METHOD = "oracle"
AUTOMATIC_METHODS = (TARGET_METHOD, REFERENCE_METHOD)
"""Measured automatically, not mixers: a song's own mix, and (``--refs``) the reference paired with it."""


def safe_name(text: str) -> str:
    """A file-name-safe version of a song or method name."""
    return re.sub(r"[^\w.+-]+", "_", text).strip("_") or "_"


def settings_file(settings_dir: Path, song: str, method: str) -> Path:
    """Where the settings ``method`` rendered for ``song`` are kept, below ``<report>/settings``."""
    return settings_dir / safe_name(song) / f"{safe_name(method)}.json"
