"""``automix show``: what a ``mix.json`` asks the console to do, for people and for scripts.

* :func:`console_tables` — the console as tables (rich): per track role, trim, fader, pan,
  width, EQ moves in words, compressor, reverb send; the master bus and the reverb;
* :func:`flatten` — the settings as one flat object per track and for the master (human units);
* :func:`plot_console` — the same at a glance as a PNG: level bars, pan positions, EQ
  magnitude curves designed by the console's own biquad code and, given the stems, each
  compressor's gain reduction over time;
* :func:`measure_gain_reduction` — the compressors' gain reduction metered on the stems
  (:mod:`automix.console.metering`): a ``mix.json`` holds settings, not measurements.

The settings are read and validated by :func:`automix.console.settings.load_params`, the loader
``automix render`` uses, so ``show`` accepts exactly the files ``render`` accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from automix.console.describe import (
    GAIN_REDUCTION_NA,
    db,
    describe_compressor,
    describe_eq,
    describe_gain_reduction,
    describe_pan,
    describe_send,
    hz,
    number,
)
from automix.console.eq_ride import ridden_bands, without_ridden_gains
from automix.console.metering import GainReduction, gain_reduction
from automix.console.schema import FINALIZE, FX, MASTER, SEND_OFF_DB, TRACK, ParamGroup
from automix.console.settings import MixSettings, load_params
from automix.errors import AutomixError
from automix.io import check_output, load_stems, scan_folder, write_atomic

MASTER_STRIP = "master"
"""Key of the master bus in :func:`measure_gain_reduction`'s result."""

DEFAULT_PLOT_RATE_HZ = 44100
"""Rate the EQ curves are designed at when the mix.json leaves ``sample_rate`` unset (as the renderer
would pick the stems' rate, unknown here)."""


def load_mix(path: str | Path) -> MixSettings:
    """Read and validate a ``mix.json`` exactly as ``automix render`` does (errors name the field)."""
    return load_params(Path(path))


def measure_gain_reduction(settings: MixSettings, stems_dir: str | Path, params: str | Path,
                           strict: bool = False) -> dict[str, GainReduction]:
    """Meter every compressor of the mix on its stems: per track name, and :data:`MASTER_STRIP`.

    The stems folder must hold exactly the JSON's tracks (as for ``automix render``); they are
    read at the JSON's sample rate. The master is metered on the master bus input (the rendered
    tracks and reverb return summed).

    Raises:
        AutomixError: unreadable stems, or a folder that does not match the JSON.
    """
    from automix.console.render import render_console
    from automix.engine import match_stems

    loaded, rate, _ = load_stems(Path(stems_dir), settings.sample_rate, strict=strict)
    stems = match_stems(loaded, settings, Path(stems_dir), Path(params), scan_folder(stems_dir)[0])
    settings = settings.clipped()
    settings.sample_rate = rate
    meters = {name: gain_reduction(stem.audio, settings.track[i], TRACK, rate)
              for i, (name, stem) in enumerate(zip(settings.track_names, stems))}
    # The master strip's input is the tracks and the reverb return summed (its own high-pass never
    # turns off, so a "neutral" master would not give the bus).
    returns: list[np.ndarray] = []
    _, tracks = render_console([s.audio for s in stems], rate, settings, return_tracks=True, fx_sink=returns.append)
    bus = np.sum(tracks, axis=0, dtype=np.float64) + np.concatenate(returns, axis=1)
    meters[MASTER_STRIP] = gain_reduction(bus, settings.master, MASTER, rate)
    return meters


def track_rows(settings: MixSettings, meters: dict[str, GainReduction] | None = None) -> list[dict[str, str]]:
    """One row of words per track, keyed by column title (the table :func:`console_tables` prints).

    ``meters``: from :func:`measure_gain_reduction` (the GR column), or None ("n/a").
    """
    meters = meters or {}
    rows = []
    for i, name in enumerate(settings.track_names):
        strip = settings.track[i]

        def value(param: str, strip: np.ndarray = strip) -> float:
            return float(strip[TRACK.index(param)])

        rows.append({
            "track": name,
            "role": settings.roles.get(name, "-"),
            # Levels without "dB" in the cells (the caption says it): the table fits 80 columns.
            "trim": number(value("trim_db"), 1, sign=True),
            "fader": _ridden(settings, name, "gain_db", lambda v: number(v, 1, sign=True))
            or number(value("gain_db"), 1, sign=True),
            "pan": _ridden(settings, name, "pan", describe_pan) or describe_pan(value("pan")),
            "width": number(value("width"), 2),
            "EQ": _eq_words(settings, name, strip),
            "compressor": describe_compressor(strip, TRACK, detail=False),
            "GR": describe_gain_reduction(meters.get(name)),
            "send": _ridden(settings, name, "send.reverb_db", lambda v: describe_send(v, unit=False))
            or describe_send(value("send.reverb_db"), unit=False),
        })
    return rows


