"""``automix style-transfer`` and ``automix reverse``: parse options and forward (nothing else).

:mod:`automix.cli` registers both commands.
"""

from __future__ import annotations

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
    handles_errors,
    mix_summary,
)
from automix.console.schema import DEFAULT_CEILING_DBTP, DEFAULT_TARGET_LUFS


@handles_errors
def style_transfer_command(
    stems_dir: StemsDir,
    ref: Annotated[list[Path], typer.Option("--ref", "-r", help="Reference mix to imitate (repeat to blend several).",
                                            show_default=False)],
    out: Out,
    params: ParamsOut = None,
    model: Annotated[str, typer.Option("--model", "-m", help="A trained model that takes references (mst-small) or "
                                       "any mixer (then --refine does the transfer).")] = "mst-small",
    refine: Annotated[int, typer.Option("--refine", help="Steps of inference-time refinement towards the "
                                        "reference(s); 0 = off.", min=0)] = 20,
    amount: Annotated[float, typer.Option("--amount", help="0 = the rules mix, 1 = full transfer.",
                                          min=0.0, max=1.0)] = 1.0,
    eq_amount: Annotated[float | None, typer.Option("--eq-amount", help="Amount for EQ [default: --amount].",
                                                    min=0.0, max=1.0)] = None,
    dynamics_amount: Annotated[float | None, typer.Option("--dynamics-amount", min=0.0, max=1.0,
                                                          help="Amount for compressors [default: --amount].")] = None,
    width_amount: Annotated[float | None, typer.Option("--width-amount", min=0.0, max=1.0,
                                                       help="Amount for pan and width [default: --amount].")] = None,
    target_lufs: TargetLufs = DEFAULT_TARGET_LUFS,
    ceiling: Ceiling = DEFAULT_CEILING_DBTP,
    stems_out: StemsOut = None,
    daw: Daw = None,
    device: Device = "auto",
    seed: Seed = 0,
    sample_rate: SampleRate = None,
    bit_depth: BitDepth = "24",
    strict: Strict = False,
    force: Force = False,
    quiet: Quiet = False,
    json_out: JsonOut = False,
) -> None:
    """Mix a folder of stems in the style of one or more reference mixes."""
    from automix.style import style_transfer

    report = Reporter(quiet, json_out)
    with report.progress() as progress:
        result = style_transfer(
            stems_dir, ref, out, params_out=params, model=model, refine_steps=refine, amount=amount,
            eq_amount=eq_amount, dynamics_amount=dynamics_amount, width_amount=width_amount,
            target_lufs=target_lufs, ceiling_dbtp=ceiling, sample_rate=sample_rate, stems_out=stems_out,
            device=device, seed=seed, force=force, bit_depth=bit_depth, progress=progress, log=report.log,
            strict=strict, daw=daw,
        )
    report.emit(result.to_json(), mix_summary(result, "style-transferred"))


@handles_errors
def reverse_command(
    stems_dir: StemsDir,
    mix: Annotated[Path, typer.Option("--mix", help="The finished mix of these stems.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the estimated settings (a mix.json).",
                                      show_default=False)],
    steps: Annotated[int, typer.Option("--steps", help="Optimisation steps (0 = the start only: least-squares "
                                       "faders, pans and widths, or fitted EQ curves when clearly better).",
                                       min=0)] = 60,
    static: Annotated[bool, typer.Option("--static", help="One setting per track for the whole song: no fader "
                                         "rides fitted between sections.")] = False,
    sample_rate: SampleRate = None,
    strict: Strict = False,
    force: Force = False,
    quiet: Quiet = False,
    json_out: JsonOut = False,
) -> None:
    """Estimate the console settings that turn these stems into this mix (renders with `automix render`)."""
    from automix.reverse import reverse

    report = Reporter(quiet, json_out)
    with report.progress() as progress:
        result = reverse(stems_dir, mix, out, steps=steps, sample_rate=sample_rate, force=force,
                         progress=progress, log=report.log, strict=strict, automate=not static)
    report.emit(result.to_json(), f"{result.report()}\nwrote {result.params_path}")

