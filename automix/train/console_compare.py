"""Score controllers trained through different consoles on the same held-out Method 1 examples,
always rendering their settings through the DSP console (the console that mixes at inference).

``python -m automix.train.console_compare --config configs/dmc-dsp-compare.yaml --split test
--examples 32 runs/dmc-compare-dsp/dmc-dsp-compare-last runs/dmc-compare-neural/dmc-neural-last``

Per checkpoint: the training loss (level-matched stereo sum/difference MRSTFT against the target
mix rendered from the random settings) of its settings rendered by the DSP console, the same
settings rendered by the neural console (how far the training device is from the truth), and the
median fader error in dB. A "neutral settings" row (schema defaults) is the floor to beat.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from automix.console.schema import FX, MASTER, TRACK
from automix.console.torch_console import mix_console
from automix.data import samplers
from automix.measure.distances import SumDiffSTFTLoss
from automix.models.base import ControllerOutput
from automix.models.checkpoint import load_checkpoint
from automix.train.config import load_config
from automix.train.loop import level_matched, make_dataset, physical
from automix.train.neural_render import load_neural_console

HELDOUT_SEED = 20_211_206
"""Seed of the held-out examples (songs, excerpts and random settings), the same for every checkpoint."""


def _neutral(batch: dict[str, torch.Tensor]) -> ControllerOutput:
    b, t = batch["track_mask"].shape

    def norm(group, *shape: int) -> torch.Tensor:
        return torch.from_numpy(group.to_normalised(group.defaults())).float().expand(*shape, -1)

    return ControllerOutput(norm(TRACK, b, t), norm(FX, b), norm(MASTER, b))


@torch.no_grad()
def score(config: Path, checkpoints: list[Path], split: str, examples: int, batch_size: int) -> dict[str, dict]:
    """``{name: {"dsp": loss, "neural": loss, "fader_median_error_db": dB}}`` on ``examples`` held-out items."""
    cfg = load_config(config)
    sr = cfg.data.sample_rate_hz
    data = make_dataset(cfg, split, HELDOUT_SEED, examples, lambda _: None)
    batches = [samplers.collate([data[i] for i in range(s, min(s + batch_size, examples))])
               for s in range(0, examples, batch_size)]
    stft = SumDiffSTFTLoss(fft_sizes=cfg.loss.fft_sizes)
    neural = load_neural_console(cfg.loss.strip_model, sr)
    models = {"neutral settings": None} | {p.name: load_checkpoint(p, "cpu")[0].eval() for p in checkpoints}
    results = {}
    for name, model in models.items():
        sums = {"dsp": 0.0, "neural": 0.0}
        errors = []
        for batch in batches:
            mask = batch["track_mask"]
            out = _neutral(batch) if model is None else model(batch["stems"], batch["is_stereo"], mask)
            track, fx, master = physical(out, mask)
            target = batch["target"]
            dsp = mix_console(batch["stems"], batch["is_stereo"], track, fx, master, sr, mask)
            net = neural(batch["stems"], batch["is_stereo"], track, fx, master, mask)
            sums["dsp"] += float(stft(level_matched(dsp, target), target)) / len(batches)
            sums["neural"] += float(stft(level_matched(net, target), target)) / len(batches)
            i = TRACK.index("gain_db")
            errors.append((track[..., i] - batch["track_params"][..., i]).abs()[mask])
        results[name] = {**sums, "fader_median_error_db": float(torch.cat(errors).median())}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="data section to draw the examples from")
    parser.add_argument("--split", default="test")
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("checkpoints", type=Path, nargs="+", help="checkpoint paths without suffix")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(json.dumps(score(args.config, args.checkpoints, args.split, args.examples, args.batch_size), indent=2))


if __name__ == "__main__":
    main()
