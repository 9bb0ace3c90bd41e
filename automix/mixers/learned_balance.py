"""A learned balance on top of the rules: the model sets the faders, the rules do the rest.

The rules mixer decides each strip's processing (high-pass, resonance cut, compressor, reverb
send, pan); a balance model (:mod:`automix.models.balance`) predicts how loud each track sits
in the mix relative to the others. The fader then puts each *processed* track there: the
strips are rendered once at unity fader on a few excerpts, their loudness measured, and the
fader makes up the difference, so an EQ cut or a compressor's make-up does not move the
balance the model asked for. Stems the rules leave alone (silence, DC, clicks) stay at unity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from automix.analysis_windows import multitrack_windows
from automix.console.loudness import SILENCE_LUFS, integrated_lufs
from automix.console.render import render_console
from automix.console.schema import SEND_OFF_DB, TRACK
from automix.console.settings import MixSettings
from automix.io.audio import Stem
from automix.mixers.balance_features import song_features, track_features
from automix.mixers.rules import RulesMixer, master_chain

STRIP_EXCERPTS = 3
STRIP_EXCERPT_S = 8.0
"""The processed loudness of each strip is measured on this many excerpts of this length."""


def strip_loudness_lufs(stems: list[Stem], track_params: np.ndarray, sample_rate: int) -> np.ndarray:
    """Each track's loudness after its strip at unity fader, no send, ``(K,)`` LUFS.

    Args:
        stems: the tracks.
        track_params: their strips, ``(K, len(TRACK))`` physical units (faders and sends ignored).
        sample_rate: Hz.

    Measured on :data:`STRIP_EXCERPTS` of the song's most active excerpts (the same for every
    track, so a track's rests count as they do in the song).
    """
    rate = sample_rate
    audio = [np.asarray(s.read(0, s.frames), dtype=np.float32) for s in stems]
    windows, _ = multitrack_windows(audio, rate, STRIP_EXCERPT_S, STRIP_EXCERPTS)
    joined = [np.concatenate([w[k] for w in windows], axis=1) for k in range(len(stems))]
    unity = MixSettings([s.name for s in stems], np.array(track_params, dtype=np.float64), sample_rate=rate)
    for name in unity.track_names:
        unity.set(name, "gain_db", 0.0)
        unity.set(name, "send.reverb_db", SEND_OFF_DB)
    unity.set_fx("reverb.return_db", SEND_OFF_DB)
    _, tracks = render_console(joined, rate, unity, return_tracks=True, workers=1)
    return np.array([integrated_lufs(t, rate) for t in tracks], dtype=np.float64)


class BalanceMixer:
    """The rules' strips with a trained model's faders.

    Args:
        model: a predictor with ``predict(song_features) -> (K,) LU`` (forest or balance net).
        meta: its checkpoint description.
        name: what ``--model`` called it (``mixer`` in ``mix.json``).
    """

    def __init__(self, model: Any, meta: dict[str, Any], name: str) -> None:
        self.model = model
        self.meta = meta
        self.name = name

    def predict_levels(self, stems: list[Stem]) -> np.ndarray:
        """Each track's predicted loudness in the mix relative to the average track, ``(K,)`` LU."""
        rows = [track_features(s.read(0, s.frames), s.sample_rate, s.name) for s in stems]
        levels = np.asarray(self.model.predict(song_features(rows)), dtype=np.float64)
        return levels - levels.mean()

    def predict(self, stems: list[Stem], sample_rate: int, *, seed: int = 0) -> MixSettings:
        settings = RulesMixer().predict(stems, sample_rate, seed=seed)
        settings.mixer = self.name
        names = [s.name for s in stems]
        active = [k for k, n in enumerate(names) if not any(note.startswith("left alone") for note in settings.notes[n])]
        if not active:
            return settings
        chosen = [stems[k] for k in active]
        levels = self.predict_levels(chosen)
        processed = strip_loudness_lufs(chosen, settings.track[active], sample_rate)
        audible = processed > SILENCE_LUFS
        reference = float(np.mean(processed[audible])) if audible.any() else 0.0
        spec = TRACK.spec("gain_db")
        for k, level, lufs in zip(active, levels, processed, strict=True):
            gain_db = float(np.clip(level - (lufs - reference), spec.minimum, spec.maximum)) if lufs > SILENCE_LUFS else 0.0
            settings.set(names[k], "gain_db", gain_db)
            settings.notes[names[k]].append(
                f"{self.name}: sits {level:+.1f} LU from the average track; its strip reads {lufs - reference:+.1f} LU "
                f"at unity, so fader {gain_db:+.1f} dB (replaces the role offset above)")
        for param, value in master_chain([settings.get(names[k], "gain_db") for k in active]).items():
            settings.set_master(param, value)
        return settings.clipped()