def master_rows(settings: MixSettings, meters: dict[str, GainReduction] | None = None) -> list[tuple[str, str]]:
    """(setting, words) pairs for the master bus, the output stage and the reverb on the FX bus."""
    meter = (meters or {}).get(MASTER_STRIP)
    reduction = describe_gain_reduction(meter)
    if meter is not None and reduction != "0":
        reduction = f"mean {number(meter.mean_db, 1)} dB, max {number(meter.max_db, 1)} dB"
    def fx(name: str) -> float:
        return float(settings.fx[FX.index(f"reverb.{name}")])

    reverb = (f"decay {number(fx('decay_s'), 2)} s, pre-delay {number(fx('predelay_ms'), 0)} ms, "
              f"damping {number(fx('damping'), 2)}, return {describe_send(fx('return_db'))}")

    return [
        ("EQ", describe_eq(settings.master, MASTER)),
        ("compressor", describe_compressor(settings.master, MASTER)),
        ("gain reduction", reduction),
        ("output gain", db(float(settings.master[MASTER.index("gain_db")]))),
        ("loudness target", f"{number(settings.target_lufs, 1)} LUFS"),
        ("true-peak ceiling", f"{number(settings.ceiling_dbtp, 1)} dBTP"),
        ("reverb", reverb),
        *([("output gain lane", _lane_words(settings.master_automation["gain_db"], db))]
          if "gain_db" in settings.master_automation else []),
        *([("sections", ", ".join(f"{x.label} {number(x.start_s, 1)}–{number(x.end_s, 1)} s"
                                  for x in settings.sections))] if settings.sections else []),
    ]


def _ridden(settings: MixSettings, track: str, param: str, words: Any) -> str | None:
    """"low…high" of an automated parameter (its range over the song), or None when it is static."""
    lane = settings.automation.get(track, {}).get(param)
    if lane is None:
        return None
    low, high = min(lane.values), max(lane.values)
    return words(low) if low == high else f"{words(low)}…{words(high)}"


def _eq_words(settings: MixSettings, track: str, strip: np.ndarray) -> str:
    """The static EQ in words, then each ridden band as "a…b at f" (its gain lane's range)."""
    lanes = settings.automation.get(track, {})
    static = describe_eq(without_ridden_gains(strip, lanes, TRACK), TRACK)
    rides = [f"{_ridden(settings, track, f'eq.{band}.gain_db', db)} at "
             f"{hz(float(strip[TRACK.index(f'eq.{band}.freq_hz')]))}" for band, _ in ridden_bands(lanes)]
    if not rides:
        return static
    return "; ".join(([] if static == "flat" else [static]) + rides)


def _lane_words(lane: Any, words: Any) -> str:
    """A lane in words: "0 dB at 0 s, -6 dB at 20 s (linear)"."""
    points = ", ".join(f"{words(v)} at {number(t, 2)} s" for t, v in zip(lane.times_s, lane.values))
    return f"{points} ({lane.shape})"


