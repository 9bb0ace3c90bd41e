"""Typed training configuration, read from YAML (``.yaml``/``.yml``) or TOML (``.toml``).

The file mirrors the dataclasses below (sections ``model``, ``data``, ``loss`` and the
top-level training fields). Every key must be known: a typo is an error, not a silently
ignored setting.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, get_args

import tomllib
import yaml

from automix.errors import one_line
from automix.io import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from automix.train.config_types import (
    BALANCE_MODEL_SIZES,
    ConfigError,
    Method,
    TrainConfig,
    build,
    check_integer,
    check_number,
    check_text,
    is_int,
)


def _check_values(cfg: TrainConfig) -> None:
    """Types and ranges of every field, so a bad value fails before any data are prepared."""
    for name in ("steps", "batch_size", "grad_accum", "val_every", "val_batches", "log_every"):
        check_integer(name, getattr(cfg, name), 1)
    check_integer("warmup_steps", cfg.warmup_steps, 0)
    check_integer("seed", cfg.seed, 0)
    check_integer("threads", cfg.threads, 1, optional=True)
    check_number("lr", cfg.lr, positive=True)
    check_number("weight_decay", cfg.weight_decay, positive=False)
    check_number("grad_clip", cfg.grad_clip, positive=True)
    for name in ("out_dir", "name"):
        check_text(name, getattr(cfg, name))
    if "/" in cfg.name or "\\" in cfg.name:
        raise ConfigError(f"name: a file name inside out_dir, not a path (got {cfg.name!r})")
    if not isinstance(cfg.description, str):
        raise ConfigError(f"description: expected a string (got {cfg.description!r})")

    d = cfg.data
    check_integer("data.sample_rate_hz", d.sample_rate_hz, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
    check_number("data.excerpt_s", d.excerpt_s, positive=True)
    check_integer("data.excerpts_per_song", d.excerpts_per_song, 1)
    check_integer("data.max_tracks", d.max_tracks, 1)
    check_integer("data.max_songs", d.max_songs, 1, optional=True)
    check_integer("data.workers", d.workers, 0)
    for name in ("songs_root", "refs_root", "cache_dir", "train_split", "val_split"):
        check_text(f"data.{name}", getattr(d, name))
    if not isinstance(d.refit_with_val, bool):
        raise ConfigError(f"data.refit_with_val: expected true or false (got {d.refit_with_val!r})")
    check_text("data.synthetic_root", d.synthetic_root, optional=True)
    check_number("data.synthetic_weight", d.synthetic_weight, positive=True)

    w = cfg.loss
    check_integer("data.output_samples", d.output_samples, 1)
    for name in ("param", "sum_diff_stft", "af", "l1", "mrstft", "per_stem"):
        check_number(f"loss.{name}", getattr(w, name), positive=False)
    if not isinstance(w.fft_sizes, list) or not w.fft_sizes:
        raise ConfigError(f"loss.fft_sizes: expected a non-empty list of integers (got {w.fft_sizes!r})")
    for size in w.fft_sizes:
        check_integer("loss.fft_sizes", size, 16)
    if not isinstance(w.level_match, bool):
        raise ConfigError(f"loss.level_match: expected true or false (got {w.level_match!r})")
    if not isinstance(w.param_weights, dict):
        raise ConfigError(f"loss.param_weights: expected a mapping (got {w.param_weights!r})")

    if not isinstance(cfg.model.sizes, dict):
        raise ConfigError(f"model.sizes: expected a mapping (got {cfg.model.sizes!r})")
    check_text("model.init_from", cfg.model.init_from, optional=True)


def _model_sizes(kind: str, sizes: dict[str, Any]) -> None:
    """Every size of a ``kind`` model (the config's, else the model's default) in the range the
    model can be built and run with, so a bad size fails here and not inside torch."""
    from automix.models.dmc import DMCConfig  # torch: imported only when a config is checked
    from automix.models.mst import MSTConfig

    defaults = dataclasses.asdict((MSTConfig if kind == "mst" else DMCConfig)())
    known = sorted(set(defaults) - {"sample_rate_hz"})
    for key in sizes:
        if key == "sample_rate_hz":
            raise ConfigError("model.sizes.sample_rate_hz: set by data.sample_rate_hz, not here")
        if key not in known:
            raise ConfigError(f"model.sizes.{key}: unknown size of a {kind} model (known: {', '.join(known)})")
    values = {**defaults, **sizes}
    # n_mels ≥ 1 is all the encoder needs: its 3×3 stride-2 convolutions, padded by 1, accept a
    # single band (tried: 1, 2 and 3 bands build, run and give gradients; 0 fails in the first one).
    for key in ("embed_dim", "hidden_dim", "n_mels", "layers", "heads", "ff_dim"):
        if key in values:
            check_integer(f"model.sizes.{key}", values[key], 1)
    channels = values["channels"]
    if not isinstance(channels, (list, tuple)) or not all(is_int(c) and c >= 1 for c in channels):
        raise ConfigError(f"model.sizes.channels: expected a list of positive integers (got {channels!r})")
    dropout = values["dropout"]
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.sizes.dropout: expected a number from 0 to below 1 (got {dropout!r})")
    if kind == "mst" and values["embed_dim"] % values["heads"]:
        d = values["embed_dim"]
        examples = ", ".join(str(h) for h in range(1, min(d, 16) + 1) if d % h == 0)
        raise ConfigError(f"model.sizes.heads: expected a divisor of embed_dim {d}, e.g. {examples} "
                          f"(got {values['heads']})")


def _excerpt_lengths(cfg: TrainConfig) -> None:
    """The model's input, and the FFTs of the STFT loss, fit the excerpts the data make."""
    from automix.models.encoder import WINDOW_SAMPLES

    d = cfg.data
    halves = d.method != "supervised"  # Methods 1 and 2 feed the model one half of each excerpt
    samples = round(d.excerpt_s * d.sample_rate_hz) // (2 if halves else 1)
    what = "data.excerpt_s / 2" if halves else "data.excerpt_s"
    if samples < WINDOW_SAMPLES:
        shortest = WINDOW_SAMPLES * (2 if halves else 1) / d.sample_rate_hz
        raise ConfigError(f"data.excerpt_s: the model would see {samples} samples ({what} at "
                          f"{d.sample_rate_hz} Hz), fewer than its {WINDOW_SAMPLES}-sample analysis window; "
                          f"expected at least {math.ceil(shortest * 1000) / 1000:g} s")
    for size in cfg.loss.fft_sizes if cfg.loss.sum_diff_stft > 0 else []:
        if size > samples:
            raise ConfigError(f"loss.fft_sizes: expected FFT sizes from 16 to {samples}, the samples the loss "
                              f"sees ({what} at {d.sample_rate_hz} Hz) (got {size})")


