"""Held-out numbers for the model cards (issue 5's quality bar), on the test split.

``python -m automix.train.heldout --mst checkpoints/mst-small --dmc checkpoints/dmc-small``
prints a JSON report. Every candidate's settings are rendered with the same block renderer
and, because the engine finalizes every mix to a loudness target, compared *level-matched*:

* Method 1: ``sum_diff_stft`` to the target (mix of B with the hidden random settings) for
  mst-small (reference = mix of A), equal-loudness, random and rules; median fader error.
* Method 2: AF loss to real held-out reference excerpts (predictions normalised to the
  reference loudness first) for mst-small and equal-loudness.
* Supervised: ``sum_diff_stft`` to the held-out arranger mixes for dmc-small,
  equal-loudness and rules.

Baselines see the same excerpts as the models (stems of B, already at the normalised
stem level). Samples come from the seeded samplers, so the numbers reproduce.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automix.console.loudness import integrated_lufs
from automix.console.render import render_console
from automix.console.schema import FX, MASTER, TRACK
from automix.console.settings import MixSettings
from automix.data import samplers
from automix.io import Stem
from automix.measure.distances import AudioFeatureLoss, SumDiffSTFTLoss
from automix.mixers.baselines import EqualLoudnessMixer, RandomMixer
from automix.models.checkpoint import load_checkpoint
from automix.models.inputs import reference_gain_db
from automix.models.mixer import restrict_to_trained
from automix.train.loop import level_matched

SEED = 20261122


def _model_settings(model, meta, item, names) -> MixSettings:
    with torch.no_grad():
        out = model(item["stems"][None], item["is_stereo"][None], torch.ones(1, len(names), dtype=torch.bool),
                    item["reference"][None] if "reference" in item else None)
    track = TRACK.from_normalised(out.track[0].double().numpy())
    track[:, TRACK.index("trim_db")] = 0.0
    track, fx, master = restrict_to_trained(track, FX.from_normalised(out.fx[0].double().numpy()),
                                            MASTER.from_normalised(out.master[0].double().numpy()), meta)
    return MixSettings(names, track, fx, master)


def _stems(item, rate) -> list[Stem]:
    return [Stem(f"{k:02d}.wav", x[: 1 + int(st)].numpy().copy(), rate)
            for k, (x, st) in enumerate(zip(item["stems"], item["is_stereo"]))]


def _render(stems: list[Stem], rate: int, settings: MixSettings) -> torch.Tensor:
    mix = render_console([s.audio for s in stems], rate, settings, block_size=stems[0].audio.shape[-1], workers=1)
    return torch.from_numpy(mix)[None]


def _candidates(item, rate, model, meta, rules) -> dict[str, MixSettings]:
    stems = _stems(item, rate)
    names = [s.name for s in stems]
    out = {"model": _model_settings(model, meta, item, names),
           "equal-loudness": EqualLoudnessMixer().predict(stems, rate),
           "random": RandomMixer().predict(stems, rate, seed=0)}
    if rules is not None:
        out["rules"] = rules.predict(stems, rate)
    return out


def _rules():
    try:
        from automix.mixers.rules import RulesMixer
        return RulesMixer()
    except ImportError:
        return None


def _songs(root: Path, split: str, rate: int, excerpt_s: float, need_mix: bool, cache: Path):
    songs, _ = samplers.skip_too_short(
        lambda song: samplers.cache_song(song[0], song[1], song[2] if need_mix else None, cache, rate, excerpt_s, 4),
        samplers.find_training_songs(root, split))
    return songs


def _summary(values: dict[str, list[float]]) -> dict[str, float]:
    return {k: float(np.mean(v)) for k, v in values.items()}


def _scores(ds: Any, count: int, rate: int, model: Any, meta: dict,
            score: Callable[[str, dict, MixSettings, torch.Tensor], float]) -> dict[str, list[float]]:
    """``score(name, item, settings, rendered mix)`` for every candidate (the model and the
    baselines) on the first ``count`` items of ``ds``, by candidate name."""
    scores: dict[str, list[float]] = {}
    rules = _rules()
    for i in range(count):
        item = ds[i]
        stems = _stems(item, rate)
        for name, settings in _candidates(item, rate, model, meta, rules).items():
            scores.setdefault(name, []).append(score(name, item, settings, _render(stems, rate, settings)))
    return scores


def method1(ckpt: Path, root: Path, cache: Path, count: int) -> dict:
    model, meta = load_checkpoint(ckpt)
    d = meta["training"]["config"]["data"]
    rate = int(model.config.sample_rate_hz)
    songs = _songs(root, "test", rate, d["excerpt_s"], False, cache)
    ds = samplers.Method1Dataset(songs, rate, SEED, count, d["max_tracks"])
    loss = SumDiffSTFTLoss(fft_sizes=meta["training"]["config"]["loss"]["fft_sizes"])
    fader: dict[str, list[float]] = {}
    relative: dict[str, list[float]] = {}

    def score(name: str, item: dict, settings: MixSettings, pred: torch.Tensor) -> float:
        err = settings.track[:, TRACK.index("gain_db")] - item["track_params"][:, TRACK.index("gain_db")].numpy()
        fader.setdefault(name, []).extend(np.abs(err).tolist())
        relative.setdefault(name, []).extend(np.abs(err - np.median(err)).tolist())
        target = item["target"][None]
        return float(loss(level_matched(pred, target), target))

    scores = _scores(ds, count, rate, model, meta, score)
    s = _summary(scores)
    return {"excerpts": count, "songs": len(songs), "sum_diff_stft": s,
            "improvement_vs_equal_loudness": 1 - s["model"] / s["equal-loudness"],
            "improvement_vs_random": 1 - s["model"] / s["random"],
            "fader_median_error_db": {k: float(np.median(v)) for k, v in fader.items()},
            # Balance only: each excerpt's common fader offset removed (finalize sets the level anyway).
            "fader_median_relative_error_db": {k: float(np.median(v)) for k, v in relative.items()}}


def _normalised(x: torch.Tensor, rate: int) -> torch.Tensor:
    lufs = integrated_lufs(x[0].numpy().astype(np.float64), rate)
    # A (near-)silent excerpt is left as it is: there is no level to normalise.
    return x * 10 ** (reference_gain_db(lufs) / 20.0) if np.isfinite(lufs) and lufs > -70 else x


def method2(ckpt: Path, root: Path, refs_root: Path, cache: Path, count: int) -> dict:
    model, meta = load_checkpoint(ckpt)
    d = meta["training"]["config"]["data"]
    rate = int(model.config.sample_rate_hz)
    songs = _songs(root, "test", rate, d["excerpt_s"], False, cache)
    refs, _ = samplers.skip_too_short(lambda p: samplers.cache_reference(p, cache, rate, d["excerpt_s"], 4),
                                      samplers.find_references(refs_root, "test"))
    ds = samplers.Method2Dataset(songs, refs, rate, SEED, count, d["max_tracks"])
    af = AudioFeatureLoss(rate)
    scores = _scores(ds, count, rate, model, meta,
                     lambda name, item, settings, pred: float(af(_normalised(pred, rate), item["reference"][None])))
    s = _summary(scores)
    return {"excerpts": count, "references": len(refs), "af_loss": s,
            "ratio_to_equal_loudness": s["model"] / s["equal-loudness"]}


def supervised(ckpt: Path, root: Path, cache: Path, count: int) -> dict:
    model, meta = load_checkpoint(ckpt)
    d = meta["training"]["config"]["data"]
    rate = int(model.config.sample_rate_hz)
    songs = _songs(root, "test", rate, d["excerpt_s"], True, cache)
    ds = samplers.SupervisedDataset(songs, rate, SEED, count, d["max_tracks"])
    loss = SumDiffSTFTLoss(fft_sizes=meta["training"]["config"]["loss"]["fft_sizes"])
    def score(name: str, item: dict, settings: MixSettings, pred: torch.Tensor) -> float:
        target = item["target"][None]
        return float(loss(level_matched(pred, target), target))

    scores = _scores(ds, count, rate, model, meta, score)
    s = _summary(scores)
    return {"excerpts": count, "songs": len(songs), "sum_diff_stft": s,
            "improvement_vs_equal_loudness": 1 - s["model"] / s["equal-loudness"]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mst", type=Path)
    p.add_argument("--dmc", type=Path)
    p.add_argument("--songs", type=Path, default=Path("data/synth"))
    p.add_argument("--refs", type=Path, default=Path("data/refs"))
    p.add_argument("--cache", type=Path, default=Path("data/cache"))
    p.add_argument("--count", type=int, default=48)
    p.add_argument("--parts", default="1,2,supervised")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    parts = args.parts.split(",")
    report: dict = {}
    t0 = time.time()
    if args.mst and "1" in parts:
        report["method1"] = method1(args.mst, args.songs, args.cache, args.count)
        print(json.dumps(report, indent=1), file=sys.stderr)
    if args.mst and "2" in parts:
        report["method2"] = method2(args.mst, args.songs, args.refs, args.cache, args.count)
        print(json.dumps(report, indent=1), file=sys.stderr)
    if args.dmc and "supervised" in parts:
        report["supervised"] = supervised(args.dmc, args.songs, args.cache, args.count)
    report["wall_s"] = time.time() - t0
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
