"""``automix train --config FILE``: the Typer command (also ``python -m automix.train.cli``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from automix.errors import AutomixError


def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training config (.yaml or .toml).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT_DIR/state.pt exactly.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = "cpu",
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Override the config's out_dir.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Override the config's number of steps.",
                                              min=1)] = None,
) -> None:
    """Train a mixing model (dmc, mst, forest or balance-net) as the config describes; run under torchrun for several GPUs."""
    from automix.train.config import BALANCE_MODEL_SIZES, load_config, validate
    from automix.train.loop import run

    try:
        cfg = load_config(config)
        if out_dir is not None:
            cfg.out_dir = str(out_dir)
        if steps is not None:
            cfg.steps = steps
        if cfg.model.kind in BALANCE_MODEL_SIZES:  # balance models: per-track descriptors, CPU
            validate(cfg)
            from automix.train.balance import run as run_balance

            run_balance(cfg, resume=resume)
            return
        # run() checks the config (overrides included), the device and the output folder before
        # the (slow) training cache is built.
        run(cfg, resume=resume, device=device)
    except AutomixError as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(2) from None


def main() -> None:
    typer.run(train)


if __name__ == "__main__":
    main()
