"""Reading checkpoint files without torch: the JSON description, and the forest's arrays.

A checkpoint is ``NAME.safetensors`` beside ``NAME.json``. This module validates the JSON and
loads the random forest (plain numpy arrays) so that the default mixer starts without importing
torch (≈ 1.6 s here); :mod:`automix.models.checkpoint` builds and loads the neural models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.numpy import load_file

from automix.console.schema import SCHEMA_VERSION
from automix.errors import AutomixError
from automix.mixers.balance_features import SONG_FEATURES
from automix.models.forest import ForestBalance

FORMAT_NAME = "automix-checkpoint"
BALANCE_KINDS = ("forest", "balance-net")
"""Kinds that predict balance from :data:`SONG_FEATURES` (their checkpoints list the feature names)."""

END_TO_END_KINDS = ("wave-u-net", "demucs-lite", "dae")
"""Kinds that output the mix itself (:class:`~automix.mixers.base.AudioMixer`), no console settings."""

STRIP_KINDS = ("tcn",)
"""Kinds that emulate a channel strip (signal + settings → signal): trained models, not mixers."""


class CheckpointError(AutomixError):
    """A checkpoint is missing, malformed, or made for another console schema."""


def checkpoint_paths(path: Path) -> tuple[Path, Path]:
    """``(weights, description)`` of a checkpoint given with or without either suffix."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")


def read_checkpoint_info(path: Path) -> dict[str, Any]:
    """The validated JSON description of a checkpoint."""
    weights_path, json_path = checkpoint_paths(path)
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
    if meta.get("model") in BALANCE_KINDS and meta.get("inputs") != list(SONG_FEATURES):
        raise CheckpointError(f"{weights_path}: trained on other balance features than this automix computes; "
                              "retrain it")
    return meta


def load_forest(path: Path) -> tuple[ForestBalance, dict[str, Any]]:
    """A forest checkpoint as ``(ForestBalance, description)``."""
    weights_path, _ = checkpoint_paths(path)
    meta = read_checkpoint_info(path)
    if meta.get("model") != "forest":
        raise CheckpointError(f"{weights_path}: a {meta.get('model')!r} checkpoint, not a forest")
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: checkpoint weights not found")
    try:
        arrays = load_file(str(weights_path))
        forest = ForestBalance(**arrays, n_features=int(meta["config"].get("n_features", len(SONG_FEATURES))))
    except (RuntimeError, OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{weights_path}: not a forest checkpoint ({e})") from None
    return forest, meta
