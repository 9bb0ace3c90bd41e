"""The training config's typed sections and the checks of single values (no validation of the
whole: :mod:`automix.train.config` reads and validates files)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_type_hints

from automix.errors import AutomixError

Method = Literal["1", "2", "supervised", "balance", "strip"]
BALANCE_MODEL_SIZES = {"forest": ("trees", "min_samples_leaf", "max_features", "max_depth"),
                       "balance-net": ("width", "layers", "heads", "dropout")}
"""What ``model.sizes`` may hold for the balance models (trained with ``data.method: balance``)."""


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
    refit_with_val: bool = False
    """Forest on the real-balance corpus: fit the shipped model on train and val together and
    report validation numbers from cross-validation over both, folds by package and composer."""
    synthetic_root: str | None = None
    """Forest on the real-balance corpus: also fit the MMA arranger balances of this synthetic
    set's train and val splits (:mod:`automix.train.synthetic_balance`); None = real songs only."""
    synthetic_weight: float = 0.2
    """Sample weight of each synthetic track (a real track weighs 1)."""
    workers: int = 0
    output_samples: int = 8192
    """Transformation network (``method: strip``): output samples per example (its input is
    that plus the receptive field)."""


@dataclass
class LossSection:
    """Weights of each loss term (0 = off)."""

    param: float = 0.0
    sum_diff_stft: float = 0.0
    af: float = 0.0
    l1: float = 0.0
    """Transformation network: mean absolute error against the DSP strip's output."""
    mrstft: float = 0.0
    """Transformation network: multi-resolution STFT loss against the DSP strip's output."""
    per_stem: float = 0.0
    """End-to-end models that output each processed stem (``dae``): weight of the relative L1
    between each processed stem and the stem at its truth gain and pan from the real corpus's
    ``song.json`` (:mod:`automix.train.stem_targets`; not level-matched). 0 = off."""
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
    console: str = "dsp"
    """Which console renders the strips when ``render`` is "console": "dsp" (the differentiable
    DSP console) or "neural" (each strip's EQ and compressor by the frozen transformation network
    ``strip_model``, as Steinmetz et al. 2021 train the DMC; see :mod:`automix.train.neural_render`).
    Training only: the trained controller's settings are always rendered by the DSP console."""
    strip_model: str = "tcn-10"
    """The transformation network of ``console: neural``: a shipped name or a checkpoint path."""


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


def build(cls: type, values: Any, where: str) -> Any:
    """``cls`` (a section dataclass) from a parsed mapping; unknown keys are errors naming their place."""
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
            kwargs[key] = build(hint, value, f"{where}.{key}")
            continue
        allowed = get_args(hint) or (hint,)
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        kwargs[key] = value
    return cls(**kwargs)


"""Training sample rates the audio loader accepts (see :mod:`automix.io`)."""


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_integer(where: str, value: Any, minimum: int, maximum: int | None = None, *, optional: bool = False) -> None:
    """An integer in ``[minimum, maximum]`` (None allowed when ``optional``), else :class:`ConfigError`."""
    if optional and value is None:
        return
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        wanted = "a positive integer" if minimum == 1 and maximum is None else (
            f"an integer ≥ {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}")
        raise ConfigError(f"{where}: expected {wanted}{' or null' if optional else ''} (got {value!r})")


def check_number(where: str, value: Any, *, positive: bool) -> None:
    """A finite number, > 0 when ``positive`` else ≥ 0, else :class:`ConfigError`."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise ConfigError(f"{where}: expected a number {'> 0' if positive else '≥ 0'} (got {value!r})")


def check_text(where: str, value: Any, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string (got {value!r})")
