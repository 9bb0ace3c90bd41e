"""``automix show``: parse options and forward to :mod:`automix.show` (nothing else).

:mod:`automix.cli` registers the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from automix.cli_common import Force, Quiet, Reporter, handles_errors


@handles_errors
def show_command(
    params: Annotated[Path, typer.Argument(help="Settings to show (a mix.json).", show_default=False)],
    stems: Annotated[Path | None, typer.Option("--stems", help="The stems folder the mix.json is for: meter each "
                                               "compressor's gain reduction on it.", show_default=False)] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also draw the console to this PNG: levels, pans, "
                                              "EQ curves (and gain reduction over time, with --stems).",
                                              show_default=False)] = None,
    force: Force = False,
    quiet: Quiet = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the settings flattened, one JSON object "
                                           "(tracks and master, human units).")] = False,
) -> None:
    """Show what a mix.json does: each track's strip and the master bus, as a table."""
    from automix import show

    report = Reporter(quiet, json_out)
    if plot is not None:
        show.check_plot_path(plot, force, [params])  # refuse a bad output before any work
    settings = show.load_mix(params)
    meters = show.measure_gain_reduction(settings, stems, params) if stems is not None else None
    if json_out:
        report.emit(show.flatten(settings, meters), "")
    else:
        from rich.console import Console

        out = Console(highlight=False)
        rate = f"{settings.sample_rate} Hz" if settings.sample_rate else "the stems' rate"
        title = f"{params.name}: {len(settings.track_names)} tracks, mixer {settings.mixer}, {rate}"
        for table in show.console_tables(settings, title, meters):
            out.print(table)
    if plot is not None:
        report.log(f"wrote {show.plot_console(settings, plot, force, [params], meters)}")
