"""A learned balance on top of the rules: the model sets the faders, the rules do the rest.

The rules mixer decides each strip's processing (high-pass, resonance cut, compressor, reverb
send, pan); a balance model (:mod:`automix.models.balance`) predicts how loud each track sits
in the mix relative to the others. The fader then puts each *processed* track there: the
strips are rendered once at unity fader on a few excerpts, their loudness measured, and the
fader makes up the difference, so an EQ cut or a compressor's make-up does not move the
balance the model asked for. Stems that arrive with a balance of their own are trusted as far
as they agree with the model (:func:`given_balance_weight`). Stems the rules leave alone
(silence, DC, clicks) stay at unity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from automix.analysis_windows import multitrack_windows
from automix.console.loudness import SILENCE_LUFS, integrated_lufs
from automix.console.render import render_console
from automix.console.schema import MASTER, SEND_OFF_DB, TRACK
from automix.console.settings import MixSettings
from automix.errors import AutomixError
from automix.io import Stem
from automix.mixers.balance_features import song_features, track_features
from automix.mixers.rules import RulesMixer, master_chain

STRIP_EXCERPTS = 3
STRIP_EXCERPT_S = 8.0
"""The processed loudness of each strip is measured on this many excerpts of this length."""


def strip_loudness_lufs(stems: list[Stem], settings: MixSettings, indices: list[int]) -> np.ndarray:
    """Loudness of each chosen track as the mix holds it at unity fader: its strip, pan and its own
    reverb return, through a neutral master, ``(len(indices),)`` LUFS.

    Measured on :data:`STRIP_EXCERPTS` of the song's most active excerpts (the same for every
    track, so a track's rests count as they do in the song). The reverb return counts because
    a listener hears a track's reverb as part of that track (the corpus' truths are dry).
    """
    rate = settings.sample_rate or stems[0].sample_rate
    audio = [np.asarray(stems[k].read(0, stems[k].frames), dtype=np.float32) for k in indices]
    windows, _ = multitrack_windows(audio, rate, STRIP_EXCERPT_S, STRIP_EXCERPTS)
    out = []
    for j, k in enumerate(indices):
        excerpt = np.concatenate([w[j] for w in windows], axis=1)
        alone = MixSettings([settings.track_names[k]], settings.track[k:k + 1].copy(), settings.fx.copy(),
                            sample_rate=rate)
        alone.set(0, "gain_db", 0.0)
        out.append(integrated_lufs(render_console([excerpt], rate, alone, workers=1), rate))
    return np.array(out, dtype=np.float64)


STRIPS = ("rules", "no-eq", "faders")
"""What the strips do besides the learned fader: everything the rules decide, the rules without
their EQ (high-pass and resonance cut), or nothing (``faders``: neutral strips, no reverb,
centred). A checkpoint may choose (``training.strips`` in its JSON); the default,
:data:`DEFAULT_STRIPS`, is what measured better: a high-pass turns the phase of a source near
its cutoff, so the mix holds the track less *in phase* with its stem, which a least-squares
balance reads as a quieter track (on generated songs: 4.4 dB balance error with the rules' EQ, 1.6 dB without)."""

DEFAULT_STRIPS = "no-eq"

FLAT_GIVEN_STD_DB = 1.0
"""Stems whose loudness spreads less than this (std, dB) carry no balance of their own
(exported or normalised to one level): the model's balance is taken as it is."""

DEFAULT_MODEL_VAR_DB2 = 9.0
"""Per-track variance of a model's centred error (dB²) when its checkpoint does not say."""


def given_balance_weight(given_db: np.ndarray, predicted_db: np.ndarray, model_var_db2: float) -> float:
    """How much to trust the balance the stems arrive with, 0…1 (inverse-variance weighting).

    The stems' own levels and the model's prediction are two noisy estimates of the balance the
    song wants. The model's error variance is known from validation; the stems' is what their
    disagreement with the model leaves: ``var(given − predicted) − model_var`` (≥ 0). Stems that
    already carry a balance agree with the model about as well as the truth would, so they get a
    weight near 1 (the mix keeps them: never worse than leaving them alone); stems at arbitrary
    recording levels disagree widely and get a weight near 0; stems at one level carry nothing
    (:data:`FLAT_GIVEN_STD_DB`) and get 0.
    """
    given = np.asarray(given_db, dtype=np.float64) - np.mean(given_db)
    predicted = np.asarray(predicted_db, dtype=np.float64) - np.mean(predicted_db)
    if given.size < 2 or float(np.std(given)) < FLAT_GIVEN_STD_DB:
        return 0.0
    given_var = max(0.0, float(np.var(given - predicted)) - model_var_db2)
    return float(model_var_db2 / (model_var_db2 + given_var))


class BalanceMixer:
    """The rules' strips with a trained model's faders.

    Args:
        model: a predictor with ``predict(song_features) -> (K,) LU`` (forest or balance net).
        meta: its checkpoint description; ``meta["training"]["strips"]`` may pick from :data:`STRIPS`.
        name: what ``--model`` called it (``mixer`` in ``mix.json``).
    """

    accepts_references = False

    def __init__(self, model: Any, meta: dict[str, Any], name: str, strips: str | None = None) -> None:
        self.model = model
        self.meta = meta
        self.name = name
        self.strips = strips or str(meta.get("training", {}).get("strips", DEFAULT_STRIPS))
        if self.strips not in STRIPS:
            raise AutomixError(f"{name}: unknown strips {self.strips!r} (expected one of {', '.join(STRIPS)})")

    def predict_levels(self, stems: list[Stem]) -> np.ndarray:
        """Each track's predicted loudness in the mix relative to the average track, ``(K,)`` LU."""
        rows = [track_features(s.read(0, s.frames), s.sample_rate, s.name) for s in stems]
        levels = np.asarray(self.model.predict(song_features(rows)), dtype=np.float64)
        return levels - levels.mean()

    def predict(self, stems: list[Stem], sample_rate: int, *, seed: int = 0) -> MixSettings:
        settings = RulesMixer().predict(stems, sample_rate, seed=seed)
        settings.mixer = self.name
        names = [s.name for s in stems]
        trims = [settings.get(n, "trim_db") for n in names]
        active = [k for k, n in enumerate(names) if not any(note.startswith("left alone") for note in settings.notes[n])]
        if self.strips == "faders":
            settings = MixSettings.neutral(names, mixer=self.name, sample_rate=sample_rate, roles=settings.roles,
                                           notes={n: [notes[0], "strip left neutral, centred, no reverb"]
                                                  for n, notes in settings.notes.items()})
            settings.set_fx("reverb.return_db", SEND_OFF_DB)
            for k, trim_db in enumerate(trims):
                settings.set(k, "trim_db", trim_db)
        if self.strips == "no-eq":
            eq = [i for i, param in enumerate(TRACK.names) if param.startswith("eq.")]
            settings.track[:, eq] = TRACK.defaults()[eq]
            for name in names:
                settings.notes[name] = [n for n in settings.notes[name]
                                        if not n.startswith(("high-pass", "resonance"))] + ["EQ left flat"]
        if not active:
            return settings
        levels = self.predict_levels([stems[k] for k in active])
        given = np.array([-settings.get(names[k], "trim_db") for k in active])  # stem loudness, up to a constant
        model_var = float(self.meta.get("training", {}).get("val_residual_var_db2", DEFAULT_MODEL_VAR_DB2))
        weight = given_balance_weight(given, levels, model_var)
        predicted = levels
        levels = (1.0 - weight) * levels + weight * (given - given.mean())
        processed = strip_loudness_lufs(stems, settings, active)
        audible = processed > SILENCE_LUFS
        reference = float(np.mean(processed[audible])) if audible.any() else 0.0
        spec = TRACK.spec("gain_db")
        for k, level, model_level, lufs in zip(active, levels, predicted, processed, strict=True):
            gain_db = float(np.clip(level - (lufs - reference), spec.minimum, spec.maximum)) if lufs > SILENCE_LUFS else 0.0
            settings.set(names[k], "gain_db", gain_db)
            settings.notes[names[k]].append(
                f"{self.name}: the model puts it {model_level:+.1f} LU from the average track"
                + (f", the stems as given {weight:.0%} of the way to their own balance: {level:+.1f} LU"
                   if weight > 0.005 else "") +
                f"; its strip and reverb read {lufs - reference:+.1f} LU at unity, so fader {gain_db:+.1f} dB "
                "(replaces the role offset above)")
        if self.strips == "faders":  # nothing but the balance: the master stays neutral too
            return settings.clipped()
        for param, value in master_chain([settings.get(names[k], "gain_db") for k in active]).items():
            settings.set_master(param, value)
        if self.strips == "no-eq":
            settings.set_master("eq.highpass.freq_hz", MASTER.spec("eq.highpass.freq_hz").default)
        return settings.clipped()
