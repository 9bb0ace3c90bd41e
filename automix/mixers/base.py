"""The one interface every mixer and trained model implements: stems → console settings."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from automix.console.settings import MixSettings
from automix.io import Stem


@runtime_checkable
class Mixer(Protocol):
    """Predicts console settings for a song.

    Attributes:
        name: what ``--model`` calls it; recorded as ``mixer`` in ``mix.json``.
    """

    name: str
    accepts_references: bool
    """Whether :meth:`predict` takes ``references=`` (reference songs whose style to follow):
    declared by the mixer, so callers never inspect signatures."""

    def predict(self, stems: list[Stem], sample_rate: int, *, seed: int = 0) -> MixSettings:
        """Settings for ``stems`` (all at ``sample_rate``, equal length), tracks in stem order.

        Implementations must be deterministic for a given ``seed`` and return values inside
        the schema ranges (use ``MixSettings.clipped()``).
        """
        ...


def accepts_references(mixer: object) -> bool:
    """Whether ``mixer`` follows reference songs (its :attr:`Mixer.accepts_references`; False when
    a mixer, e.g. one written for a test, does not say)."""
    return bool(getattr(mixer, "accepts_references", False))
