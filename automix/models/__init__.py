"""Trained mixing controllers: encoders, the DMC and MST models, checkpoints and the registry."""

from automix.models.registry import available_models, load_mixer, load_model

__all__ = ["available_models", "load_mixer", "load_model"]
