"""Typed training configuration, read from YAML (``.yaml``/``.yml``) or TOML (``.toml``).

The file mirrors the dataclasses below (sections ``model``, ``data``, ``loss`` and the
top-level training fields). Every key must be known: a typo is an error, not a silently
ignored setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

import tomllib
import yaml

from automix.errors import AutomixError

Method = Literal["1", "2", "supervised"]


class ConfigError(AutomixError):
    """A training config file is unreadable or holds an unknown/invalid key."""


@dataclass
class ModelSection:
    """``kind``: "dmc" or "mst"; ``sizes``: fields of DMCConfig/MSTConfig (sample rate comes from data)."""

    kind: str = "mst"
    sizes: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    """Start from these checkpoint weights (fine-tuning); path without suffix."""


@dataclass
class DataSection:
    method: str = "1"
    songs_root: str = "data/synth"
    refs_root: str = "data/refs"
    cache_dir: str = "data/cache"
    train_split: str = "train"
    val_split: str = "val"
    sample_rate_hz: int = 16000
    excerpt_s: float = 5.0
    """Cached excerpt length. Method 1 and 2 use halves of it as model input, supervised all of it."""
    excerpts_per_song: int = 4
    max_tracks: int = 16
    max_songs: int | None = None
    """Use at most this many songs per split (quick experiments); None = all."""
    workers: int = 0


@dataclass
class LossSection:
    """Weights of each loss term (0 = off)."""

    param: float = 0.0
    sum_diff_stft: float = 0.0
    af: float = 0.0
    param_weights: dict[str, dict[str, float]] = field(default_factory=dict)
    level_match: bool = False
    """Scale the predicted mix to the target's (or reference's) RMS before the STFT / AF loss:
    finalize sets the loudness of every mix, so level is not something to learn (and the
    arranger mixes' level is arbitrary)."""
    fft_sizes: list[int] = field(default_factory=lambda: [256, 1024, 2048])
    render: str = "console"
    """How predictions are rendered for audio losses: "console" (the whole differentiable
    console) or "balance" (only its fader + pan/width stage; every other setting stays
    neutral, also at inference). "balance" is ~100× cheaper on a CPU and is all a mix made
    of level and pan decisions (like the synthetic arranger mixes) can teach."""


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    out_dir: str = "runs/default"
    steps: int = 1000
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    schedule: str = "cosine"
    """"cosine" (to 10 % of lr) or "constant" after warm-up."""
    grad_clip: float = 1.0
    seed: int = 0
    val_every: int = 100
    val_batches: int = 4
    log_every: int = 10
    threads: int | None = None
    """torch.set_num_threads; None leaves torch's default."""
    name: str = "model"
    """Checkpoint base name inside ``out_dir`` (``NAME-best``, ``NAME-last``)."""
    description: str = ""


def _build(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table/mapping")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{where}.{key}")
            continue
        allowed = get_args(hint) or (hint,)
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        kwargs[key] = value
    return cls(**kwargs)


def validate(cfg: TrainConfig) -> TrainConfig:
    if cfg.model.kind not in ("dmc", "mst"):
        raise ConfigError(f"model.kind: expected 'dmc' or 'mst', got {cfg.model.kind!r}")
    if str(cfg.data.method) not in get_args(Method):
        raise ConfigError(f"data.method: expected one of {get_args(Method)}, got {cfg.data.method!r}")
    cfg.data.method = str(cfg.data.method)
    if cfg.schedule not in ("cosine", "constant"):
        raise ConfigError(f"schedule: expected 'cosine' or 'constant', got {cfg.schedule!r}")
    for name in ("steps", "batch_size", "grad_accum", "val_every", "val_batches", "log_every"):
        if not isinstance(getattr(cfg, name), int) or getattr(cfg, name) < 1:
            raise ConfigError(f"{name}: expected a positive integer")
    if cfg.loss.render not in ("console", "balance"):
        raise ConfigError(f"loss.render: expected 'console' or 'balance', got {cfg.loss.render!r}")
    if cfg.loss.param + cfg.loss.sum_diff_stft + cfg.loss.af <= 0:
        raise ConfigError("loss: at least one of param, sum_diff_stft, af must be > 0")
    if cfg.loss.param > 0 and cfg.data.method != "1":
        raise ConfigError("loss.param needs ground-truth parameters (data.method: 1)")
    if cfg.loss.sum_diff_stft > 0 and cfg.data.method == "2":
        raise ConfigError("loss.sum_diff_stft needs a target mix (data.method 1 or supervised)")
    return cfg


def load_config(path: Path) -> TrainConfig:
    """Read and validate a YAML or TOML training config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: expected a .yaml, .yml or .toml file")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot parse ({e})") from None
    try:
        return validate(_build(TrainConfig, data, "config"))
    except TypeError as e:
        raise ConfigError(f"{path}: {e}") from None


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
