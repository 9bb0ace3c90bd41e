"""PNG plots of a dataset evaluation (matplotlib, no display needed).

Per song (the first :data:`MAX_SONG_PLOTS` songs):

* ``balance_<song>.png``: each track's loudness relative to the mix (LU) in every method's
  mix and in the target mix (from the least-squares gains, ``track_level_lu`` rows);
* ``eq_<song>.png``: magnitude response of every track's EQ (and the master's, dashed) in the
  settings each method predicted, designed by the console's own biquad code
  (:func:`automix.console.biquad.eq_sos` + :func:`~automix.console.biquad.sos_response`);
* ``spectra_<song>.png``: Bark spectra of each method's mix, the target and the paired
  reference, each shifted so its bands' power mean is 0 dB (shape, not level).

Across songs: ``balance_error.png`` (per-song balance error per method) and ``af_loss.png``
(mean AF loss per method) when those metrics exist.

Figures are built with :class:`matplotlib.figure.Figure` (the Agg canvas, no pyplot state),
so plotting works headless and in worker processes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from automix.evaluate.layout import (
    PLOTS_DIR,
    REFERENCE_METHOD,
    SETTINGS_DIR,
    TARGET_METHOD,
    safe_name,
    settings_file,
)

MAX_SONG_PLOTS = 8
"""Per-song figures are drawn for this many songs (sorted by name); summaries use all songs."""

EQ_FFT_SIZE = 8192
_BARK_VALID_DB = -150.0  # bands above Nyquist read the −160 dB log floor; they are not drawn
_DPI = 100


def _figure(width_in: float, height_in: float, rows: int = 1, cols: int = 1):
    from matplotlib.figure import Figure

    # Fixed margins: matplotlib's constrained layout costs seconds per figure on a busy CPU.
    fig = Figure(figsize=(width_in, height_in), dpi=_DPI)
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.subplots_adjust(left=0.8 / width_in, right=1.0 - 0.15 / width_in, bottom=0.8 / height_in,
                        top=1.0 - 0.5 / height_in, wspace=0.3, hspace=0.6)
    return fig, axes


def _outside_legend(ax: Any) -> None:
    """Legend to the right of the axes, so it never hides bars or curves."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", bbox_inches="tight")  # grows the canvas to fit an outside legend
    os.replace(tmp, path)


