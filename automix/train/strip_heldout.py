"""Held-out error of the transformation network against the DSP strip it emulates.

``python -m automix.train.strip_heldout --config configs/tcn-10.yaml --checkpoint runs/tcn-10/tcn-10-best
--out docs/results/tcn-10-heldout`` draws ``--examples`` strip examples from the corpus's test split
(the training sampler with its own seed: stems no training or validation example came from, settings
drawn as in training), runs the network and the console's EQ → compressor on each, and writes:

* ``results.csv``: one row per example, its settings, MAE and MRSTFT of the network and of the
  dry input (what leaving the signal unprocessed would score: the scale of the task);
* ``report.md`` / ``summary.json``: medians and means overall, per processor (bypassed, EQ only,
  compressor only, both) and per parameter region (ratio, threshold, largest EQ band gain, input
  level), which is where the network fails.

MAE is the mean absolute sample difference (full scale 1.0) and MRSTFT the auraloss
multi-resolution STFT loss at 512/1024/2048, the two numbers of Steinmetz et al. 2021, Table 1.
The paper's signals were peak-normalised speech/music at 44.1 kHz; ours are stems at −23 LUFS
± 12 dB at the network's rate, so its MAE compares in kind, not digit for digit; ``nmae`` (MAE
divided by the target's mean absolute value) is the level-free version.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from automix.console.schema import EQ_BANDS, TRACK
from automix.measure.distances import MRSTFTLoss
from automix.models.checkpoint import load_checkpoint
from automix.models.tcn import TCN
from automix.train.config import load_config
from automix.train.loop import make_dataset
from automix.train.strip_objective import centre_crop, strip_pair

HELDOUT_SEED = 7_000_001
"""Sampler seed of the held-out draw (training uses ``seed``, validation ``seed + 1_000_003``)."""

REGIONS: dict[str, tuple[str, list[float]]] = {
    "ratio": ("compressor.ratio", [1.05, 2.0, 4.0, 8.0, 20.01]),
    "threshold_db": ("compressor.threshold_db", [-60.0, -45.0, -30.0, -15.0, 0.01]),
    "max_eq_gain_db": ("max_eq_gain_db", [0.0, 3.0, 6.0, 10.0, 15.01]),
    "input_rms_dbfs": ("input_rms_dbfs", [-90.0, -40.0, -30.0, -20.0, 0.0]),
}
"""Region tables: column → bin edges (a row falls in ``[edge_i, edge_i+1)``)."""


def processor_of(params: np.ndarray) -> str:
    """Which processors an example's physical ``params`` ``(len(TRACK),)`` switch on."""
    eq_on = any(params[TRACK.index(f"eq.{b}.gain_db")] != 0.0 for b in EQ_BANDS) or (
        params[TRACK.index("eq.highpass.freq_hz")] > TRACK.spec("eq.highpass.freq_hz").minimum)
    comp_on = params[TRACK.index("compressor.ratio")] > 1.0
    return {(False, False): "bypassed", (True, False): "eq only", (False, True): "compressor only",
            (True, True): "eq + compressor"}[(eq_on, comp_on)]


def measure(model: TCN, dataset: torch.utils.data.Dataset, sample_rate: int, log=print) -> list[dict[str, float | str]]:
    """One row per example of ``dataset``: settings, network and dry-input errors."""
    stft = MRSTFTLoss()
    rows = []
    t0 = time.time()
    for i in range(len(dataset)):
        item = dataset[i]
        batch = {"audio": item["audio"][None], "strip_params": item["strip_params"][None]}
        with torch.no_grad():
            pred, target = strip_pair(model, batch, sample_rate)
            dry = centre_crop(batch["audio"], pred.shape[-1])
        params = item["strip_params"].numpy()
        gains = [abs(params[TRACK.index(f"eq.{b}.gain_db")]) for b in EQ_BANDS]
        scale = float(target.abs().mean()) + 1e-9
        rows.append({
            "example": i, "processor": processor_of(params),
            **{name: float(params[TRACK.index(name)]) for name in ("compressor.ratio", "compressor.threshold_db")},
            "max_eq_gain_db": float(max(gains)),
            "input_rms_dbfs": float(10 * np.log10(float(dry.pow(2).mean()) + 1e-12)),
            "mae": float((pred - target).abs().mean()), "mrstft": float(stft(pred, target)),
            "nmae": float((pred - target).abs().mean()) / scale,
            "dry_mae": float((dry - target).abs().mean()), "dry_mrstft": float(stft(dry, target)),
        })
        if (i + 1) % 64 == 0:
            log(f"{i + 1}/{len(dataset)} examples ({time.time() - t0:.0f} s)")
    return rows


