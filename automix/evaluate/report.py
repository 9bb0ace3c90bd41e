"""Turn ``results.csv`` rows into ``summary.json`` and ``report.md`` (tables per metric).

Only song-level metrics (rows with an empty ``track``) are summarised: for each metric and
method the mean, median and number of songs. Per-song and per-track numbers stay in
``results.csv``; the plots (:mod:`automix.evaluate.plots`) show the per-track ones.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automix.evaluate.layout import AUTOMATIC_METHODS, REPORT_FILE, SUMMARY_FILE
from automix.evaluate.plots import draw_all
from automix.io import write_text_atomic


@dataclass(frozen=True)
class MetricInfo:
    """How to read a metric: unit, which direction is better (None = neither), one line."""

    unit: str
    better: str | None
    description: str


METRICS: dict[str, MetricInfo] = {
    "balance_error_db": MetricInfo("dB", "lower", "mean per-track loudness-balance error vs the target mix "
                                                 "(least-squares gains; the target's recorded levels when the "
                                                 "dataset has them; overall level removed)"),
    "balance_error_max_db": MetricInfo("dB", "lower", "largest per-track balance error vs the target mix"),
    "pan_error": MetricInfo("", "lower", "mean |pan − target pan| over tracks (pan −1…1)"),
    "sum_diff_mrstft": MetricInfo("", "lower", "sum/difference multi-resolution STFT loss vs the target mix"),
    "mrstft": MetricInfo("", "lower", "multi-resolution STFT loss vs the target mix"),
    "target_af_loss": MetricInfo("", "lower", "Diff-MST audio-feature loss vs the target mix (sum of the 5 terms)"),
    "residual_flatness_db": MetricInfo("dB", "lower", "spectral flatness of target − level-matched mix (0 dB = "
                                                     "white noise: artifacts; a balance difference is tonal)"),
    "quiet_leak_db": MetricInfo("dB", "lower", "level-matched mix minus target where the target is ≥ 40 dB "
                                              "under its loud frames (> 0: sound the target lacks)"),
    "af_loss": MetricInfo("", "lower", "Diff-MST audio-feature loss vs the paired reference (sum of the 5 terms)"),
    "af_rms": MetricInfo("", "lower", "AF-loss term: RMS level"),
    "af_crest_factor": MetricInfo("", "lower", "AF-loss term: crest factor"),
    "af_stereo_width": MetricInfo("", "lower", "AF-loss term: stereo width"),
    "af_stereo_imbalance": MetricInfo("", "lower", "AF-loss term: stereo imbalance"),
    "af_bark_spectrum": MetricInfo("", "lower", "AF-loss term: Bark spectrum"),
    "integrated_lufs": MetricInfo("LUFS", None, "integrated loudness (BS.1770-4)"),
    "loudness_range_lu": MetricInfo("LU", None, "loudness range (EBU Tech 3342)"),
    "true_peak_dbtp": MetricInfo("dBTP", None, "true peak (4× oversampled)"),
    "rms_dbfs": MetricInfo("dBFS", None, "RMS level"),
    "crest_factor_db": MetricInfo("dB", None, "crest factor (peak over RMS)"),
    "stereo_width": MetricInfo("", None, "side/mid energy ratio (0 = mono)"),
    "stereo_imbalance": MetricInfo("", None, "left/right energy imbalance (−1 left … +1 right)"),
    "seconds": MetricInfo("s", "lower", "compute time: predict + render + finalize + metrics"),
}
"""Known song-level metrics in report order; anything else found in the results follows."""

OVERVIEW_METRICS = ("balance_error_db", "pan_error", "sum_diff_mrstft", "af_loss", "integrated_lufs",
                    "loudness_range_lu", "stereo_width", "seconds")


def summarise(rows: Iterable[dict[str, Any]], songs: Sequence[str], methods: Sequence[str]
              ) -> dict[str, dict[str, dict[str, float]]]:
    """``{metric: {method: {"mean", "median", "n"}}}`` over the given songs (song-level rows only).

    Methods are reported in the given order, ``target`` (when present) first.
    """
    wanted_songs = set(songs)
    values: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r["track"] or r["song"] not in wanted_songs or r["method"] not in methods:
            continue
        values.setdefault(r["metric"], {}).setdefault(r["method"], []).append(float(r["value"]))
    order = [m for m in METRICS if m in values] + sorted(m for m in values if m not in METRICS)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for metric in order:
        summary[metric] = {}
        for method in methods:
            v = np.asarray(values[metric].get(method, []), dtype=np.float64)
            if v.size:
                summary[metric][method] = {"mean": float(v.mean()), "median": float(np.median(v)), "n": int(v.size)}
    return summary


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def _best(stats: dict[str, dict[str, float]], better: str | None) -> str | None:
    """The method with the best mean among real methods (the target is not a contender)."""
    contenders = {m: s["mean"] for m, s in stats.items() if m not in AUTOMATIC_METHODS}
    if better is None or len(contenders) < 2:
        return None
    pick = min if better == "lower" else max
    return pick(contenders, key=contenders.__getitem__)


def render_markdown(summary: dict[str, Any], plots: Sequence[str] = ()) -> str:
    """``report.md`` text from :func:`write_report`'s summary."""
    metrics: dict[str, dict[str, dict[str, float]]] = summary["metrics"]
    methods: list[str] = summary["methods"]
    config = summary["config"]
    lines = [
        "# automix evaluation", "",
        (f"Dataset `{config['dataset']}` (layout {config['layout']}, split {config['split']}), "
         f"{len(summary['songs'])} songs, methods {', '.join(methods)}; "
         f"excerpt {config['seconds'] or 'whole song'}{' s' if config['seconds'] else ''}; "
         f"references {config['refs'] or 'none'}; seed {config['seed']}. Generated {summary['date']}."),
        "",
    ]
    if summary.get("command"):
        lines += ["Reproduce with:", "", "```", summary["command"], "```", ""]
    lines += [("Per-song and per-track numbers: `results.csv`. Lower is better where marked ↓; "
               "**bold** is the best method (`target`, the song's own mix, and `reference`, the paired "
               "reference mix, are measured for comparison and are not contenders)."), ""]

    overview = [m for m in OVERVIEW_METRICS if m in metrics]
    if overview:
        lines += ["## Overview (means)", "",
                  "| method | " + " | ".join(f"{m}{' ↓' if METRICS[m].better == 'lower' else ''}" for m in overview)
                  + " |", "|---|" + "---:|" * len(overview)]
        for method in methods:
            cells = []
            for m in overview:
                stats = metrics[m].get(method)
                text = _fmt(stats["mean"]) if stats else "–"
                cells.append(f"**{text}**" if stats and _best(metrics[m], METRICS[m].better) == method else text)
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")

    lines += ["## Metrics", ""]
    for metric, stats in metrics.items():
        info = METRICS.get(metric, MetricInfo("", None, ""))
        unit = f" ({info.unit})" if info.unit else ""
        arrow = " ↓" if info.better == "lower" else (" ↑" if info.better == "higher" else "")
        lines += [f"### {metric}{unit}{arrow}", ""]
        if info.description:
            lines += [info.description, ""]
        lines += ["| method | mean | median | songs |", "|---|---:|---:|---:|"]
        best = _best(stats, info.better)
        for method, s in stats.items():
            name = f"**{method}**" if method == best else method
            lines.append(f"| {name} | {_fmt(s['mean'])} | {_fmt(s['median'])} | {s['n']} |")
        lines.append("")
    families = summary.get("families") or {}
    if families:
        lines += ["## Per source family (median per-song balance error, dB ↓)", "",
                  "| method | " + " | ".join(f"{f} ({len(songs)})" for f, songs in families.items()) + " |",
                  "|---|" + "---:|" * len(families)]
        per_family = {f: summarise_metric(summary["family_metrics"][f], "balance_error_db") for f in families}
        for method in methods:
            if method in AUTOMATIC_METHODS:
                continue
            cells = [_fmt(per_family[f][method]["median"]) if method in per_family[f] else "–" for f in families]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{Path(p).stem}]({p})" for p in plots]
        lines.append("")
    return "\n".join(lines)


