"""Mixers behind one interface (stems → console settings), found by name with :func:`get_mixer`.

Built-ins need no training: ``rules``, ``mono``/``unity``, ``equal-loudness``, ``random``.
Any other name or a checkpoint path goes to the trained-model registry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from automix.errors import AutomixError
from automix.mixers.base import Mixer
from automix.models.device import check_device, resolve_device

BUILTIN_MIXERS: dict[str, str] = {
    "rules": "knowledge-engineered mixer: roles from names and audio, documented rules",
    "mono": "baseline: plain sum, every strip neutral",
    "equal-loudness": "baseline: every stem at the same loudness, summed",
    "random": "baseline: equal loudness, then random faders (±12 dB) and pans (seeded)",
    "unity": "baseline: the stems as given (faders at 0 dB, strips neutral; the same sum as mono)",
}

DEFAULT_MIXER = "forest"



def _builtin(name: str) -> Callable[[], Mixer]:
    from automix.mixers import baselines, rules

    return {
        "rules": rules.RulesMixer,
        "mono": baselines.MonoMixer,
        "unity": baselines.UnityMixer,
        "equal-loudness": baselines.EqualLoudnessMixer,
        "random": baselines.RandomMixer,
    }[name]


def check_model_name(model: str, option: str = "--model") -> str:
    """Refuse a ``--model`` that names nothing (``""``, ``/``, ``.``) before the registry looks it up."""
    if not str(model).strip() or not Path(str(model)).name:
        raise AutomixError(f"{option} {model!r}: give a mixer name, a trained model name or a checkpoint path "
                           "(see `automix models`)")
    return model


def check_seed(seed: int) -> int:
    """``--seed`` must be ≥ 0 (numpy's generators refuse negative seeds)."""
    if seed < 0:
        raise AutomixError(f"--seed {seed}: expected 0 or more")
    return seed


def _registry():
    try:
        from automix.models import registry
    except ImportError:
        return None
    return registry


def available_mixers() -> dict[str, str]:
    """Every name ``--model`` accepts → one-line description (built-ins first)."""
    names = dict(BUILTIN_MIXERS)
    registry = _registry()
    if registry is not None:
        for name, description in registry.available_models(mixers_only=True).items():
            names.setdefault(name, description)
    if DEFAULT_MIXER in names:
        names[DEFAULT_MIXER] += " (default)"
    return names


def available_strip_emulators() -> dict[str, str]:
    """Shipped trained models that are not mixers (channel-strip emulators) → descriptions."""
    registry = _registry()
    if registry is None:
        return {}
    mixers = registry.available_models(mixers_only=True)
    return {name: text for name, text in registry.available_models().items() if name not in mixers}


def get_mixer(name_or_path: str, device: str = "auto") -> Mixer:
    """A built-in mixer by name, else a trained model from the registry (name or checkpoint path).

    Raises:
        AutomixError: unknown name (the message lists the valid ones) or a bad device.
    """
    check_device(device)
    check_model_name(name_or_path)
    if name_or_path in BUILTIN_MIXERS:
        return _builtin(name_or_path)()
    registry = _registry()
    unknown = f"unknown model {name_or_path!r}; available: {', '.join(available_mixers())} or a checkpoint path"
    if registry is None:
        raise AutomixError(unknown)
    if device not in ("auto", "cpu"):
        resolve_device(device)  # an unavailable GPU is an error even for a model that runs on the CPU
    try:
        return registry.load_mixer(name_or_path, device)
    except AutomixError as e:
        if str(e).startswith("unknown model"):
            raise AutomixError(unknown) from None
        raise


__all__ = [
    "BUILTIN_MIXERS", "DEFAULT_MIXER", "Mixer", "available_mixers", "check_device", "check_model_name", "check_seed",
    "get_mixer", "resolve_device",
]