AUDIO_NETWORK_KINDS = ("tcn", "wave-u-net", "demucs-lite", "dae")
"""Audio-to-audio networks, checked by :mod:`automix.train.config_audio_networks`."""


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check every field's type and range and the sections' consistency; returns ``cfg``
    (``data.method`` normalised to a string). Cheap: run it again after any override."""
    _check_values(cfg)
    if cfg.data.refit_with_val and cfg.model.kind != "forest":
        raise ConfigError("data.refit_with_val: only a forest refits on val (a balance-net picks its best step on val)")
    if cfg.data.synthetic_root is not None and cfg.model.kind != "forest":
        raise ConfigError("data.synthetic_root: only a forest adds the synthetic arranger balances")
    if cfg.model.kind in BALANCE_MODEL_SIZES:
        return _validate_balance(cfg)
    if cfg.model.kind in AUDIO_NETWORK_KINDS:
        from automix.train.config_audio_networks import validate_audio_network  # it uses this module's checks

        return validate_audio_network(cfg)
    if cfg.model.kind not in ("dmc", "mst"):
        raise ConfigError(f"model.kind: expected 'dmc', 'mst', 'tcn', 'wave-u-net', 'demucs-lite', 'dae', 'forest' or 'balance-net', "
                          f"got {cfg.model.kind!r}")
    if str(cfg.data.method) in ("balance", "strip"):
        raise ConfigError(f"data.method {cfg.data.method} trains model.kind "
                          f"{'forest or balance-net' if cfg.data.method == 'balance' else 'tcn'}")
    if str(cfg.data.method) not in get_args(Method):
        raise ConfigError(f"data.method: expected one of {get_args(Method)}, got {cfg.data.method!r}")
    cfg.data.method = str(cfg.data.method)
    _model_sizes(cfg.model.kind, cfg.model.sizes)
    _excerpt_lengths(cfg)
    if cfg.schedule not in ("cosine", "constant"):
        raise ConfigError(f"schedule: expected 'cosine' or 'constant', got {cfg.schedule!r}")
    if cfg.loss.render not in ("console", "balance"):
        raise ConfigError(f"loss.render: expected 'console' or 'balance', got {cfg.loss.render!r}")
    if cfg.loss.console not in ("dsp", "neural"):
        raise ConfigError(f"loss.console: expected 'dsp' or 'neural', got {cfg.loss.console!r}")
    if cfg.loss.console == "neural" and cfg.loss.render != "console":
        raise ConfigError("loss.console: neural renders the strips through the transformation network, "
                          "which needs loss.render: console (balance renders no strip)")
    check_text("loss.strip_model", cfg.loss.strip_model)
    if cfg.loss.param + cfg.loss.sum_diff_stft + cfg.loss.af <= 0:
        raise ConfigError("loss: at least one of param, sum_diff_stft, af must be > 0")
    if cfg.loss.per_stem > 0:
        raise ConfigError(f"loss.per_stem: a {cfg.model.kind} model outputs settings, not processed stems "
                          "(only model.kind dae does)")
    if cfg.loss.param > 0 and cfg.data.method != "1":
        raise ConfigError("loss.param needs ground-truth parameters (data.method: 1)")
    if cfg.loss.sum_diff_stft > 0 and cfg.data.method == "2":
        raise ConfigError("loss.sum_diff_stft needs a target mix (data.method 1 or supervised)")
    return cfg


def _validate_balance(cfg: TrainConfig) -> TrainConfig:
    """A forest or balance-net config: data.method balance and sizes the model knows."""
    kind = cfg.model.kind
    if str(cfg.data.method) != "balance":
        raise ConfigError(f"data.method: a {kind} model trains with method 'balance' (got {cfg.data.method!r})")
    cfg.data.method = "balance"
    known = BALANCE_MODEL_SIZES[kind]
    for key, value in cfg.model.sizes.items():
        if key not in known:
            raise ConfigError(f"model.sizes.{key}: unknown size of a {kind} model (known: {', '.join(known)})")
        if key == "dropout" or key == "max_features":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < (1.0 if key == "dropout" else 1.0001)
            if not ok:
                raise ConfigError(f"model.sizes.{key}: expected a number from 0 to 1 (got {value!r})")
        elif key == "max_depth":
            check_integer(f"model.sizes.{key}", value, 1, optional=True)
        else:
            check_integer(f"model.sizes.{key}", value, 1)
    sizes = {"width": 128, "heads": 4, **cfg.model.sizes}
    if kind == "balance-net" and sizes["width"] % sizes["heads"]:
        raise ConfigError(f"model.sizes.heads: expected a divisor of width {sizes['width']} (got {sizes['heads']})")
    if cfg.schedule not in ("cosine", "constant"):
        raise ConfigError(f"schedule: expected 'cosine' or 'constant', got {cfg.schedule!r}")
    return cfg


def _yaml_problem(e: yaml.YAMLError) -> str:
    """``line L, column C: problem`` (1-based) of a YAML syntax error, on one line."""
    mark = getattr(e, "problem_mark", None)
    problem = one_line(getattr(e, "problem", None) or e)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def load_config(path: Path) -> TrainConfig:
    """Read and validate a YAML or TOML training config (UTF-8 text)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"{path}: expected a .yaml, .yml or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(e)})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({one_line(e)})") from None
    if data is None or data == {}:  # the defaults alone cannot train: say what is missing
        raise ConfigError(f"{path}: the config is empty; it needs at least the data and loss sections "
                          "(see configs/smoke.yaml)")
    if isinstance(data, dict) and "data" not in data:
        raise ConfigError(f"{path}: the data section is missing (where the songs, cache and sample rate are)")
    try:
        return validate(build(TrainConfig, data, "config"))
    except TypeError as e:
        raise ConfigError(f"{path}: {one_line(e)}") from None


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
