"""The shipped checkpoints, by name: list them, load a model, or load it as a mixer.

A name is the base name of a checkpoint pair in :data:`CHECKPOINT_DIR`
(``mst-small`` → ``checkpoints/mst-small.safetensors`` + ``.json``). Anything else that is an
existing path (with or without the suffixes) is loaded as a checkpoint file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automix.errors import AutomixError
from automix.models.checkpoint_files import (
    BALANCE_KINDS,
    END_TO_END_KINDS,
    STRIP_KINDS,
    load_forest,
    read_checkpoint_info,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

INSTALLED_CHECKPOINT_DIR = Path("share") / "automix" / "checkpoints"
"""Where a wheel install puts the checkpoints, relative to the environment prefix
(``[tool.setuptools.data-files]`` in pyproject.toml)."""


def checkpoint_dir(environ: dict[str, str] | None = None, source_root: Path | None = None,
                   prefix: str | Path | None = None) -> Path:
    """The folder of shipped checkpoints: ``AUTOMIX_CHECKPOINT_DIR`` if set, else the checkout's
    ``checkpoints/`` (editable installs, running from the repository), else the installed copy
    under the environment prefix (a wheel install, where the source tree is not there)."""
    environ = os.environ if environ is None else environ
    if environ.get("AUTOMIX_CHECKPOINT_DIR"):
        return Path(environ["AUTOMIX_CHECKPOINT_DIR"])
    source = (source_root or Path(__file__).resolve().parents[2]) / "checkpoints"
    if source.is_dir():
        return source
    return Path(sys.prefix if prefix is None else prefix) / INSTALLED_CHECKPOINT_DIR


END_TO_END_NOTE = "end-to-end: outputs the mix, no console settings"
"""What ``automix models`` says of an end-to-end model."""

CHECKPOINT_DIR = checkpoint_dir()
"""Where the shipped checkpoints live (see :func:`checkpoint_dir`)."""


def available_models(mixers_only: bool = False) -> dict[str, str]:
    """Shipped checkpoint names → one-line descriptions, sorted by name; with ``mixers_only``
    without the channel-strip emulators (:data:`STRIP_KINDS`), which ``--model`` cannot use."""
    models = {}
    for path in sorted(CHECKPOINT_DIR.glob("*.json")):
        if not path.with_suffix(".safetensors").is_file():
            continue
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if mixers_only and meta.get("model") in STRIP_KINDS:
            continue
        description = meta.get("training", {}).get("description") or f"{meta.get('model', '?')} model"
        line = str(description).splitlines()[0] if description else ""
        models[path.stem] = f"{line} [{END_TO_END_NOTE}]" if meta.get("model") in END_TO_END_KINDS else line
    return models


def _resolve(name_or_path: str | Path) -> tuple[Path, str]:
    text = str(name_or_path)
    if text in available_models():
        return CHECKPOINT_DIR / text, text
    path = Path(text)
    base = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    if base.with_name(base.name + ".json").is_file():
        return base, base.name
    names = ", ".join(available_models()) or "none shipped"
    raise AutomixError(f"unknown model {text!r}: not a shipped model ({names}) nor a checkpoint path")


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """A shipped model by name, or a checkpoint by path; returns ``(model, description)``."""
    from automix.models.checkpoint import load_checkpoint

    path, _ = _resolve(name_or_path)
    return load_checkpoint(path, device)


def load_mixer(name_or_path: str | Path, device: str | torch.device = "cpu") -> Any:
    """A shipped model or checkpoint as a :class:`~automix.mixers.base.Mixer`."""
    path, name = _resolve(name_or_path)
    kind = read_checkpoint_info(path).get("model")
    if kind in STRIP_KINDS:
        raise AutomixError(f"{name} is a channel-strip emulator (a {kind} transformation network), not a mixer: "
                           "it predicts no console settings; pick a mixer from `automix models`")
    # The forest (the default mixer) is numpy arrays: loading it must not pay for importing torch.
    if kind == "forest":
        from automix.mixers.learned_balance import BalanceMixer

        return BalanceMixer(*load_forest(path), name)
    from automix.models.checkpoint import load_checkpoint
    from automix.models.device import resolve_device
    from automix.models.mixer import ModelMixer

    device = resolve_device(str(device))
    model, meta = load_checkpoint(path, device)
    if meta.get("model") == "dae":  # its stems' names choose their autoencoders
        from automix.models.dae import DAEMixer

        return DAEMixer(model, meta, name, device)
    if meta.get("model") in END_TO_END_KINDS:
        from automix.models.direct_mixer import DirectModelMixer

        return DirectModelMixer(model, meta, name, device)
    if meta.get("model") in BALANCE_KINDS:
        from automix.mixers.learned_balance import BalanceMixer

        return BalanceMixer(model, meta, name)
    return ModelMixer(model, meta, name, device)
