"""Training the balance models on the real-balance corpus (``automix data real``).

The corpus gives, per song, loudness-normalised stems and each track's loudness in its
author's mix. Both models learn the per-song *centred* level (each track minus the song's
mean), since only differences between tracks are a balance:

* ``forest``: a scikit-learn random forest on :data:`SONG_FEATURES`, exported to arrays
  (:class:`~automix.models.balance.ForestBalance`).
* ``balance-net``: :class:`~automix.models.balance.BalanceNet`, trained with an L1 loss on
  the centred error; each step draws songs and, for half of them, a random subset of their
  tracks (the song context is recomputed for the subset), so the model sees many more
  arrangements than there are songs. Resumable exactly from ``out_dir/state.pt``.

Per-track descriptors are cached per split in ``data.cache_dir`` (they cost ~30 ms a track).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from automix.errors import AutomixError
from automix.evaluate.features import balance_error_db
from automix.mixers.balance_features import SONG_FEATURES, TRACK_FEATURES, song_features, track_features
from automix.models.balance import BalanceNet, BalanceNetConfig, ForestBalance
from automix.models.checkpoint import save_checkpoint
from automix.train.config import TrainConfig, to_dict
from automix.train.corpus_table import CorpusTable, join_tables, read_table, save_table
from automix.train.synthetic_balance import load_synthetic_table

FOREST_SIZES = {"trees": 300, "min_samples_leaf": 4, "max_features": 0.4, "max_depth": 16}
"""Defaults of ``model.sizes`` for a forest (scikit-learn's RandomForestRegressor arguments)."""


def _song_rows(folder: str) -> tuple[str, str, np.ndarray, np.ndarray]:
    meta = json.loads((Path(folder) / "song.json").read_text(encoding="utf-8"))
    rows, levels = [], []
    for track in meta["tracks"]:
        audio, rate = sf.read(Path(folder) / track["file"], dtype="float32", always_2d=True)
        rows.append(track_features(audio.T, rate, track["name"]))
        levels.append(float(track["level_in_mix_lu"]))
    return meta["song_id"], meta.get("family", ""), np.array(rows), np.array(levels)


def _sources(folders: list[Path]) -> list[tuple[str, str]]:
    """``(package, author)`` of each song (read every time: the cache holds descriptors only)."""
    metas = [json.loads((f / "song.json").read_text(encoding="utf-8")) for f in folders]
    return [(str(m.get("package", "")), str(m.get("author", "") or "")) for m in metas]


def _fingerprint(folders: list[Path]) -> str:
    text = json.dumps([TRACK_FEATURES, [str(f.name) for f in folders]])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def load_table(root: Path, split: str, cache_dir: Path, jobs: int = 2, max_songs: int | None = None,
               log=print) -> CorpusTable:
    """The descriptors of every song in ``root/split`` (cached in ``cache_dir``)."""
    folders = sorted(p.parent for p in Path(root, split).glob("*/song.json"))[:max_songs]
    if not folders:
        raise AutomixError(f"no songs in {Path(root, split)}; build the corpus with `automix data real`")
    cache = Path(cache_dir) / f"balance-{split}-{_fingerprint(folders)}.npz"
    if cache.is_file():
        return read_table(cache, _sources(folders))
    started = time.time()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(_song_rows, [str(f) for f in folders], chunksize=4))
    table = CorpusTable([r[0] for r in results], [r[1] for r in results], [r[2] for r in results],
                        [r[3] for r in results], _sources(folders))
    save_table(table, cache)
    log(f"{split}: descriptors of {len(folders)} songs, {sum(len(t) for t in table.tracks)} tracks "
        f"in {time.time() - started:.0f} s")
    return table


def group_folds(groups: Sequence[str], folds: int, seed: int = 0) -> np.ndarray:
    """Each song's fold, ``(len(groups),)`` int, from its package-and-composer group
    (:meth:`CorpusTable.groups`): every group in one fold, groups dealt to folds in a seeded random
    order, so a fold's songs come from packages and composers its model never saw."""
    names = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: k % folds for k, i in enumerate(order)}
    return np.array([fold_of[g] for g in groups])


def predictions_of(table: CorpusTable, predict) -> list[np.ndarray]:
    """Per song ``(K,)`` predicted levels of ``predict(song_features)`` (``None``: all 0, equal loudness)."""
    return [np.asarray(predict(song_features(rows)), dtype=np.float64) if predict else np.zeros(len(rows))
            for rows in table.tracks]


