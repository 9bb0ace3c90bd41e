"""Training configs of the audio-to-audio networks: the transformation network (``tcn``, data
method ``strip``) and the end-to-end baselines (``wave-u-net``, ``demucs-lite``, ``dae``; method
``supervised``: the stems and the song's own mix). Called by :func:`automix.train.config.validate`."""

from __future__ import annotations

import dataclasses
import math

from automix.train.config_types import ConfigError, TrainConfig, check_integer

TCN_SIZES = ("n_blocks", "channels", "kernel_size", "dilation_growth", "dilation_cycle", "cond_dim")


def _validate_strip(cfg: TrainConfig) -> TrainConfig:
    """A transformation-network config: method strip, known sizes, an odd kernel, excerpts
    long enough for the receptive field plus the output, and an L1 or MRSTFT loss."""
    if str(cfg.data.method) != "strip":
        raise ConfigError(f"data.method: a tcn model trains with method 'strip' (got {cfg.data.method!r})")
    cfg.data.method = "strip"
    for key, value in cfg.model.sizes.items():
        if key not in TCN_SIZES:
            raise ConfigError(f"model.sizes.{key}: unknown size of a tcn model (known: {', '.join(TCN_SIZES)})")
        check_integer(f"model.sizes.{key}", value, 1)
    from automix.models.tcn import TCNConfig, receptive_field  # torch: only when a tcn config is checked

    network = TCNConfig(**cfg.model.sizes)
    if network.kernel_size % 2 == 0:
        raise ConfigError(f"model.sizes.kernel_size: expected an odd number (got {network.kernel_size})")
    receptive = receptive_field(network)
    needed = receptive + cfg.data.output_samples
    if round(cfg.data.excerpt_s * cfg.data.sample_rate_hz) < needed:
        raise ConfigError(f"data.excerpt_s: an example needs {needed} samples (receptive field {receptive} + "
                          f"output {cfg.data.output_samples}), expected at least "
                          f"{math.ceil(needed / cfg.data.sample_rate_hz * 100) / 100:g} s")
    if cfg.loss.l1 + cfg.loss.mrstft <= 0:
        raise ConfigError("loss: a tcn model needs loss.l1 or loss.mrstft > 0")
    if cfg.loss.per_stem > 0:
        raise ConfigError("loss.per_stem: a tcn model emulates one strip, it outputs no mix of stems "
                          "(only model.kind dae trains on it)")
    for size in cfg.loss.fft_sizes if cfg.loss.mrstft > 0 else []:
        if size > cfg.data.output_samples:
            raise ConfigError(f"loss.fft_sizes: expected FFT sizes up to data.output_samples "
                              f"{cfg.data.output_samples} (got {size})")
    if cfg.schedule not in ("cosine", "constant"):
        raise ConfigError(f"schedule: expected 'cosine' or 'constant', got {cfg.schedule!r}")
    return cfg


def _validate_end_to_end(cfg: TrainConfig) -> TrainConfig:
    """A Wave-U-Net, Demucs-lite or DAE config: method supervised (the target is the song's mix), known
    sizes, at most the network's input tracks per example, and the sum/difference STFT loss (plus the
    per-stem loss for a DAE, the one that outputs each processed stem)."""
    from automix.models.dae import DAEConfig  # torch: only when such a config is checked
    from automix.models.demucs_lite import DemucsLiteConfig
    from automix.models.wave_unet import WaveUNetConfig

    config_class = {"wave-u-net": WaveUNetConfig, "dae": DAEConfig}.get(cfg.model.kind, DemucsLiteConfig)

    if str(cfg.data.method) != "supervised":
        raise ConfigError(f"data.method: a {cfg.model.kind} model trains with method 'supervised' "
                          f"(stems and their mix; got {cfg.data.method!r})")
    cfg.data.method = "supervised"
    known = sorted(set(dataclasses.asdict(config_class())) - {"sample_rate_hz"})
    for key, value in cfg.model.sizes.items():
        if key not in known:
            raise ConfigError(f"model.sizes.{key}: unknown size of a {cfg.model.kind} model (known: {', '.join(known)})")
        check_integer(f"model.sizes.{key}", value, 1)
    network = config_class(**cfg.model.sizes)
    for key in ("down_kernel", "up_kernel") if cfg.model.kind == "wave-u-net" else ():
        if getattr(network, key) % 2 == 0:
            raise ConfigError(f"model.sizes.{key}: expected an odd number (got {getattr(network, key)})")
    if cfg.model.kind == "demucs-lite" and network.stride > network.kernel_size:
        raise ConfigError(f"model.sizes.stride: expected at most kernel_size {network.kernel_size} "
                          f"(got {network.stride}): a longer stride would skip samples")
    if cfg.model.kind == "dae" and network.hop > network.n_fft:
        raise ConfigError(f"model.sizes.hop: expected at most n_fft {network.n_fft} (got {network.hop})")
    if cfg.data.max_tracks > getattr(network, "max_tracks", cfg.data.max_tracks):  # the dae takes any number
        raise ConfigError(f"data.max_tracks: the network takes at most model.sizes.max_tracks {network.max_tracks} "
                          f"stems (got {cfg.data.max_tracks})")
    if cfg.loss.sum_diff_stft <= 0 or cfg.loss.param > 0 or cfg.loss.af > 0:
        raise ConfigError("loss: an end-to-end model trains on loss.sum_diff_stft alone (a dae may add loss.per_stem; "
                          "no settings to compare, no references)")
    if cfg.loss.per_stem > 0 and cfg.model.kind != "dae":
        raise ConfigError(f"loss.per_stem: a {cfg.model.kind} model outputs only the mix, not each processed stem "
                          "(only model.kind dae does)")
    samples = round(cfg.data.excerpt_s * cfg.data.sample_rate_hz)
    for size in cfg.loss.fft_sizes:
        if size > samples:
            raise ConfigError(f"loss.fft_sizes: expected FFT sizes up to the excerpt's {samples} samples (got {size})")
    if cfg.schedule not in ("cosine", "constant"):
        raise ConfigError(f"schedule: expected 'cosine' or 'constant', got {cfg.schedule!r}")
    return cfg


def validate_audio_network(cfg: TrainConfig) -> TrainConfig:
    """Check a ``tcn``, ``wave-u-net``, ``demucs-lite`` or ``dae`` config; returns it (``data.method`` normalised)."""
    return _validate_strip(cfg) if cfg.model.kind == "tcn" else _validate_end_to_end(cfg)
