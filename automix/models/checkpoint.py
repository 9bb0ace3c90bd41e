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
from automix.mixers.balance_features import SONG_FEATURES
from automix.models.balance import BalanceNet, BalanceNetConfig, ForestBalance
from automix.models.checkpoint_files import (
    BALANCE_KINDS,
    FORMAT_NAME,
    CheckpointError,
    checkpoint_paths,
    load_forest,
    read_checkpoint_info,
)
from automix.models.dae import DAE, DAEConfig
from automix.models.demucs_lite import DemucsLite, DemucsLiteConfig
from automix.models.dmc import DMC, DMCConfig
from automix.models.mst import MST, MSTConfig
from automix.models.tcn import TCN, TCNConfig
from automix.models.wave_unet import WaveUNet, WaveUNetConfig

MODEL_KINDS: dict[str, tuple[type[nn.Module], type]] = {
    "dmc": (DMC, DMCConfig), "mst": (MST, MSTConfig), "balance-net": (BalanceNet, BalanceNetConfig),
    "tcn": (TCN, TCNConfig), "wave-u-net": (WaveUNet, WaveUNetConfig),
    "demucs-lite": (DemucsLite, DemucsLiteConfig), "dae": (DAE, DAEConfig)}


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


def save_checkpoint(path: Path, model: nn.Module, training: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``path.safetensors`` and ``path.json`` atomically; returns both paths.

    ``path`` may be given with or without either suffix.
    """
    weights_path, json_path = checkpoint_paths(path)
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


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model described by ``path.json`` and load ``path.safetensors``; eval mode.

    Returns ``(model, description)``.
    """
    weights_path, _ = checkpoint_paths(path)
    meta = read_checkpoint_info(path)
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: checkpoint weights not found")
    if meta.get("model") == "forest":
        return load_forest(path)
    model = build_model(meta.get("model"), meta["config"])
    try:
        state = load_file(str(weights_path), device="cpu")
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights_path}: weights do not match the {meta['model']} config ({e})") from None
    return model.to(device).eval(), meta


__all__ = ["BALANCE_KINDS", "FORMAT_NAME", "CheckpointError", "build_model", "load_checkpoint",
           "model_description", "read_checkpoint_info", "save_checkpoint"]