def song_errors(table: CorpusTable, predictions: list[np.ndarray]) -> np.ndarray:
    """Per-song balance error (mean over tracks of |e − median e|, dB)."""
    return np.array([float(balance_error_db(p, lv).mean()) for p, lv in zip(predictions, table.levels, strict=True)])


def residual_var_db2(table: CorpusTable, predictions: list[np.ndarray]) -> float:
    """Variance of the per-track error after removing each song's mean (dB²)."""
    residuals = [(p - lv) - (p - lv).mean() for p, lv in zip(predictions, table.levels, strict=True)]
    return float(np.mean(np.square(np.concatenate(residuals))))


def summary_of(table: CorpusTable, predictions: list[np.ndarray]) -> dict[str, Any]:
    """Median per-song balance error overall and per family."""
    errors = song_errors(table, predictions)
    families = np.array(table.families)
    return {"median_balance_error_db": round(float(np.median(errors)), 3),
            "songs": int(errors.size),
            "per_family": {f: round(float(np.median(errors[families == f])), 3) for f in sorted(set(table.families))}}


def summary(table: CorpusTable, predict) -> dict[str, Any]:
    """:func:`summary_of` ``predict``'s levels (``predict=None``: equal loudness)."""
    return summary_of(table, predictions_of(table, predict))


# --------------------------------------------------------------------------------------
# forest
# --------------------------------------------------------------------------------------

def export_forest(estimator: Any) -> ForestBalance:
    """A fitted scikit-learn RandomForestRegressor as :class:`ForestBalance` arrays."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("feature", "threshold", "left", "right", "value")}
    roots, offset = [], 0
    for tree in estimator.estimators_:
        t = tree.tree_
        inner = t.children_left >= 0
        parts["feature"].append(np.where(inner, t.feature, 0))
        parts["threshold"].append(t.threshold)
        parts["left"].append(np.where(inner, t.children_left + offset, -1))
        parts["right"].append(np.where(inner, t.children_right + offset, -1))
        parts["value"].append(t.value[:, 0, 0])
        roots.append(offset)
        offset += t.node_count
    return ForestBalance(*(np.concatenate(parts[k]) for k in ("feature", "threshold", "left", "right", "value")),
                         roots=np.array(roots), n_features=len(SONG_FEATURES))


CV_FOLDS = 5
"""Folds (by package and composer) when the forest is validated by cross-validation (``data.refit_with_val``)."""


def _fit_forest(cfg: TrainConfig, table: CorpusTable, extra: CorpusTable | None = None) -> tuple[Any, ForestBalance]:
    """A forest fitted on ``table``'s tracks and, at ``data.synthetic_weight`` each, ``extra``'s."""
    from sklearn.ensemble import RandomForestRegressor

    sizes = {**FOREST_SIZES, **cfg.model.sizes}
    x, y = table.song_matrix()
    weights = np.ones(len(y))
    if extra is not None:
        extra_x, extra_y = extra.song_matrix()
        x, y = np.concatenate([x, extra_x]), np.concatenate([y, extra_y])
        weights = np.concatenate([weights, np.full(len(extra_y), cfg.data.synthetic_weight)])
    estimator = RandomForestRegressor(n_estimators=int(sizes["trees"]), min_samples_leaf=int(sizes["min_samples_leaf"]),
                                      max_features=sizes["max_features"], max_depth=sizes["max_depth"],
                                      random_state=cfg.seed, n_jobs=cfg.threads or 2)
    estimator.fit(x, y, sample_weight=weights if extra is not None else None)
    forest = export_forest(estimator)
    if not np.allclose(forest.predict(x[:64]), estimator.predict(x[:64]), atol=1e-9):
        raise AutomixError("forest export does not reproduce scikit-learn's predictions")
    return estimator, forest


def cross_validated_predictions(cfg: TrainConfig, table: CorpusTable, log=print,
                                extra: CorpusTable | None = None) -> list[np.ndarray]:
    """Each song's levels predicted by a forest fitted without its package and composer (and with
    every ``extra`` song), ``K`` per song."""
    groups = table.groups()
    if len(set(groups)) < 2:
        raise AutomixError("cross-validation by package needs songs from 2 package-and-composer groups or more "
                           f"(got {len(set(groups))})")
    folds = group_folds(groups, min(CV_FOLDS, len(set(groups))), seed=cfg.seed)
    out: list[np.ndarray] = [np.zeros(0)] * len(table.songs)
    for fold in sorted(set(folds)):
        fit = [i for i in range(len(table.songs)) if folds[i] != fold]
        _, forest = _fit_forest(cfg, table.subset(fit), extra)
        for i in np.where(folds == fold)[0]:
            out[i] = forest.predict(song_features(table.tracks[i]))
        log(f"cross-validation: fold {fold + 1}/{len(set(folds))} done")
    return out


def train_forest(cfg: TrainConfig, train: CorpusTable, val: CorpusTable, log=print,
                 extra: CorpusTable | None = None) -> tuple[ForestBalance, dict, CorpusTable, CorpusTable, list[np.ndarray]]:
    """The forest, its info, the songs it is fitted on, and the songs it is validated on with
    their predicted levels.

    With ``data.refit_with_val`` the forest is fitted on train and val together and validated
    by package-grouped cross-validation over both (every song predicted by a forest that never
    saw its package), so more composers reach the shipped model and its numbers stay honest.
    ``extra`` (the synthetic arranger balances, :mod:`automix.train.synthetic_balance`) joins
    every fit, never the validation.
    """
    started = time.time()
    if cfg.data.refit_with_val:
        fitted = join_tables(train, val)
        held, held_predictions = fitted, cross_validated_predictions(cfg, fitted, log, extra)
        estimator, forest = _fit_forest(cfg, fitted, extra)
    else:
        fitted, held = train, val
        estimator, forest = _fit_forest(cfg, fitted, extra)
        held_predictions = predictions_of(val, forest.predict)
    sizes = {**FOREST_SIZES, **cfg.model.sizes}
    info = {"trees": int(sizes["trees"]), "sizes": sizes, "wall_s": round(time.time() - started, 1),
            "val": summary_of(held, held_predictions), "train": summary(fitted, forest.predict),
            "validation": ("package-grouped cross-validation over train + val" if cfg.data.refit_with_val
                           else "val split")}
    importances = sorted(zip(SONG_FEATURES, estimator.feature_importances_), key=lambda p: -p[1])[:12]
    info["top_features"] = {name: round(float(v), 4) for name, v in importances}
    log(f"forest: {info['trees']} trees in {info['wall_s']} s; {info['validation']}: median balance error "
        f"{info['val']['median_balance_error_db']} dB (equal loudness {summary(held, None)['median_balance_error_db']})")
    return forest, info, fitted, held, held_predictions


# --------------------------------------------------------------------------------------
# balance net
# --------------------------------------------------------------------------------------

def _draw(table: CorpusTable, rng: np.random.Generator, batch: int, subset_share: float
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A padded batch: features ``(B, K, F)``, centred levels ``(B, K)``, padding mask ``(B, K)``."""
    picked = rng.integers(0, len(table.songs), size=batch)
    songs = []
    for k in picked:
        rows, levels = table.tracks[k], table.levels[k]
        keep = np.arange(len(rows))
        if len(rows) > 2 and rng.random() < subset_share:
            keep = np.sort(rng.choice(len(rows), size=int(rng.integers(2, len(rows) + 1)), replace=False))
        songs.append((song_features(rows[keep]), levels[keep] - levels[keep].mean()))
    width = max(len(s[1]) for s in songs)
    x = np.zeros((batch, width, len(SONG_FEATURES)), dtype=np.float32)
    y = np.zeros((batch, width), dtype=np.float32)
    pad = np.ones((batch, width), dtype=bool)
    for b, (features, levels) in enumerate(songs):
        x[b, : len(levels)], y[b, : len(levels)], pad[b, : len(levels)] = features, levels, False
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(pad)


