"""Baseline mixers for evaluation: plain sum, equal loudness, and seeded random."""

from __future__ import annotations

import numpy as np

from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs
from automix.console.schema import FX
from automix.console.settings import MixSettings
from automix.io import Stem
from automix.models.inputs import stem_trim_db


def loudness_trim_db(stem: Stem) -> tuple[float, float]:
    """``(trim_db, stem_lufs)``: the trim that brings a stem to :data:`NORMALISED_STEM_LUFS`.

    The trim is clipped to the schema's trim range (a near-silent stem cannot be boosted forever).
    """
    lufs = float(integrated_lufs(stem.audio, stem.sample_rate))
    return stem_trim_db(lufs), lufs


class MonoMixer:
    """Plain sum: every strip neutral, centred, no effects, master neutral."""

    accepts_references = False

    name = "mono"

    def predict(self, stems: list[Stem], sample_rate: int, *, seed: int = 0) -> MixSettings:
        settings = MixSettings.neutral([s.name for s in stems], mixer=self.name, sample_rate=sample_rate)
        settings.set_fx("reverb.return_db", FX.spec("reverb.return_db").minimum)  # no FX at all
        return settings.clipped()


class UnityMixer(MonoMixer):
    """The stems as given: what the user has before any mixing (the baseline a mixer must beat)."""

    name = "unity"


class EqualLoudnessMixer:
    """Each stem trimmed to the same integrated loudness, then summed (Diff-MST's lowest anchor)."""

    accepts_references = False

    name = "equal-loudness"

    def predict(self, stems: list[Stem], sample_rate: int, *, seed: int = 0) -> MixSettings:
        settings = MonoMixer().predict(stems, sample_rate)
        settings.mixer = self.name
        for stem in stems:
            trim_db, lufs = loudness_trim_db(stem)
            settings.set(stem.name, "trim_db", trim_db)
            settings.notes[stem.name] = [f"trim {trim_db:+.1f} dB: {lufs:.1f} → {NORMALISED_STEM_LUFS:g} LUFS"]
        return settings.clipped()


class RandomMixer:
    """Equal-loudness trims, then seeded random faders (uniform ±12 dB) and pans (uniform −1…1)."""

    accepts_references = False

    name = "random"
    gain_range_db = 12.0

    def predict(self, stems: list[Stem], sample_rate: int, *, seed: int = 0) -> MixSettings:
        settings = EqualLoudnessMixer().predict(stems, sample_rate)
        settings.mixer = self.name
        rng = np.random.default_rng(seed)
        gains = rng.uniform(-self.gain_range_db, self.gain_range_db, size=len(stems))
        pans = rng.uniform(-1.0, 1.0, size=len(stems))
        for stem, gain_db, pan in zip(stems, gains, pans):
            settings.set(stem.name, "gain_db", float(gain_db))
            settings.set(stem.name, "pan", float(pan))
            settings.notes[stem.name].append(f"random fader {gain_db:+.1f} dB, pan {pan:+.2f} (seed {seed})")
        return settings.clipped()
