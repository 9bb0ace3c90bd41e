"""The training loop: one function, read top to bottom.

``run(cfg)`` prepares the cached excerpts, builds the model, optimiser and schedule, then
loops: (Method 1) render the ground-truth mixes → predict → render the prediction through
the differentiable console → weighted losses → clipped step. Every ``val_every`` steps it
scores a fixed validation set, writes ``NAME-last`` and (on improvement) ``NAME-best``
checkpoints and a resumable ``state.pt`` (model, optimiser, scheduler, step, RNG states: a
dict of tensors, loaded with ``weights_only=True``). Losses go to ``log.jsonl``.

Data are indexed by global sample number (see :mod:`automix.data.samplers`), so resuming at
step ``k`` replays exactly the samples an uninterrupted run would have used. Under ``torchrun``
(``WORLD_SIZE > 1``) the model is wrapped in DistributedDataParallel and rank ``r`` takes
every ``world``-th sample.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from automix.console.schema import FX, MASTER, TRACK
from automix.console.torch_console import mix_console, pan_matrix
from automix.data import samplers
from automix.errors import AutomixError
from automix.measure.distances import AudioFeatureLoss, SumDiffSTFTLoss
from automix.mixers import resolve_device
from automix.models.checkpoint import build_model, load_checkpoint, save_checkpoint
from automix.train import stem_targets
from automix.train.config import TrainConfig, to_dict
from automix.train.config import validate as validate_config
from automix.train.losses import ParameterLoss
from automix.train.strip_data import StripDataset
from automix.train.strip_data import collate as strip_collate
from automix.train.strip_objective import StripObjective

Log = Callable[[str], None]
STATE_FILE = "state.pt"


class IndexRange(Sampler[int]):
    """Sample indices ``start, start + stride, …`` below ``stop`` (resume offset + DDP sharding)."""

    def __init__(self, start: int, stop: int, stride: int = 1):
        self.start, self.stop, self.stride = start, stop, stride

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop, self.stride))

    def __len__(self) -> int:
        return len(range(self.start, self.stop, self.stride))


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

def _cached_songs(cfg: TrainConfig, split: str, log: Log) -> list[samplers.CachedSong]:
    d = cfg.data
    songs = samplers.find_training_songs(Path(d.songs_root), split)
    if d.max_songs is not None:
        songs = songs[: d.max_songs]
    need_mix = d.method == "supervised"
    t0 = time.time()

    def prepare(item: tuple[int, tuple[str, list[Path], Path | None]]) -> samplers.CachedSong:
        i, (name, stems, mix) = item
        song = samplers.cache_song(name, stems, mix if need_mix else None, Path(d.cache_dir), d.sample_rate_hz,
                                   d.excerpt_s, d.excerpts_per_song)
        if (i + 1) % 25 == 0:
            log(f"cache {split}: {i + 1}/{len(songs)} songs ({time.time() - t0:.0f} s)")
        return song

    usable = [(i, song) for i, song in enumerate(songs) if not (need_mix and song[2] is None)]
    cached, too_short = samplers.skip_too_short(prepare, usable)
    _note_too_short(too_short, "songs", split, d.excerpt_s, log)
    if not cached:
        longest = f" (the longest is {max(e.seconds for e in too_short):.1f} s; lower data.excerpt_s)" if too_short else ""
        raise AutomixError(f"{d.songs_root}: no usable songs in split {split!r}{longest}")
    return cached


def _references(cfg: TrainConfig, split: str, log: Log) -> list[Path]:
    d = cfg.data
    paths, too_short = samplers.skip_too_short(
        lambda p: samplers.cache_reference(p, Path(d.cache_dir), d.sample_rate_hz, d.excerpt_s, d.excerpts_per_song),
        samplers.find_references(Path(d.refs_root), split))
    _note_too_short(too_short, "references", split, d.excerpt_s, log)
    if not paths:
        longest = max(e.seconds for e in too_short)
        raise AutomixError(f"{Path(d.refs_root) / split}: no reference is as long as one {d.excerpt_s:g} s excerpt "
                           f"(the longest is {longest:.1f} s); lower data.excerpt_s")
    return paths


def _note_too_short(errors: list[samplers.TooShortError], what: str, split: str, excerpt_s: float, log: Log) -> None:
    """One note for the skipped files: training on their padding would teach the model silence."""
    if errors:
        example = str(errors[0]) if len(errors) == 1 else f"e.g. {errors[0]}"
        log(f"note: {split}: skipped {len(errors)} {what} shorter than one {excerpt_s:g} s excerpt ({example})")


def make_dataset(cfg: TrainConfig, split: str, seed: int, length: int, log: Log) -> Dataset:
    songs = _cached_songs(cfg, split, log)
    m, sr = cfg.data.method, cfg.data.sample_rate_hz
    if m == "1":
        return samplers.Method1Dataset(songs, sr, seed, length, cfg.data.max_tracks)
    if m == "strip":
        from automix.models.tcn import TCNConfig, receptive_field

        network = TCNConfig(**cfg.model.sizes)
        return StripDataset(songs, seed, length, receptive_field(network) + cfg.data.output_samples,
                            cfg.data.output_samples)
    if m == "2":
        return samplers.Method2Dataset(songs, _references(cfg, split, log), sr, seed, length, cfg.data.max_tracks)
    if cfg.loss.per_stem > 0:  # each stem's truth gain and pan from the real corpus's song.json
        truth = stem_targets.load_truth(Path(cfg.data.songs_root), split, songs)
        return stem_targets.StemTargetDataset(songs, truth, sr, seed, length, cfg.data.max_tracks)
    return samplers.SupervisedDataset(songs, sr, seed, length, cfg.data.max_tracks)


# --------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------

def physical(out, track_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Model output → physical (track, fx, master); ``trim_db`` is 0 (inputs arrive normalised)."""
    track = TRACK.from_normalised(out.track)
    i = TRACK.index("trim_db")
    track = torch.cat([track[..., :i], torch.zeros_like(track[..., i: i + 1]), track[..., i + 1:]], dim=-1)
    return track, FX.from_normalised(out.fx), MASTER.from_normalised(out.master)


