"""The interfaces of mixers: stems → console settings (:class:`Mixer`), or, for the end-to-end
baselines, stems → the mix itself (:class:`AudioMixer`)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

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


@runtime_checkable
class AudioMixer(Protocol):
    """An end-to-end model: stems in, the mix itself out, with no console settings in between.

    Attributes:
        name: what ``--model`` calls it; recorded as ``mixer`` in the JSON beside the mix.
    """

    name: str

    def mix_audio(self, stems: list[Stem], sample_rate: int, *, seed: int = 0) -> np.ndarray:
        """The mix of ``stems`` (all at ``sample_rate``, equal length): ``(2, N)`` float32 at
        ``sample_rate``, any level (the output stage sets loudness and peak)."""
        ...


def outputs_audio(mixer: object) -> bool:
    """Whether ``mixer`` is an :class:`AudioMixer` (it writes audio, not settings)."""
    return callable(getattr(mixer, "mix_audio", None))


def accepts_references(mixer: object) -> bool:
    """Whether ``mixer`` follows reference songs (its :attr:`Mixer.accepts_references`; False when
    a mixer, e.g. one written for a test, does not say)."""
    return bool(getattr(mixer, "accepts_references", False))
