"""``automix eval``: measure one mix, or every method on every song of a dataset.

Register in :mod:`automix.cli` with::

    from automix.evaluate.metrics_cli import eval_command
    app.command("eval")(handles_errors(eval_command))

Output: without ``--json`` the result is a table on **stdout** (it is the command's result,
so it can be piped or redirected); notes and progress go to stderr. With ``--json`` stdout
holds exactly one JSON object and nothing else.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from automix.errors import AutomixError

_MIX_ROWS = (("integrated_lufs", "integrated loudness", "LUFS"), ("loudness_range_lu", "loudness range", "LU"),
             ("true_peak_dbtp", "true peak", "dBTP"), ("rms_dbfs", "RMS", "dBFS"),
             ("crest_factor_db", "crest factor", "dB"), ("stereo_width", "stereo width (side/mid)", ""),
             ("stereo_imbalance", "stereo imbalance (−1 L … +1 R)", ""))


def _print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for row in rows:
        table.add_row(*row)
    Console(highlight=False).print(table)


def _file_tables(result: dict[str, Any]) -> None:
    rows = [(label, f"{result[key]:.2f}", unit) for key, label, unit in _MIX_ROWS]
    bands = " ".join(f"{v:.0f}" for v in result["bark_band_db"])
    rows.append(("Bark bands 1–24 (mid, dB)", bands, "dB"))
    _print_table(f"{result['mix']} ({result['sample_rate']} Hz, {result['duration_s']:.1f} s)", rows)
    if "reference" in result:
        ref = result["reference"]
        _print_table(f"vs reference {ref['path']}", [(k, f"{v:.4f}", "") for k, v in ref.items() if k != "path"])
    if "target" in result:
        tgt = result["target"]
        _print_table(f"vs target {tgt['path']}", [(k, f"{v:.4f}", "") for k, v in tgt.items() if k != "path"])


_SHORT_NAMES = {"balance_error_db": "balance dB", "pan_error": "pan err", "sum_diff_mrstft": "sum/diff",
                "af_loss": "AF loss", "integrated_lufs": "LUFS", "loudness_range_lu": "LRA", "stereo_width": "width",
                "seconds": "s"}


def _dataset_table(evaluation: Any) -> None:
    """Headline means: one row per method, one short-named column per metric."""
    from rich.console import Console
    from rich.table import Table

    from automix.evaluate.layout import REPORT_FILE
    from automix.evaluate.report import OVERVIEW_METRICS

    metrics = evaluation.summary["metrics"]
    shown = [m for m in OVERVIEW_METRICS if m in metrics]
    table = Table(title=f"means over {len(evaluation.songs)} songs; details in {evaluation.out_dir / REPORT_FILE}",
                  title_justify="left")
    table.add_column("method", overflow="fold")
    for m in shown:
        table.add_column(_SHORT_NAMES.get(m, m), justify="right")
    for method in evaluation.summary["methods"]:
        table.add_row(method, *(f"{metrics[m][method]['mean']:.2f}" if method in metrics[m] else "–" for m in shown))
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)  # a file or pipe: do not wrap at 80 columns
    console.print(table)


def eval_command(
    mix: Annotated[Path | None, typer.Argument(help="A mix to measure (omit with --dataset).",
                                               show_default=False)] = None,
    ref: Annotated[Path | None, typer.Option("--ref", help="Reference mix: AF loss and its five terms.")] = None,
    target: Annotated[Path | None, typer.Option("--target", help="Target mix of the same stems: MRSTFTs.")] = None,
    dataset: Annotated[Path | None, typer.Option("--dataset", help="Evaluate methods on every song here.")] = None,
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated mixers/models, and/or oracle.")]
    = "rules,equal-loudness,mono,random",
    refs: Annotated[Path | None, typer.Option("--refs", help="Folder of reference mixes (AF loss).")] = None,
    split: Annotated[str, typer.Option("--split", help="Dataset split (ignored by layouts without splits).")]
    = "test",
    layout: Annotated[str, typer.Option("--layout", help="Dataset layout (auto detects it).")] = "auto",
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N songs (by name).")] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", help="Crop songs to their most active S seconds.")]
    = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Report folder (with --dataset).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Worker processes.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed for mixers with randomness.", min=0)] = 0,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots.")] = False,
    static: Annotated[bool, typer.Option("--static", help="Mix without fader rides between sections "
                                         "(as `mix --static`).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No notes or progress on stderr.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")] = False,
) -> None:
    """Measure a mix (loudness, dynamics, stereo, spectrum; vs a reference/target), or a dataset."""
    from automix.evaluate.measure_file import evaluate_file
    from automix.evaluate.run import evaluate_dataset

    def log(message: str) -> None:
        if not quiet:
            typer.echo(message, err=True)

    if dataset is None:
        if mix is None:
            raise AutomixError("give a MIX file to measure, or --dataset DIR --out REPORT_DIR")
        if out is not None or refs is not None:
            raise AutomixError("--out and --refs go with --dataset; for one mix use --ref/--target")
        result = evaluate_file(mix, ref=ref, target=target)
        for note in result.get("notes", []):
            log(f"note: {note}")
        if json_out:
            sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        else:
            _file_tables(result)
        return
    if mix is not None or ref is not None or target is not None:
        raise AutomixError("--dataset takes no MIX, --ref or --target (songs bring their mixes; use --refs)")
    if out is None:
        raise AutomixError("--dataset needs --out REPORT_DIR")
    names = [m.strip() for m in methods.split(",") if m.strip()]
    evaluation = evaluate_dataset(dataset, names, out, refs=refs, split=split or None, layout=layout,
                                  limit=limit, seconds=seconds, jobs=jobs, seed=seed, plots=not no_plots,
                                  command=shlex.join(["automix", *sys.argv[1:]]), log=log, automate=not static)
    if json_out:
        sys.stdout.write(json.dumps(evaluation.to_json(), ensure_ascii=False) + "\n")
    else:
        _dataset_table(evaluation)