def level_matched(pred: Tensor, target: Tensor) -> Tensor:
    """``pred`` scaled (differentiably) so each item's RMS equals the target's."""
    rms_p = pred.square().mean(dim=(-2, -1), keepdim=True).add(1e-10).sqrt()
    rms_t = target.square().mean(dim=(-2, -1), keepdim=True).add(1e-10).sqrt()
    return pred * (rms_t / rms_p)


def balance_mix(stems: Tensor, is_stereo: Tensor, track_params: Tensor, track_mask: Tensor) -> Tensor:
    """The console with every strip neutral except fader and pan/width: ``(B, 2, N)``.

    Uses the console's own fader/pan matrix, so it equals :func:`mix_console` for settings
    whose EQ, compressor, sends and master are neutral (see ``loss.render``).
    """
    matrix = pan_matrix(track_params, is_stereo.bool()).to(stems.dtype) * track_mask.to(stems.dtype)[..., None, None]
    return torch.einsum("btij,btjn->bin", matrix, stems)


class Objective(nn.Module):
    """All loss terms of a config; ``forward`` returns ``(total, terms)``."""

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        self.sr = cfg.data.sample_rate_hz
        w = cfg.loss
        pw = {g: dict(v) for g, v in w.param_weights.items()}
        pw.setdefault("track", {}).setdefault("trim_db", 0.0)  # trim is not predicted
        self.param = ParameterLoss(param_weights=pw) if w.param > 0 else None
        self.stft = SumDiffSTFTLoss(fft_sizes=w.fft_sizes) if w.sum_diff_stft > 0 else None
        self.af = AudioFeatureLoss(self.sr) if w.af > 0 else None
        self.neural = None  # the frozen strip emulator of ``loss.console: neural`` (training only)
        if w.console == "neural" and w.render == "console":
            from automix.train.neural_render import load_neural_console

            self.neural = load_neural_console(w.strip_model, self.sr)

    def forward(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        w = self.cfg.loss
        mask = batch["track_mask"]
        # The DAE routes each stem by its group (from its file name); the other models take no such input.
        extra = {"track_groups": batch["track_groups"]} if getattr(getattr(model, "module", model),
                                                                   "uses_track_groups", False) else {}
        if w.per_stem > 0:  # the DAE's processed stems (B, T, 2, N), summed here into the mix
            extra["per_stem"] = True
        out = model(batch["stems"], batch["is_stereo"], mask, batch.get("reference"), **extra)
        terms: dict[str, Tensor] = {}
        if isinstance(out, Tensor):  # an end-to-end model (Wave-U-Net): the mix itself, no settings
            if w.per_stem > 0:
                truth = stem_targets.stem_targets(batch["stems"], batch["is_stereo"], batch["track_gain_db"],
                                                  batch["track_pan"])
                terms["per_stem"] = w.per_stem * stem_targets.relative_l1(out, truth, mask)
                out = out.sum(dim=1)
            target = batch["target"]
            terms["sum_diff_stft"] = w.sum_diff_stft * self.stft(level_matched(out, target) if w.level_match
                                                                 else out, target)
            total = torch.stack(list(terms.values())).sum()
            return total, {k: float(v.detach()) for k, v in terms.items()}
        if self.param is not None:
            true = {"track": TRACK.to_normalised(batch["track_params"]), "fx": FX.to_normalised(batch["fx_params"]),
                    "master": MASTER.to_normalised(batch["master_params"])}
            terms["param"] = w.param * self.param({"track": out.track, "fx": out.fx, "master": out.master},
                                                  true, mask)
        if self.stft is not None or self.af is not None:
            track, fx, master = physical(out, mask)
            if w.render == "balance":
                pred = balance_mix(batch["stems"], batch["is_stereo"], track, mask)
            elif self.neural is not None:
                pred = self.neural(batch["stems"], batch["is_stereo"], track, fx, master, mask)
            else:
                pred = mix_console(batch["stems"], batch["is_stereo"], track, fx, master, self.sr, mask)
            if self.stft is not None:
                target = batch["target"]
                p = level_matched(pred, target) if w.level_match else pred
                terms["sum_diff_stft"] = w.sum_diff_stft * self.stft(p, target)
            if self.af is not None:
                ref = batch["reference"]
                terms["af"] = w.af * self.af(level_matched(pred, ref) if w.level_match else pred, ref)
        total = torch.stack(list(terms.values())).sum()
        return total, {k: float(v.detach()) for k, v in terms.items()}


def prepare(batch: dict[str, Tensor], cfg: TrainConfig, device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def fader_error_db(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Absolute fader error in dB of every active track of a Method 1 batch (1-D)."""
    out = model(batch["stems"], batch["is_stereo"], batch["track_mask"], batch.get("reference"))
    i = TRACK.index("gain_db")
    err = (TRACK.from_normalised(out.track)[..., i] - batch["track_params"][..., i]).abs()
    return err[batch["track_mask"]]


@torch.no_grad()
def validate(model: nn.Module, objective: Objective, batches: list[dict[str, Tensor]]) -> dict[str, float]:
    model.eval()
    sums: dict[str, float] = {}
    errors = []
    for batch in batches:
        total, terms = objective(model, batch)
        for k, v in {"loss": float(total), **terms}.items():
            sums[k] = sums.get(k, 0.0) + v / len(batches)
        if "track_params" in batch:
            errors.append(fader_error_db(model, batch))
    if errors:
        sums["fader_median_error_db"] = float(torch.cat(errors).median())
    model.train()
    return sums


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------

def _lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


def _rng_state() -> dict[str, Tensor]:
    # Only torch's global generator drives training randomness (dropout); the data use
    # per-sample generators (see samplers) and the DataLoader its own seeded generator.
    return {"torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Tensor]) -> None:
    torch.set_rng_state(state["torch"])


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _check_creatable(folder: Path) -> None:
    """Raise a user error unless ``folder`` exists as a folder or could be created (checked
    without creating it: the nearest existing ancestor must be a writable folder)."""
    try:
        if folder.exists():
            if not folder.is_dir():
                raise AutomixError(f"{folder}: cannot create the output folder (a file is in the way)")
            return
        ancestor = folder.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
    except OSError as e:  # e.g. a name longer than the file system allows
        raise AutomixError(f"{folder}: cannot create the output folder ({e.strerror or e})") from None
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise AutomixError(f"{folder}: cannot create the output folder ({ancestor} is not a writable folder)")


def run(cfg: TrainConfig, *, resume: bool = False, device: str = "cpu", log: Log = _stderr_log,
        progress: bool = True) -> dict[str, float]:
    """Train as configured; returns the last validation metrics.

    Writes into ``cfg.out_dir``: ``log.jsonl``, ``NAME-last``/``NAME-best`` checkpoints,
    ``state.pt`` and ``config.json``. ``resume`` continues from ``state.pt`` exactly.
    ``device``: auto, cpu, cuda, cuda:N or mps.

    Raises:
        AutomixError: a bad config value (also one set after loading), an unavailable device,
            an output folder that cannot be made: all before any data are prepared.
    """
    validate_config(cfg)  # again: the caller may have overridden values after load_config
    device = resolve_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world = _distributed()
    if world > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    dev = torch.device(device)
    out_dir = Path(cfg.out_dir)
    _check_creatable(out_dir)  # created only once the data is ready: a run that fails early leaves nothing
    state_path = out_dir / STATE_FILE
    if resume and not state_path.is_file():
        raise AutomixError(f"{state_path}: nothing to resume")

    torch.manual_seed(cfg.seed)
    sizes = {**cfg.model.sizes, "sample_rate_hz": cfg.data.sample_rate_hz}
    if cfg.model.init_from:
        model, meta = load_checkpoint(Path(cfg.model.init_from), "cpu")
        if meta["model"] != cfg.model.kind:
            raise AutomixError(f"model.init_from is a {meta['model']} model, config says {cfg.model.kind}")
        model.train()
    else:
        model = build_model(cfg.model.kind, sizes)
    model.to(dev)
    objective = (StripObjective(cfg) if cfg.data.method == "strip" else Objective(cfg)).to(dev)
    collate = strip_collate if cfg.data.method == "strip" else samplers.collate
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(cfg))
    step, best = 0, math.inf
    if resume:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, best = int(state["step"]), float(state["best"])
        _set_rng_state(state["rng"])
        log(f"resumed at step {step}")
    net: nn.Module = model
    if world > 1:
        # The MST uses either its reference encoder or its "no reference" token, never both.
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                                  find_unused_parameters=True)

    per_step = cfg.batch_size * cfg.grad_accum
    train_set = make_dataset(cfg, cfg.data.train_split, cfg.seed, cfg.steps * per_step * world, log)
    val_set = make_dataset(cfg, cfg.data.val_split, cfg.seed + 1_000_003, cfg.val_batches * cfg.batch_size, log)
    val_batches = [prepare(collate([val_set[b * cfg.batch_size + i] for i in range(cfg.batch_size)]),
                           cfg, dev) for b in range(cfg.val_batches)]
    loader = DataLoader(train_set, batch_size=cfg.batch_size, collate_fn=collate,
                        sampler=IndexRange(step * per_step * world + rank, len(train_set), world),
                        num_workers=cfg.data.workers, persistent_workers=cfg.data.workers > 0,
                        generator=torch.Generator().manual_seed(cfg.seed))
    batches = iter(loader)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file in the way, no permission, a name too long
        raise AutomixError(f"{out_dir}: cannot create the output folder ({e.strerror or e})") from None
    if rank == 0:
        (out_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n", encoding="utf-8")
    log_file = (out_dir / "log.jsonl").open("a", encoding="utf-8")
    t_start, metrics = time.time(), {}
    wall_before = float(state["wall_s"]) if resume else 0.0
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeRemainingColumn(), transient=False, disable=not progress or rank != 0)
    task = bar.add_task("train", total=cfg.steps, completed=step)
    model.train()
    with bar:
        while step < cfg.steps:
            optimizer.zero_grad(set_to_none=True)
            terms_sum: dict[str, float] = {}
            for _ in range(cfg.grad_accum):
                batch = prepare(next(batches), cfg, dev)
                loss, terms = objective(net, batch)
                (loss / cfg.grad_accum).backward()
                for k, v in terms.items():
                    terms_sum[k] = terms_sum.get(k, 0.0) + v / cfg.grad_accum
            grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
            if not math.isfinite(grad_norm):
                raise AutomixError(f"step {step}: gradient is not finite; lower the learning rate")
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(task, completed=step, description=f"train loss {sum(terms_sum.values()):.4f}")
            if rank == 0 and (step % cfg.log_every == 0 or step == 1):
                record = {"step": step, "loss": sum(terms_sum.values()), **terms_sum, "grad_norm": grad_norm,
                          "lr": scheduler.get_last_lr()[0], "wall_s": wall_before + time.time() - t_start}
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
            if step % cfg.val_every == 0 or step == cfg.steps:
                metrics = validate(model, objective, val_batches)
                wall = wall_before + time.time() - t_start
                if rank == 0:
                    log_file.write(json.dumps({"step": step, "val": metrics, "wall_s": wall}) + "\n")
                    log_file.flush()
                    log(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                    info = {"config": to_dict(cfg), "steps": step, "wall_s": wall, "val": metrics,
                            "description": cfg.description}
                    save_checkpoint(out_dir / f"{cfg.name}-last", model, info)
                    if metrics["loss"] < best:
                        best = metrics["loss"]
                        save_checkpoint(out_dir / f"{cfg.name}-best", model, info)
                    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "step": step, "best": best,
                             "rng": _rng_state(), "wall_s": wall}
                    torch.save(state, state_path.with_suffix(".tmp"))
                    os.replace(state_path.with_suffix(".tmp"), state_path)
    log_file.close()
    if world > 1:
        torch.distributed.destroy_process_group()
    return metrics