def console_tables(settings: MixSettings, title: str,
                   meters: dict[str, GainReduction] | None = None) -> list[Any]:
    """The console as rich renderables: the tracks table, then the master table (``meters``: as
    for :func:`track_rows`)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text  # plain Text: a "[...]" in a stem name is not rich markup

    rows = track_rows(settings, meters)
    measured = ("GR: its gain reduction metered on the stems, mean/max dB" if meters else
                f"GR: its gain reduction, {GAIN_REDUCTION_NA} (mix.json holds settings; --stems DIR measures it)")
    caption = ("trim, fader and reverb send in dB; compressor: ratio at threshold (dB RMS); "
               f"{measured}; a…b: automated between a and b (the lanes: show --json); attack, release, "
               "knee and make-up: show --json")
    tracks = Table(title=Text(title), caption=caption, title_justify="left", caption_justify="left",
                   box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in rows[0]:
        short = column not in ("track", "EQ", "compressor")  # never wrapped: a number split in two misreads
        tracks.add_column(column, justify="right" if short and column != "role" else "left", no_wrap=short,
                          overflow="fold")
    for row in rows:
        tracks.add_row(*(Text(cell) for cell in row.values()))

    master = Table(title="master bus", title_justify="left", show_header=False, box=box.SIMPLE, pad_edge=False)
    master.add_column("setting")
    master.add_column("value", overflow="fold")
    for setting, words in master_rows(settings, meters):
        master.add_row(setting, Text(words))
    return [tracks, master]


# --------------------------------------------------------------------------------------
# Flat settings for scripts
# --------------------------------------------------------------------------------------

def _flat(group: ParamGroup, values: np.ndarray) -> dict[str, float]:
    return {spec.name: float(value) for spec, value in zip(group.specs, values)}


def _measured(meter: GainReduction | None) -> dict[str, float]:
    if meter is None:
        return {}
    return {"gain_reduction.mean_db": round(meter.mean_db, 2), "gain_reduction.max_db": round(meter.max_db, 2)}


def flatten(settings: MixSettings, meters: dict[str, GainReduction] | None = None) -> dict[str, Any]:
    """Every setting, one flat object per track and for the master, in the units of ``mix.json``.

    Keys are the schema's dotted names (``"eq.band_2.gain_db"``, ``"send.reverb_db"``); the
    master holds its strip plus ``target_lufs`` and ``ceiling_dbtp``; ``fx`` holds the reverb.
    With ``meters`` (:func:`measure_gain_reduction`) each strip also holds the measured
    ``gain_reduction.mean_db`` and ``gain_reduction.max_db``.
    """
    meters = meters or {}
    tracks: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(settings.track_names):
        entry: dict[str, Any] = {"role": settings.roles.get(name)}
        entry.update(_flat(TRACK, settings.track[i]))
        entry.update(_measured(meters.get(name)))
        for param, lane in settings.automation.get(name, {}).items():
            entry[f"automation.{param}"] = [[t, v] for t, v in zip(lane.times_s, lane.values)]
        tracks[name] = entry
    master = {**_flat(MASTER, settings.master), **_flat(FINALIZE, settings.finalize),
              **_measured(meters.get(MASTER_STRIP))}
    return {
        "mixer": settings.mixer,
        "sample_rate": settings.sample_rate,
        "tracks": tracks,
        "master": master,
        "fx": _flat(FX, settings.fx),
    }


# --------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------

def check_plot_path(path: str | Path, force: bool, protect: list[Path]) -> Path:
    """Refuse a plot path before any work: not a ``.png``, an existing file without ``force``, an input."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise AutomixError(f"{path}: the plot must be a .png file")
    return check_output(path, force, protect)


