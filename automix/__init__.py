"""automix: automatic multitrack mixing on a differentiable mixing console."""

__version__ = "0.1.0"
