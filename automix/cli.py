"""The ``automix`` command line: parses options and forwards to :mod:`automix.engine`.

Conventions every command follows (so new commands stay consistent):

* decorate with ``@app.command()`` then ``@handles_errors``: an :class:`AutomixError` prints one
  line ``error: …`` on stderr and exits 2; anything else prints one line and exits 1
  (``--debug`` or ``AUTOMIX_DEBUG=1`` adds the traceback);
* reuse the shared option types below (``Force``, ``Quiet``, ``JsonOut``, …);
* talk through :class:`Reporter`: notes and progress go to stderr, ``--json`` prints exactly
  one JSON object to stdout.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from automix.console.schema import DEFAULT_CEILING_DBTP, DEFAULT_TARGET_LUFS
from automix.errors import AutomixError

app = typer.Typer(
    name="automix",
    help="Automatic multitrack mixing: a folder of stems in, a mix and its editable settings out.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1

_debug = {"on": False}

# ---- shared option types ------------------------------------------------------------------
StemsDir = Annotated[Path, typer.Argument(help="Folder of stems (wav, flac, aiff, ogg, mp3).", show_default=False)]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output mix (.wav or .flac).", show_default=False)]
StemsOut = Annotated[
    Path | None,
    typer.Option("--stems-out", help="Also write each processed stem (post-fader, panned, stereo, float WAV) here."),
]
SampleRate = Annotated[
    int | None, typer.Option("--sample-rate", help="Render rate in Hz [default: the most common stem rate].")
]
BitDepth = Annotated[str, typer.Option("--bit-depth", help="Output sample format: 16, 24 or 32f.")]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No notes or progress on stderr.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print one JSON summary to stdout.")]


# ---- error handling ------------------------------------------------------------------------
F = TypeVar("F", bound=Callable[..., Any])


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def handles_errors(fn: F) -> F:
    """User errors → ``error: …`` + exit 2; bugs → one line + exit 1 (traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except AutomixError as e:
            if _debug["on"]:
                traceback.print_exc()
            typer.echo(f"error: {_one_line(str(e))}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as e:  # noqa: BLE001 - the one place that turns bugs into exit 1
            if _debug["on"]:
                traceback.print_exc()
            hint = "" if _debug["on"] else " (run with --debug or AUTOMIX_DEBUG=1 for the traceback)"
            typer.echo(f"internal error: {type(e).__name__}: {_one_line(str(e))}{hint}", err=True)
            raise typer.Exit(EXIT_INTERNAL_ERROR) from None

    return wrapper  # type: ignore[return-value]


# ---- output ---------------------------------------------------------------------------------
class Reporter:
    """Notes and progress to stderr (rich), results to stdout as JSON when asked."""

    def __init__(self, quiet: bool = False, as_json: bool = False) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.as_json = as_json
        self.console = Console(stderr=True, highlight=False)

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False, soft_wrap=True)

    @contextmanager
    def progress(self) -> Iterator[Callable[[str, float], None] | None]:
        """A ``(step, fraction)`` callback drawing one bar, or None when quiet or not a terminal."""
        if self.quiet or not self.console.is_terminal:
            yield None
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description:>8}"), BarColumn(), TimeElapsedColumn(),
                      console=self.console, transient=True) as bar:
            task = bar.add_task("load", total=1.0)
            yield lambda step, fraction: bar.update(task, description=step, completed=fraction)

    def emit(self, data: dict[str, Any], summary: str) -> None:
        """The command's result: JSON on stdout with ``--json``, else a summary line on stderr."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            self.log(summary)


def _mix_summary(result: Any, verb: str) -> str:
    params = f" and {result.params_path}" if result.params_path else ""
    stems = f"; {len(result.stem_files)} stems in {result.stems_out}" if result.stem_files else ""
    return (f"{verb} {len(result.tracks)} stems with {result.mixer} → {result.mix_path}{params} "
            f"({result.loudness_lufs:.1f} LUFS, {result.true_peak_dbtp:.1f} dBTP, "
            f"{result.duration_s:.1f} s of audio in {result.seconds:.1f} s){stems}")


# ---- commands ------------------------------------------------------------------------------
@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", envvar="AUTOMIX_DEBUG", help="Show tracebacks.")] = False,
) -> None:
    """Automatic multitrack mixing: a folder of stems in, a mix and its editable settings out."""
    _debug["on"] = debug


@app.command()
@handles_errors
def mix(
    stems_dir: StemsDir,
    out: Out,
    params: Annotated[Path | None, typer.Option("--params", help="Where to write the settings [default: OUT.json].")]
    = None,
    model: Annotated[str, typer.Option("--model", "-m", help="rules, mono, equal-loudness, random, a trained "
                                       "model name or a checkpoint path (see `automix models`).")] = "rules",
    target_lufs: Annotated[float, typer.Option("--target-lufs", help="Integrated loudness of the mix.")] = (
        DEFAULT_TARGET_LUFS),
    ceiling: Annotated[float, typer.Option("--ceiling", help="True-peak ceiling in dBTP.")] = (
        DEFAULT_CEILING_DBTP),
    stems_out: StemsOut = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda (trained models).")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed for mixers with randomness.")] = 0,
    sample_rate: SampleRate = None,
    bit_depth: BitDepth = "24",
    force: Force = False,
    quiet: Quiet = False,
    json_out: JsonOut = False,
) -> None:
    """Mix a folder of stems; write the mix and its settings (mix.json)."""
    from automix import engine

    report = Reporter(quiet, json_out)
    with report.progress() as progress:
        result = engine.mix(stems_dir, out, params, model=model, target_lufs=target_lufs, ceiling_dbtp=ceiling,
                            sample_rate=sample_rate, stems_out=stems_out, device=device, seed=seed, force=force,
                            bit_depth=bit_depth, progress=progress, log=report.log)
    report.emit(result.to_json(), _mix_summary(result, "mixed"))


@app.command()
@handles_errors
def render(
    stems_dir: StemsDir,
    params: Annotated[Path, typer.Argument(help="Settings to render (a mix.json).", show_default=False)],
    out: Out,
    target_lufs: Annotated[float | None, typer.Option("--target-lufs", help="Override the JSON's target.")] = None,
    ceiling: Annotated[float | None, typer.Option("--ceiling", help="Override the JSON's ceiling (dBTP).")] = None,
    stems_out: StemsOut = None,
    sample_rate: SampleRate = None,
    bit_depth: BitDepth = "24",
    force: Force = False,
    quiet: Quiet = False,
    json_out: JsonOut = False,
) -> None:
    """Render stems with the settings of a mix.json, for example after editing it by hand."""
    from automix import engine

    report = Reporter(quiet, json_out)
    with report.progress() as progress:
        result = engine.render(stems_dir, params, out, stems_out=stems_out, target_lufs=target_lufs,
                               ceiling_dbtp=ceiling, sample_rate=sample_rate, force=force, bit_depth=bit_depth,
                               progress=progress, log=report.log)
    report.emit(result.to_json(), _mix_summary(result, "rendered"))


@app.command()
@handles_errors
def models(json_out: JsonOut = False) -> None:
    """List the mixers and trained models that --model accepts."""
    from automix.mixers import available_mixers

    names = available_mixers()
    if json_out:
        Reporter(as_json=True).emit(names, "")
        return
    width = max(map(len, names))
    for name, description in names.items():
        typer.echo(f"{name:<{width}}  {description}")


def _register_subcommands() -> None:
    """Commands that live beside the engine (data, training, style transfer, evaluation)."""
    from automix.data.cli import app as data_app
    from automix.evaluate.metrics_cli import eval_command
    from automix.style_cli import reverse_command, style_transfer_command
    from automix.train.cli import train

    app.command("style-transfer")(style_transfer_command)
    app.command("reverse")(reverse_command)
    app.command("eval")(handles_errors(eval_command))
    app.command("train")(handles_errors(train))
    app.add_typer(data_app, name="data", help="Build training data: synthetic multitracks and reference songs.")


_register_subcommands()


def main() -> None:
    """Console-script entry point (``automix``)."""
    # Set before torch loads: idle OpenMP threads spin and slow small ops on a busy machine.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if os.environ.get("AUTOMIX_DEBUG") == "1":
        _debug["on"] = True
    app()