def _stats(rows: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {"examples": len(rows)}
    for key in ("mae", "mrstft", "nmae", "dry_mae", "dry_mrstft"):
        values = np.array([r[key] for r in rows])
        out[f"{key}_mean"], out[f"{key}_median"] = float(values.mean()), float(np.median(values))
    return out


def summarise(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """``{"all": {"all": stats}, "processor": {name: stats}, region: {"[a, b)": stats}}``."""
    out = {"all": {"all": _stats(rows)}, "processor": {}}
    for name in ("bypassed", "eq only", "compressor only", "eq + compressor"):
        group = [r for r in rows if r["processor"] == name]
        if group:
            out["processor"][name] = _stats(group)
    for region, (column, edges) in REGIONS.items():
        out[region] = {}
        for lo, hi in itertools.pairwise(edges):
            group = [r for r in rows if lo <= r[column] < hi
                     and (not column.startswith("compressor.") or r["compressor.ratio"] > 1.0)]
            if group:
                out[region][f"[{lo:g}, {min(hi, edges[-1]):.4g})"] = _stats(group)
    return out


def report_markdown(summary: dict, command: str, header: str) -> str:
    lines = [f"# Transformation network: held-out error against the DSP strip\n\n{header}\n\nReproduce with:\n",
             f"```\n{command}\n```\n",
             ("MAE: mean |network − console| (full scale 1.0); MRSTFT: auraloss 512/1024/2048; nMAE: MAE / the "
             "console output's mean |x|. `dry` is the unprocessed input scored the same way. Compressor regions "
             "count only examples with the compressor on.\n")]
    for table, groups in summary.items():
        lines.append(f"## {table}\n\n| group | examples | MAE median | MAE mean | MRSTFT median | MRSTFT mean | "
                     "nMAE median | dry MAE median | dry MRSTFT median |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for group, s in groups.items():
            lines.append(f"| {group} | {s['examples']:.0f} | {s['mae_median']:.4f} | {s['mae_mean']:.4f} | "
                         f"{s['mrstft_median']:.3f} | {s['mrstft_mean']:.3f} | {s['nmae_median']:.3f} | "
                         f"{s['dry_mae_median']:.4f} | {s['dry_mrstft_median']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the training config (data, sample rate)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint base path (no suffix)")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.csv, report.md, summary.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    model, meta = load_checkpoint(args.checkpoint)
    if not isinstance(model, TCN):
        parser.error(f"{args.checkpoint} is a {meta.get('model')} checkpoint, not a transformation network")
    model.eval()
    dataset = make_dataset(cfg, args.split, HELDOUT_SEED, args.examples,
                           lambda m: print(m, file=sys.stderr))
    t0 = time.time()
    rows = measure(model, dataset, cfg.data.sample_rate_hz, lambda m: print(m, file=sys.stderr))
    summary = summarise(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    steps = meta.get("training", {}).get("steps")
    header = (f"Checkpoint `{args.checkpoint}` (step {steps}), split `{args.split}` of `{cfg.data.songs_root}`, "
              f"{len(rows)} examples at {cfg.data.sample_rate_hz} Hz, {cfg.data.output_samples} output samples each; "
              f"seed {HELDOUT_SEED}; {time.time() - t0:.0f} s on 1 CPU thread, {time.strftime('%Y-%m-%d')}.")
    command = "python -m automix.train.strip_heldout " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "summary.json").write_text(json.dumps({"checkpoint": str(args.checkpoint), "steps": steps,
                                                       "summary": summary}, indent=2) + "\n", encoding="utf-8")
    (args.out / "report.md").write_text(report_markdown(summary, command, header), encoding="utf-8")
    print(json.dumps(summary["all"]["all"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