def summarise_metric(metrics: dict[str, dict[str, dict[str, float]]], metric: str) -> dict[str, dict[str, float]]:
    """One metric's ``{method: stats}`` of a :func:`summarise` result (empty when absent)."""
    return metrics.get(metric, {})


def write_report(out_dir: Path, rows: Sequence[dict[str, Any]], songs: Sequence[str], methods: Sequence[str],
                 config: dict[str, Any], *, command: str | None = None, plots: bool = True,
                 families: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Write ``summary.json``, ``report.md`` and (``plots``) the PNGs; return the summary.

    ``target`` and ``reference`` are listed first when present (measured, not contenders).
    ``families`` (source family → its songs) adds per-family statistics when songs have one.
    """
    present = {r["method"] for r in rows if r["song"] in set(songs)}
    automatic = [m for m in AUTOMATIC_METHODS if m in present]
    all_methods = automatic + [m for m in methods if m not in AUTOMATIC_METHODS]
    summary: dict[str, Any] = {
        "config": dict(config),
        "command": command,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "songs": list(songs),
        "methods": all_methods,
        "metrics": summarise(rows, songs, all_methods),
        "families": {f: list(v) for f, v in sorted((families or {}).items())},
    }
    summary["family_metrics"] = {f: summarise(rows, v, all_methods) for f, v in summary["families"].items()}
    pngs: list[str] = []
    if plots:
        pngs = draw_all(out_dir, rows, songs, all_methods)
    summary["plots"] = pngs
    write_text_atomic(out_dir / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n", force=True)
    write_text_atomic(out_dir / REPORT_FILE, render_markdown(summary, pngs), force=True)
    return summary
