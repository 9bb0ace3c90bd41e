"""Checkpoints as data: ``NAME.safetensors`` (weights) beside ``NAME.json`` (what they are).

The JSON names the model class by a short kind (``"dmc"``, ``"mst"``, ``"balance-net"``, ``"forest"``), its sizes, the console
schema version the parameters were trained against, and free-form training information (data,
steps, metrics). Loading rebuilds the model from this description and reads plain tensors with
safetensors: nothing in a checkpoint can execute code.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from automix.console.schema import SCHEMA_VERSION
from automix.errors import AutomixError
from automix.mixers.balance_features import SONG_FEATURES
from automix.models.balance import BalanceNet, BalanceNetConfig, ForestBalance
from automix.models.dmc import DMC, DMCConfig
from automix.models.mst import MST, MSTConfig

FORMAT_NAME = "automix-checkpoint"
MODEL_KINDS: dict[str, tuple[type[nn.Module], type]] = {
    "dmc": (DMC, DMCConfig), "mst": (MST, MSTConfig), "balance-net": (BalanceNet, BalanceNetConfig)}
BALANCE_KINDS = ("forest", "balance-net")
"""Kinds that predict balance from :data:`SONG_FEATURES` (their checkpoints list the feature names)."""


class CheckpointError(AutomixError):
    """A checkpoint is missing, malformed, or made for another console schema."""


def build_model(kind: str, sizes: dict[str, Any]) -> nn.Module:
    """A fresh model of ``kind`` ("dmc" or "mst") with the given config fields."""
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}")
    cls, config_cls = MODEL_KINDS[kind]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(sizes) - fields)
    if unknown:
        raise CheckpointError(f"{kind} model: unknown size {unknown[0]!r}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in sizes.items()}
    return cls(config_cls(**values))


def model_description(model: nn.Module) -> dict[str, Any]:
    """``{"model": kind, "config": sizes}`` for a DMC or MST model (unwraps DDP)."""
    model = getattr(model, "module", model)
    if isinstance(model, ForestBalance):
        return {"model": model.kind, "config": {"n_features": model.n_features}, "inputs": list(SONG_FEATURES)}
    description = {"model": model.kind, "config": dataclasses.asdict(model.config)}
    if model.kind in BALANCE_KINDS:
        description["inputs"] = list(SONG_FEATURES)
    return description


def _paths(path: Path) -> tuple[Path, Path]:
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")


def save_checkpoint(path: Path, model: nn.Module, training: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``path.safetensors`` and ``path.json`` atomically; returns both paths.

    ``path`` may be given with or without either suffix.
    """
    weights_path, json_path = _paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)
    if isinstance(model, ForestBalance):
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.arrays().items()}
    else:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT_NAME, "schema_version": SCHEMA_VERSION, **model_description(model),
            "training": training or {}}
    tmp_w = weights_path.with_name(weights_path.name + ".tmp")
    save_file(state, str(tmp_w))
    tmp_j = json_path.with_name(json_path.name + ".tmp")
    tmp_j.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_w, weights_path)
    os.replace(tmp_j, json_path)
    return weights_path, json_path


def _load_forest(weights_path: Path, meta: dict[str, Any]) -> ForestBalance:
    try:
        arrays = {k: v.numpy() for k, v in load_file(str(weights_path), device="cpu").items()}
        return ForestBalance(**arrays, n_features=int(meta["config"].get("n_features", len(SONG_FEATURES))))
    except (RuntimeError, OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{weights_path}: not a forest checkpoint ({e})") from None


def read_checkpoint_info(path: Path) -> dict[str, Any]:
    """The validated JSON description of a checkpoint."""
    _weights_path, json_path = _paths(path)
    if not json_path.is_file():
        raise CheckpointError(f"{json_path}: checkpoint description not found")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{json_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{json_path}: not an automix checkpoint (format must be {FORMAT_NAME!r})")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"{json_path}: trained for console schema version {version}, this automix uses {SCHEMA_VERSION}; "
            "retrain or use a matching automix"
        )
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{json_path}: missing model config")
    return meta


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model described by ``path.json`` and load ``path.safetensors``; eval mode.

    Returns ``(model, description)``.
    """
    weights_path, _ = _paths(path)
    meta = read_checkpoint_info(path)
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: checkpoint weights not found")
    if meta.get("model") in BALANCE_KINDS and meta.get("inputs") != list(SONG_FEATURES):
        raise CheckpointError(f"{weights_path}: trained on other balance features than this automix computes; "
                              "retrain it")
    if meta.get("model") == "forest":
        return _load_forest(weights_path, meta), meta
    model = build_model(meta.get("model"), meta["config"])
    try:
        state = load_file(str(weights_path), device="cpu")
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights_path}: weights do not match the {meta['model']} config ({e})") from None
    return model.to(device).eval(), meta
