"""``ModelMixer``: a trained controller behind the :class:`automix.mixers.base.Mixer` protocol.

Inference mirrors training exactly: every stem is trimmed to :data:`NORMALISED_STEM_LUFS`
(measured on the whole stem, the trim is written into the settings), resampled to the
model's analysis rate, and the model looks at the most active excerpts of the song (not its
first seconds), each as long as the excerpts it was trained on. Normalised predictions are
combined by the median over the excerpts (one odd excerpt, e.g. a break or a fill, cannot
drag the mix) and mapped to physical units through the schema. With several references,
each one is paired with every excerpt of the song and the per-reference medians are
averaged, so every reference weighs the same.

The input normalisation is safe for any finite audio: levels are measured and gains applied
in float64, and what the model sees is clipped to ±:data:`MODEL_INPUT_LIMIT` (a stem far
louder than the trim range can correct, e.g. a broken render at +569 dBFS, would otherwise
overflow the float32 spectrogram and make every prediction NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from automix.analysis_windows import multitrack_windows, signal_windows
from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs
from automix.console.schema import FX, MASTER, TRACK
from automix.console.settings import MixSettings
from automix.errors import AutomixError
from automix.io import Stem, resample
from automix.models.inputs import console_stereo, model_stem, reference_gain_db, scaled_for_model

ANALYSIS_WINDOWS = 3
"""How many excerpts of the song the model looks at (median of their predictions)."""

def input_seconds(meta: dict[str, Any]) -> float:
    """Length of the excerpts the model was trained on (Method 1/2 use half the cached excerpt)."""
    data = meta.get("training", {}).get("config", {}).get("data", {})
    excerpt_s = float(data.get("excerpt_s", 4.0))
    return excerpt_s if str(data.get("method", "1")) == "supervised" else excerpt_s / 2.0


BALANCE_PARAMS = ("gain_db", "pan", "width")
"""What a model trained with ``loss.render: balance`` controls; the rest stays neutral."""


def restrict_to_trained(track: np.ndarray, fx: np.ndarray, master: np.ndarray, meta: dict[str, Any]
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical ``(track, fx, master)`` with the settings the model never learned reset to neutral.

    A model trained with the balance-only renderer had no gradient for EQ, compressor,
    sends or master; its outputs there are untrained, so they are replaced by defaults.
    """
    render = meta.get("training", {}).get("config", {}).get("loss", {}).get("render", "console")
    if render != "balance":
        return track, fx, master
    neutral = np.tile(TRACK.defaults(), (track.shape[0], 1))
    for name in BALANCE_PARAMS:
        neutral[:, TRACK.index(name)] = track[:, TRACK.index(name)]
    neutral[:, TRACK.index("trim_db")] = track[:, TRACK.index("trim_db")]
    return neutral, FX.defaults(), MASTER.defaults()


class ModelMixer:
    """Predicts console settings with a DMC or MST model.

    Args:
        model: a loaded controller (eval mode).
        meta: the checkpoint description (``load_checkpoint``'s second value).
        name: what ``--model`` called it; recorded as ``mixer`` in ``mix.json``.
        device: where to run the model.
    """

    accepts_references = True
    """Both controllers take reference excerpts (MST attends to them; DMC gets them and ignores them)."""

    def __init__(self, model: nn.Module, meta: dict[str, Any], name: str, device: str | torch.device = "cpu"):
        self.model = model.eval()
        self.meta = meta
        self.name = name
        self.device = torch.device(device)
        self.rate_hz = int(model.config.sample_rate_hz)
        self.window_s = input_seconds(meta)

    def _reference_windows(self, reference: np.ndarray, sample_rate: int, count: int) -> torch.Tensor:
        """``count`` excerpts ``(count, 2, samples)`` of one reference at :data:`REFERENCE_LUFS` (cycled if it has fewer)."""
        if not isinstance(reference, np.ndarray) or reference.ndim != 2 or reference.shape[0] not in (1, 2):
            raise AutomixError("a reference must be a (channels, samples) array with 1 or 2 channels")
        x = console_stereo(resample(np.asarray(reference, dtype=np.float32), sample_rate, self.rate_hz))
        if reference.shape[0] == 1:
            x[1] = x[0]
        lufs = float(integrated_lufs(x, self.rate_hz))  # measured in float64: finite for any finite input
        gain_db = reference_gain_db(lufs)
        picked, _ = signal_windows(scaled_for_model(x, gain_db), self.rate_hz, self.window_s, count)
        return torch.from_numpy(np.stack([picked[i % len(picked)] for i in range(count)]))

    @torch.no_grad()
    def predict(self, stems: list[Stem], sample_rate: int, *, seed: int = 0,
                references: list[np.ndarray] | None = None) -> MixSettings:
        """Settings for ``stems`` (all at ``sample_rate``); ``references`` are optional stereo
        ``(channels, samples)`` arrays at ``sample_rate`` whose style to follow (MST only)."""
        if not stems:
            raise AutomixError("no stems to mix")
        trims_db, audio = [], []
        for stem in stems:  # (a streamed stem reads the whole file at stem.audio: read it once)
            x, trim_db = model_stem(stem.audio, stem.sample_rate, self.rate_hz)
            audio.append(x)
            trims_db.append(trim_db)
        windows, _ = multitrack_windows(audio, self.rate_hz, self.window_s, ANALYSIS_WINDOWS)
        batch = torch.from_numpy(np.stack([np.stack([console_stereo(s) for s in w]) for w in windows]))
        b, t = batch.shape[:2]
        is_stereo = torch.tensor([s.channels == 2 for s in stems]).expand(b, t)
        mask = torch.ones(b, t, dtype=torch.bool)
        args = (batch.to(self.device), is_stereo.to(self.device), mask.to(self.device))
        outputs = [self.model(*args, None)] if not references else [
            self.model(*args, self._reference_windows(ref, sample_rate, b).to(self.device)) for ref in references
        ]

        def combined(field: str) -> np.ndarray:
            per_reference = [np.median(getattr(o, field).double().cpu().numpy(), axis=0) for o in outputs]
            return np.mean(per_reference, axis=0)

        track = TRACK.from_normalised(combined("track"))
        track[:, TRACK.index("trim_db")] = trims_db
        track, fx, master = restrict_to_trained(
            track, FX.from_normalised(combined("fx")), MASTER.from_normalised(combined("master")), self.meta)
        settings = MixSettings([s.name for s in stems], track, fx, master, mixer=self.name, sample_rate=sample_rate)
        for i, stem in enumerate(stems):
            note = f"trim {trims_db[i]:+.1f} dB to {NORMALISED_STEM_LUFS:g} LUFS; {self.name} predicted the rest"
            settings.notes[stem.name] = [note]
        return settings.clipped()
