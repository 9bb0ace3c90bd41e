"""The evaluated methods: check their names, predict each one's settings for a song, and render them in memory."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from automix.console.schema import FX, TRACK
from automix.console.settings import MixSettings
from automix.errors import AutomixError
from automix.evaluate.features import estimate_gains_pans
from automix.evaluate.layout import AUTOMATIC_METHODS, ORACLE_METHOD
from automix.evaluate.song_audio import SongAudio
from automix.io import Stem

MixerFactory = Callable[[], Any]
"""A zero-argument factory of a mixer (an object with ``predict(stems, sample_rate, seed=…)``)."""


@lru_cache(maxsize=16)
def _cached_mixer(name: str) -> Any:
    from automix.mixers import check_model_name, get_mixer

    return get_mixer(check_model_name(name, "--methods"), "cpu")


def _mixer(name: str, extra: Mapping[str, MixerFactory] | None) -> Any:
    if extra and name in extra:
        return extra[name]()
    return _cached_mixer(name)


def check_methods(methods: Sequence[str], extra: Mapping[str, MixerFactory] | None = None) -> list[str]:
    """Validate method names (each loads once here, so a missing checkpoint fails early)."""
    if not methods:
        raise AutomixError("--methods: give at least one method")
    seen: list[str] = []
    for name in methods:
        if name in seen:
            raise AutomixError(f"--methods: {name!r} given twice")
        if name in AUTOMATIC_METHODS:
            raise AutomixError(f"--methods: {name!r} is measured automatically (target mixes, --refs)")
        if name != ORACLE_METHOD and name not in (extra or {}):
            _cached_mixer(name)  # raises AutomixError listing the valid names
        seen.append(name)
    return seen


def oracle_settings(stems: Sequence[Stem], target: np.ndarray) -> MixSettings:
    """Gains and pans fitted to ``target`` by least squares; everything else neutral.

    The fitted gain goes to the trim (±48 dB) rather than the fader (−40…+12 dB), whose range
    a stem recorded far below its place in the mix can exceed.
    """
    gains_db, pans = estimate_gains_pans([s.audio for s in stems], target)
    settings = MixSettings.neutral([s.name for s in stems], mixer=ORACLE_METHOD)
    settings.track[:, TRACK.index("trim_db")] = gains_db
    settings.track[:, TRACK.index("pan")] = pans
    settings.set_fx("reverb.return_db", FX.spec("reverb.return_db").minimum)
    return settings.clipped()


def predict_settings(method: str, song: SongAudio, *, seed: int, reference: np.ndarray | None = None,
                     extra: Mapping[str, MixerFactory] | None = None, automate: bool = False) -> MixSettings | None:
    """A method's settings for a song; None for the oracle of a song without a target mix.

    ``reference`` (``(2, N)`` at the song's rate) goes to mixers that follow references
    (:func:`~automix.mixers.base.accepts_references`). ``automate``: then ride the faders per
    section as ``automix mix`` does (:func:`~automix.mixers.riding.ride_faders`; never the oracle's).
    """
    from automix.mixers.base import accepts_references
    from automix.mixers.riding import ride_faders

    if method == ORACLE_METHOD:
        return oracle_settings(song.stems, song.target) if song.target is not None else None
    mixer = _mixer(method, extra)
    if reference is not None and accepts_references(mixer):
        settings = mixer.predict(song.stems, song.sample_rate, seed=seed, references=[reference])
    else:
        settings = mixer.predict(song.stems, song.sample_rate, seed=seed)
    return ride_faders(settings, song.stems, song.sample_rate) if automate else settings


def method_is_direct(method: str, extra: Mapping[str, MixerFactory] | None = None) -> bool:
    """Whether ``method`` is an end-to-end model (:func:`~automix.mixers.base.outputs_audio`):
    it outputs audio, so it has no settings to render."""
    from automix.mixers.base import outputs_audio

    return method != ORACLE_METHOD and outputs_audio(_mixer(method, extra))


def direct_mix(method: str, song: SongAudio, *, seed: int,
               extra: Mapping[str, MixerFactory] | None = None) -> np.ndarray:
    """An end-to-end model's finalized mix ``(2, N)`` of the song (see :func:`method_is_direct`).

    Raises:
        AutomixError: the model cannot mix this song (e.g. more stems than its inputs).
    """
    from automix.console.finalize import finalize
    from automix.console.schema import DEFAULT_CEILING_DBTP, DEFAULT_TARGET_LUFS
    from automix.direct_mix import predicted_audio

    mixer = _mixer(method, extra)
    audio = predicted_audio(mixer, list(song.stems), song.sample_rate, seed)
    final, _ = finalize(audio, song.sample_rate, DEFAULT_TARGET_LUFS, DEFAULT_CEILING_DBTP)
    return final


def render_mix(stems: Sequence[Stem], sample_rate: int, settings: MixSettings) -> tuple[np.ndarray, MixSettings]:
    """The engine's back half in memory: render the rounded settings, then finalize.

    Returns:
        ``(mix (2, N) float32, the settings exactly as rendered)``.
    """
    from automix.console.finalize import finalize
    from automix.console.render import render_console

    settings.sample_rate = sample_rate
    settings = settings.clipped().rounded()
    mix = render_console([s.audio for s in stems], sample_rate, settings)
    final, _ = finalize(mix, sample_rate, settings.target_lufs, settings.ceiling_dbtp)
    return final, settings