def _values(rows: Sequence[dict[str, Any]], song: str, metric: str) -> dict[str, dict[str, float]]:
    """``{method: {track: value}}`` for one song and metric."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["song"] == song and r["metric"] == metric:
            out.setdefault(r["method"], {})[r["track"]] = float(r["value"])
    return out


def plot_balance(rows: Sequence[dict[str, Any]], song: str, methods: Sequence[str], path: Path) -> bool:
    """Grouped bars: each track's level relative to the mix (LU), per method. False if no data."""
    levels = _values(rows, song, "track_level_lu")
    methods = [m for m in methods if m in levels]
    if not methods:
        return False
    tracks = list(levels[methods[0]])
    fig, axes = _figure(max(6.0, 0.9 * len(tracks) + 2.0), 4.0)
    ax = axes[0, 0]
    width = 0.8 / len(methods)
    x = np.arange(len(tracks))
    for i, method in enumerate(methods):
        heights = [levels[method].get(t, math.nan) for t in tracks]
        style = {"color": "black", "alpha": 0.35} if method == TARGET_METHOD else {}
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, heights, width, label=method, **style)
    ax.set_xticks(x, [Path(t).stem for t in tracks], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("track loudness re mix (LU)")
    ax.set_title(f"{song}: per-track loudness balance")
    ax.axhline(0.0, color="grey", linewidth=0.5)
    _outside_legend(ax)
    _save(fig, path)
    return True


def eq_curves_db(settings: Any, n_fft: int = EQ_FFT_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EQ magnitude responses of a :class:`~automix.console.settings.MixSettings`.

    Returns:
        ``(freqs_hz (F,), tracks_db (K, F), master_db (F,))`` on the ``rfft`` grid of ``n_fft``
        at the settings' sample rate (44.1 kHz when unset).
    """
    import torch

    from automix.console.biquad import eq_sos, sos_response
    from automix.console.schema import MASTER, TRACK

    rate = int(settings.sample_rate or 44100)
    track_sos = eq_sos(torch.from_numpy(np.asarray(settings.track, dtype=np.float64)), TRACK, rate)
    master_sos = eq_sos(torch.from_numpy(np.asarray(settings.master, dtype=np.float64)), MASTER, rate)
    floor = 1e-12  # a high-pass is exactly 0 at DC
    tracks_db = 20.0 * np.log10(np.maximum(sos_response(track_sos, n_fft).abs().numpy(), floor))
    master_db = 20.0 * np.log10(np.maximum(sos_response(master_sos, n_fft).abs().numpy(), floor))
    freqs = np.arange(n_fft // 2 + 1) * (rate / n_fft)
    return freqs, tracks_db, master_db


def plot_eq(settings_by_method: dict[str, Any], song: str, path: Path) -> bool:
    """One panel per method: every track's EQ curve (master dashed). False if no settings."""
    if not settings_by_method:
        return False
    count = len(settings_by_method)
    cols = min(count, 3)
    rows = math.ceil(count / cols)
    fig, axes = _figure(4.5 * cols, 3.2 * rows, rows, cols)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    for ax, (method, settings) in zip(axes.flat, settings_by_method.items()):
        freqs, tracks_db, master_db = eq_curves_db(settings)
        # ~400 log-spaced bins from 20 Hz to 20 kHz (or Nyquist) draw the same curves as 4097.
        top = min(20000.0, freqs[-1])
        keep = np.unique(np.searchsorted(freqs, np.geomspace(20.0, top, 400)).clip(0, len(freqs) - 1))
        for name, curve in zip(settings.track_names, tracks_db):
            ax.semilogx(freqs[keep], curve[keep], linewidth=1.0, label=Path(name).stem)
        ax.semilogx(freqs[keep], master_db[keep], "k--", linewidth=1.5, label="master")
        ax.set_ylim(-30.0, 18.0)
        ax.set_title(method, fontsize=10)
        ax.set_xlabel("Hz")
        ax.set_ylabel("dB")
        ax.grid(True, which="both", alpha=0.3)
    axes.flat[0].legend(fontsize=6, ncols=2)
    fig.suptitle(f"{song}: EQ of each track")
    _save(fig, path)
    return True


def plot_spectra(rows: Sequence[dict[str, Any]], song: str, methods: Sequence[str], path: Path) -> bool:
    """Bark spectra (level-normalised) of each method's mix, the target and the reference."""
    from automix.measure.bark import bark_band_centres_hz

    bark = _values(rows, song, "bark_band_db")
    methods = [m for m in methods if m in bark]
    if REFERENCE_METHOD in bark and REFERENCE_METHOD not in methods:
        methods.append(REFERENCE_METHOD)
    if not methods:
        return False
    centres = bark_band_centres_hz()
    fig, axes = _figure(7.0, 4.0)
    ax = axes[0, 0]
    for method in methods:
        bands = bark[method]
        db = np.array([bands.get(f"bark_{i + 1:02d}", math.nan) for i in range(len(centres))])
        valid = np.isfinite(db) & (db > _BARK_VALID_DB)
        if not valid.any():
            continue
        relative = db - 10.0 * np.log10(np.mean(10.0 ** (db[valid] / 10.0)))
        style = {"color": "black", "linewidth": 2.5} if method in (TARGET_METHOD, REFERENCE_METHOD) else {}
        if method == REFERENCE_METHOD:
            style["linestyle"] = "--"
        ax.semilogx(centres[valid], relative[valid], marker=".", label=method, **style)
    ax.set_xlabel("Bark band centre (Hz)")
    ax.set_ylabel("level re band mean (dB)")
    ax.set_title(f"{song}: spectrum of each mix")
    ax.grid(True, which="both", alpha=0.3)
    _outside_legend(ax)
    _save(fig, path)
    return True


def plot_metric_per_song(rows: Sequence[dict[str, Any]], songs: Sequence[str], methods: Sequence[str],
                         metric: str, ylabel: str, path: Path) -> bool:
    """Box plot of a song-level metric per method (one point per song). False if absent."""
    wanted = set(songs)
    data = {m: [float(r["value"]) for r in rows if r["metric"] == metric and not r["track"]
                and r["method"] == m and r["song"] in wanted] for m in methods}
    data = {m: v for m, v in data.items() if v}
    if not data:
        return False
    fig, axes = _figure(max(5.0, 1.2 * len(data) + 2.0), 4.0)
    ax = axes[0, 0]
    ax.boxplot(list(data.values()))
    ax.set_xticks(np.arange(1, len(data) + 1), list(data), rotation=20, ha="right", fontsize=8)
    for i, values in enumerate(data.values(), 1):
        ax.plot(np.full(len(values), i, dtype=float), values, "k.", alpha=0.5)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{metric} per song ({len(wanted)} songs)")
    ax.grid(True, axis="y", alpha=0.3)
    _save(fig, path)
    return True


AUTOMATION_PLOT_HZ = 50
"""Points per second of the automation curves drawn."""


def plot_automation(settings_by_method: dict[str, Any], song: str, path: Path) -> bool:
    """Each automated parameter over time (one panel per parameter, a line per method and track,
    the sections shaded); False when no method automated anything."""
    from automix.console.automation import lane_curve

    lanes = [(method, track, param, lane) for method, s in settings_by_method.items()
             for track, by_param in s.automation.items() for param, lane in by_param.items()]
    lanes += [(method, "master", f"master {param}", lane) for method, s in settings_by_method.items()
              for param, lane in s.master_automation.items()]
    if not lanes:
        return False
    params = sorted({param for _, _, param, _ in lanes})
    end_s = max(max(lane.times_s) for *_, lane in lanes)
    for s in settings_by_method.values():
        end_s = max([end_s, *(x.end_s for x in s.sections)])
    fig, axes = _figure(10.0, 2.6 * len(params), rows=len(params))
    count = max(2, int(end_s * AUTOMATION_PLOT_HZ) + 1)
    for ax, param in zip(axes[:, 0], params):
        for method, track, name, lane in lanes:
            if name == param:
                curve = lane_curve(lane, 0, count, AUTOMATION_PLOT_HZ)
                ax.plot(np.arange(count) / AUTOMATION_PLOT_HZ, curve, label=f"{method}: {Path(track).stem}")
        sections = next((s.sections for s in settings_by_method.values() if s.sections), [])
        for k, section in enumerate(sections):
            if k % 2:
                ax.axvspan(section.start_s, section.end_s, color="0.9", zorder=0)
        ax.set_ylabel(param)
        ax.grid(True, alpha=0.3)
        _outside_legend(ax)
    axes[-1, 0].set_xlabel("s")
    axes[0, 0].set_title(f"{song}: automation (sections shaded alternately)")
    _save(fig, path)
    return True


def _load_settings(out_dir: Path, song: str, methods: Sequence[str]) -> dict[str, Any]:
    from automix.console.settings import load_params

    found = {}
    for method in methods:
        path = settings_file(out_dir / SETTINGS_DIR, song, method)
        if path.is_file():
            found[method] = load_params(path)
    return found


def draw_all(out_dir: Path, rows: Sequence[dict[str, Any]], songs: Sequence[str], methods: Sequence[str]
             ) -> list[str]:
    """Draw every plot; returns their paths relative to ``out_dir`` (for ``report.md``)."""
    out_dir = Path(out_dir)
    folder = out_dir / PLOTS_DIR
    drawn: list[Path] = []
    if plot_metric_per_song(rows, songs, methods, "balance_error_db", "balance error (dB)",
                            folder / "balance_error.png"):
        drawn.append(folder / "balance_error.png")
    if plot_metric_per_song(rows, songs, methods, "af_loss", "AF loss vs reference", folder / "af_loss.png"):
        drawn.append(folder / "af_loss.png")
    automated = 0
    for song in songs:  # the first songs with automation, up to MAX_SONG_PLOTS of them
        if automated < MAX_SONG_PLOTS and plot_automation(_load_settings(out_dir, song, methods), song,
                                                          folder / f"automation_{safe_name(song)}.png"):
            drawn.append(folder / f"automation_{safe_name(song)}.png")
            automated += 1
    for song in list(songs)[:MAX_SONG_PLOTS]:
        name = safe_name(song)
        song_rows = [r for r in rows if r["song"] == song]
        paths = {kind: folder / f"{kind}_{name}.png" for kind in ("balance", "eq", "spectra")}
        made = {
            "balance": plot_balance(song_rows, song, methods, paths["balance"]),
            "eq": plot_eq(_load_settings(out_dir, song, methods), song, paths["eq"]),
            "spectra": plot_spectra(song_rows, song, methods, paths["spectra"]),
        }
        drawn += [paths[kind] for kind, ok in made.items() if ok]
    return [p.relative_to(out_dir).as_posix() for p in drawn]