def plot_console(settings: MixSettings, path: str | Path, force: bool = False,
                 protect: list[Path] | None = None, meters: dict[str, GainReduction] | None = None) -> Path:
    """Draw the console to a PNG: trim and fader bars (dB), pan positions, EQ curves (dB over Hz)
    and, with ``meters`` (:func:`measure_gain_reduction`), each acting compressor's gain
    reduction over time.

    The EQ curves come from :func:`automix.evaluate.plots.eq_curves_db`, which designs each
    strip with the console's biquad code (:func:`automix.console.biquad.eq_sos`), so the picture
    shows the filters the renderer runs.
    """
    from matplotlib.figure import Figure

    from automix.evaluate.plots import eq_curves_db

    path = check_plot_path(path, force, protect or [])
    names = [Path(n).stem for n in settings.track_names]
    y = np.arange(len(names))
    acting = {name: m for name, m in (meters or {}).items() if m.max_db >= 0.05}
    rows = 3 if meters else 2
    height_in = 6.0 + 0.25 * len(names) + (3.0 if meters else 0.0)
    # The Agg canvas of a bare Figure: no pyplot state, works headless.
    fig = Figure(figsize=(12.0, height_in), dpi=100)
    grid = fig.add_gridspec(rows, 2, height_ratios=[1.0] * rows, width_ratios=[1.6, 1.0], hspace=0.45,
                            wspace=0.08)

    levels = fig.add_subplot(grid[0, 0])
    trim_db = settings.track[:, TRACK.index("trim_db")]
    fader_db = settings.track[:, TRACK.index("gain_db")]
    levels.barh(y - 0.2, trim_db, height=0.4, color="0.7", label="trim")
    levels.barh(y + 0.2, fader_db, height=0.4, color="tab:blue", label="fader")
    levels.axvline(0.0, color="k", linewidth=0.8)
    levels.set_yticks(y, names, fontsize=8)
    levels.invert_yaxis()  # first track on top, as in the table
    levels.set_xlabel("dB")
    levels.set_title("levels", fontsize=10)
    levels.legend(fontsize=8, loc="lower right")
    levels.grid(True, axis="x", alpha=0.3)

    pans = fig.add_subplot(grid[0, 1], sharey=levels)
    pan = settings.track[:, TRACK.index("pan")]
    sent = settings.track[:, TRACK.index("send.reverb_db")] > SEND_OFF_DB
    pans.scatter(pan[~sent], y[~sent], color="tab:blue", zorder=3, label="dry")
    pans.scatter(pan[sent], y[sent], color="tab:orange", zorder=3, label="reverb send")
    pans.axvline(0.0, color="k", linewidth=0.8)
    pans.set_xlim(-1.1, 1.1)
    pans.set_xticks([-1.0, -0.5, 0.0, 0.5, 1.0], ["L100", "L50", "C", "R50", "R100"], fontsize=8)
    pans.tick_params(labelleft=False)
    pans.set_title("pan", fontsize=10)
    pans.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, never over a dot
    pans.grid(True, axis="x", alpha=0.3)

    eq = fig.add_subplot(grid[1, :])
    freqs_hz, tracks_db, master_db = eq_curves_db(_with_rate(settings))
    top_hz = min(20000.0, float(freqs_hz[-1]))
    # ~400 log-spaced bins between 20 Hz and the top draw the same curves as the full grid.
    keep = np.unique(np.searchsorted(freqs_hz, np.geomspace(20.0, top_hz, 400)).clip(0, len(freqs_hz) - 1))
    for name, curve in zip(names, tracks_db):
        eq.semilogx(freqs_hz[keep], curve[keep], linewidth=1.0, label=name)
    eq.semilogx(freqs_hz[keep], master_db[keep], "k--", linewidth=1.5, label="master")
    eq.set_xlim(20.0, top_hz)
    ticks_hz = [t for t in (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if t <= top_hz]
    eq.set_xticks(ticks_hz, [hz(t).removesuffix(" Hz") for t in ticks_hz])
    eq.minorticks_off()
    eq.set_ylim(-24.0, 18.0)
    eq.set_xlabel("Hz")
    eq.set_ylabel("dB")
    eq.set_title("EQ", fontsize=10)
    eq.grid(True, alpha=0.3)
    eq.legend(fontsize=7, ncols=max(1, len(names) // 14 + 1), loc="upper left", bbox_to_anchor=(1.01, 1.0))

    if meters:
        reduction = fig.add_subplot(grid[2, :])
        for name, meter in acting.items():
            times_s = np.arange(len(meter.curve_db)) * meter.frame_s
            style = "k--" if name == MASTER_STRIP else "-"
            reduction.plot(times_s, -meter.curve_db, style, linewidth=1.0, label=Path(name).stem)
        reduction.set_xlabel("s")
        reduction.set_ylabel("dB")
        reduction.set_title("compressor gain reduction" if acting else
                            "compressor gain reduction: none (no compressor acts)", fontsize=10)
        reduction.grid(True, alpha=0.3)
        if acting:
            reduction.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))

    fig.suptitle(f"automix console ({settings.mixer})")
    # bbox_inches="tight": the canvas grows to fit the labels.
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"), force=force,
                 protect=protect or [])
    return path


def _with_rate(settings: MixSettings) -> MixSettings:
    """The settings with a sample rate to design the EQ at (see :data:`DEFAULT_PLOT_RATE_HZ`)."""
    if settings.sample_rate is not None:
        return settings
    copy = settings.clipped()
    copy.sample_rate = DEFAULT_PLOT_RATE_HZ
    return copy