def centred_l1(predicted: torch.Tensor, target: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Mean over real tracks of |e − mean_song(e)|, e = predicted − target: overall level is free."""
    valid = (~pad).float()
    error = (predicted - target) * valid
    offset = error.sum(dim=1, keepdim=True) / valid.sum(dim=1, keepdim=True)
    return (((error - offset).abs()) * valid).sum() / valid.sum()


def _save_state(path: Path, model: BalanceNet, optimiser: torch.optim.Optimizer, step: int, best: float,
                best_state: dict | None, wall_s: float, rng: np.random.Generator) -> None:
    """Everything a resumed run needs to continue exactly (tensors and plain values only)."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step, "best": best,
                "best_model": best_state, "wall_s": wall_s, "rng": json.dumps(rng.bit_generator.state),
                "torch_rng": torch.get_rng_state()}, tmp)
    tmp.replace(path)


def _net_sizes(cfg: TrainConfig) -> BalanceNetConfig:
    return BalanceNetConfig(n_features=len(SONG_FEATURES), **cfg.model.sizes)


def train_net(cfg: TrainConfig, train: CorpusTable, val: CorpusTable, resume: bool, log=print
              ) -> tuple[BalanceNet, dict]:
    out = Path(cfg.out_dir)
    state_path = out / "state.pt"
    torch.manual_seed(cfg.seed)
    model = BalanceNet(_net_sizes(cfg))
    x, _ = train.song_matrix()
    model.feature_mean.copy_(torch.as_tensor(x.mean(axis=0), dtype=torch.float32))
    model.feature_std.copy_(torch.as_tensor(np.maximum(x.std(axis=0), 1e-3), dtype=torch.float32))
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    step, best, best_state, wall_s = 0, math.inf, None, 0.0
    if resume:
        if not state_path.is_file():
            raise AutomixError(f"--resume: no {state_path} to continue from")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step, best, wall_s = int(state["step"]), float(state["best"]), float(state["wall_s"])
        best_state = state["best_model"]
        rng.bit_generator.state = json.loads(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        log(f"resumed at step {step} (best val {best:.3f} dB)")

    def lr_at(s: int) -> float:
        if s < cfg.warmup_steps:
            return cfg.lr * (s + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return cfg.lr
        progress = (s - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.lr * (0.1 + 0.45 * (1.0 + math.cos(math.pi * min(1.0, progress))))

    out.mkdir(parents=True, exist_ok=True)
    started = time.time() - wall_s
    with open(out / "log.jsonl", "a", encoding="utf-8") as log_file:
        while step < cfg.steps:
            model.train()
            for group in optimiser.param_groups:
                group["lr"] = lr_at(step)
            features, target, pad = _draw(train, rng, cfg.batch_size, subset_share=0.5)
            loss = centred_l1(model(features, pad), target, pad)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimiser.step()
            step += 1
            record: dict[str, Any] = {"step": step, "loss": round(loss.item(), 4)}
            if step % cfg.val_every == 0 or step == cfg.steps:
                model.eval()
                val_error = summary(val, model.predict)["median_balance_error_db"]
                record["val_median_balance_error_db"] = val_error
                if val_error < best:
                    best, best_state = val_error, {k: v.clone() for k, v in model.state_dict().items()}
                _save_state(state_path, model, optimiser, step, best, best_state, time.time() - started, rng)
                log(f"step {step}: loss {loss.item():.3f}, val {val_error:.3f} dB (best {best:.3f})")
            if step % cfg.log_every == 0 or "val_median_balance_error_db" in record:
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    info = {"steps": step, "wall_s": round(time.time() - started, 1), "best_val_median_balance_error_db": best,
            "val": summary(val, model.predict), "train": summary(train, model.predict)}
    return model, info


def run(cfg: TrainConfig, resume: bool = False, log=print) -> Path:
    """Train the config's balance model; writes ``out_dir/NAME-best`` (+ ``state.pt`` for the net)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    d = cfg.data
    train = load_table(Path(d.songs_root), d.train_split, Path(d.cache_dir), max_songs=d.max_songs, log=log)
    val = load_table(Path(d.songs_root), d.val_split, Path(d.cache_dir), max_songs=d.max_songs, log=log)
    log(f"train {len(train.songs)} songs / {sum(len(t) for t in train.tracks)} tracks, "
        f"val {len(val.songs)} / {sum(len(t) for t in val.tracks)}; equal loudness on val: "
        f"{summary(val, None)['median_balance_error_db']} dB")
    extra = None
    if d.synthetic_root is not None:
        extra = load_synthetic_table(Path(d.synthetic_root), Path(d.cache_dir), log=log)
        log(f"synthetic: {len(extra.songs)} MMA songs / {sum(len(t) for t in extra.tracks)} tracks "
            f"at weight {d.synthetic_weight}")
    if cfg.model.kind == "forest":
        model, info, fitted, held, held_predictions = train_forest(cfg, train, val, log, extra)
    else:
        model, info = train_net(cfg, train, val, resume, log)
        held, held_predictions, fitted = val, predictions_of(val, model.predict), train
    info["val_residual_var_db2"] = round(residual_var_db2(held, held_predictions), 3)
    info.update({"description": cfg.description, "config": to_dict(cfg),
                 "data": {"root": d.songs_root, "train_songs": len(fitted.songs),
                          "train_tracks": int(sum(len(t) for t in fitted.tracks)), "val_songs": len(held.songs),
                          **({"synthetic_root": d.synthetic_root, "synthetic_songs": len(extra.songs),
                              "synthetic_tracks": int(sum(len(t) for t in extra.tracks)),
                              "synthetic_weight": d.synthetic_weight} if extra is not None else {})},
                 "equal_loudness_val": summary(held, None)})
    path = Path(cfg.out_dir) / f"{cfg.name}-best"
    save_checkpoint(path, model, info)
    log(f"wrote {path}.safetensors / .json")
    return path
