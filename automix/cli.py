"""The ``automix`` command line: parses options and forwards to :mod:`automix.engine`.

Conventions every command follows (so new commands stay consistent):

* decorate with ``@app.command()`` then ``@handles_errors``: an :class:`AutomixError` prints one
  line ``error: …`` on stderr and exits 2; anything else prints one line and exits 1
  (``--debug`` or ``AUTOMIX_DEBUG=1`` adds the traceback);
* reuse the shared option types of :mod:`automix.cli_common` (``Force``, ``Quiet``, ``JsonOut``, …);
* talk through :class:`Reporter`: notes and progress go to stderr, ``--json`` prints exactly
  one JSON object to stdout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from automix.cli_common import (
    BitDepth,
    Ceiling,
    Daw,
    Device,
    Force,
    JsonOut,
    OneLineUsageErrors,
    Out,
    ParamsOut,
    Quiet,
    Reporter,
    SampleRate,
    Seed,
    StemsDir,
    StemsOut,
    Strict,
    TargetLufs,
    _debug,
    handles_errors,
    mix_summary,
)
from automix.console.schema import DEFAULT_CEILING_DBTP, DEFAULT_TARGET_LUFS
from automix.mixers import DEFAULT_MIXER

app = typer.Typer(
    cls=OneLineUsageErrors,
    name="automix",
    help="Automatic multitrack mixing: a folder of stems in, a mix and its editable settings out.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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
    params: ParamsOut = None,
    model: Annotated[str, typer.Option("--model", "-m", help="rules, unity, mono, equal-loudness, random, a trained "
                                       "model name or a checkpoint path (see `automix models`).")] = DEFAULT_MIXER,
    target_lufs: TargetLufs = DEFAULT_TARGET_LUFS,
    ceiling: Ceiling = DEFAULT_CEILING_DBTP,
    stems_out: StemsOut = None,
    daw: Daw = None,
    static: Annotated[bool, typer.Option("--static", help="One setting per track for the whole song: no fader "
                                         "rides between sections.")] = False,
    device: Device = "auto",
    seed: Seed = 0,
    sample_rate: SampleRate = None,
    bit_depth: BitDepth = "24",
    strict: Strict = False,
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
                            bit_depth=bit_depth, progress=progress, log=report.log, strict=strict, daw=daw,
                            automate=not static)
    report.emit(result.to_json(), mix_summary(result, "mixed"))


@app.command()
@handles_errors
def render(
    stems_dir: StemsDir,
    params: Annotated[Path, typer.Argument(help="Settings to render (a mix.json).", show_default=False)],
    out: Out,
    target_lufs: Annotated[float | None, typer.Option("--target-lufs", help="Override the JSON's target.")] = None,
    ceiling: Annotated[float | None, typer.Option("--ceiling", help="Override the JSON's ceiling (dBTP).")] = None,
    stems_out: StemsOut = None,
    daw: Daw = None,
    sample_rate: Annotated[int | None, typer.Option(
        "--sample-rate", help="Render rate in Hz [default: the JSON's sample_rate, else the most common stem rate]."
    )] = None,
    bit_depth: BitDepth = "24",
    strict: Strict = False,
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
                               progress=progress, log=report.log, strict=strict, daw=daw)
    report.emit(result.to_json(), mix_summary(result, "rendered"))


STRIP_EMULATOR_NOTE = "not a mixer: --model cannot use it"


@app.command()
@handles_errors
def models(json_out: JsonOut = False) -> None:
    """List the mixers and trained models that --model accepts, then the trained channel-strip emulators."""
    from automix.mixers import available_mixers, available_strip_emulators

    names = available_mixers()
    emulators = {name: f"{text} [{STRIP_EMULATOR_NOTE}]" for name, text in available_strip_emulators().items()}
    if json_out:
        Reporter(as_json=True).emit({**names, **emulators}, "")
        return
    width = max(map(len, {**names, **emulators}))
    for name, description in names.items():
        typer.echo(f"{name:<{width}}  {description}")
    if emulators:
        typer.echo(f"\nchannel-strip emulators ({STRIP_EMULATOR_NOTE}):")
        for name, description in available_strip_emulators().items():
            typer.echo(f"{name:<{width}}  {description}")


def _register_subcommands() -> None:
    """Commands that live beside the engine (data, training, style transfer, evaluation)."""
    from automix.data.cli import app as data_app
    from automix.evaluate.metrics_cli import eval_command
    from automix.show_cli import show_command
    from automix.style_cli import reverse_command, style_transfer_command
    from automix.train.cli import train

    app.command("style-transfer")(style_transfer_command)
    app.command("reverse")(reverse_command)
    app.command("show")(show_command)
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
