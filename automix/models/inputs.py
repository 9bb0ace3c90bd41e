"""How stems and references become a model's input: the same rules for training and inference.

Stems are trimmed to :data:`~automix.console.loudness.NORMALISED_STEM_LUFS` (the trim the
rule-based and baseline mixers also write), references are normalised to
:data:`REFERENCE_LUFS`, and whatever a model is given is clipped to ±:data:`MODEL_INPUT_LIMIT`.
NumPy only: the torch-free default mixer uses the stem trim too. :func:`model_stem` is the
whole preparation of one stem for a network at inference (trim, clip, resample), shared by the
console models (:mod:`automix.models.mixer`) and the end-to-end ones
(:mod:`automix.models.direct_mixer`).
"""

from __future__ import annotations

import numpy as np

from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs
from automix.console.schema import TRACK
from automix.io.resampling import resample

REFERENCE_LUFS = -16.0
"""References are normalised to this loudness before analysis, in training
(:mod:`automix.data.samplers`), in the held-out checks, in style transfer and in the model
mixer: about what 8–16 stems at −23 LUFS with typical faders sum to before the master stage
(Diff-MST analyses its references at a fixed loudness too)."""

REFERENCE_GAIN_LIMIT_DB = 40.0
"""Most a reference is turned up or down on the way to :data:`REFERENCE_LUFS` (a near-silent
reference is not boosted into noise; an absurdly loud one is still brought down a lot)."""

MODEL_INPUT_LIMIT = 1e3
"""Largest sample magnitude a model is given (+60 dBFS, the loader's damaged-sample limit).

After the trim, real stems sit near −23 LUFS with peaks well under 0 dBFS, so this clip never
touches them; it only bounds stems whose level is beyond what the trim range (±48 dB) can bring
back. The model then sees a very loud stem (its prediction turns it down as far as it learned),
and every power the encoders compute stays far inside float32 (|x|² · n_fft ≈ 1e9)."""


def stem_trim_db(stem_lufs: float) -> float:
    """The trim (dB) that brings a stem of integrated loudness ``stem_lufs`` (LUFS) to
    :data:`NORMALISED_STEM_LUFS`, clipped to the schema's trim range (a near-silent stem cannot
    be boosted forever)."""
    spec = TRACK.spec("trim_db")
    return float(np.clip(NORMALISED_STEM_LUFS - stem_lufs, spec.minimum, spec.maximum))


def reference_gain_db(reference_lufs: float) -> float:
    """The gain (dB) that brings a reference of ``reference_lufs`` (LUFS) to :data:`REFERENCE_LUFS`,
    within ±:data:`REFERENCE_GAIN_LIMIT_DB` (a silent reference, −inf LUFS, gets the full boost
    of silence: it stays silent)."""
    return float(np.clip(REFERENCE_LUFS - reference_lufs, -REFERENCE_GAIN_LIMIT_DB, REFERENCE_GAIN_LIMIT_DB))


def scaled_for_model(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """``audio`` ``(channels, samples)`` times ``gain_db`` (dB), as float32 clipped to
    ±:data:`MODEL_INPUT_LIMIT`. The product is formed in float64, so neither a huge input
    nor a huge gain can overflow on the way; NaN (never produced by the loader) becomes 0."""
    scaled = np.asarray(audio, dtype=np.float64) * 10.0 ** (float(gain_db) / 20.0)
    # In place: a long stem's float64 copy is large enough without two more.
    np.nan_to_num(scaled, copy=False, nan=0.0, posinf=MODEL_INPUT_LIMIT, neginf=-MODEL_INPUT_LIMIT)
    return np.clip(scaled, -MODEL_INPUT_LIMIT, MODEL_INPUT_LIMIT, out=scaled).astype(np.float32)


def model_stem(samples: np.ndarray, sample_rate: int, model_rate: int) -> tuple[np.ndarray, float]:
    """One stem ``(channels, samples)`` at ``sample_rate`` prepared for a network running at
    ``model_rate``: trimmed to :data:`NORMALISED_STEM_LUFS` (loudness measured on the whole
    stem, in float64: finite for any finite input), clipped (:func:`scaled_for_model`), then
    resampled. Returns the float32 audio and the trim in dB.

    The trim comes before resampling (the resampler is linear, so the order does not matter for
    real stems) so that the clip bounds what the resampler and the model receive."""
    trim_db = stem_trim_db(float(integrated_lufs(samples, sample_rate)))
    return resample(scaled_for_model(samples, trim_db), sample_rate, model_rate), trim_db


def console_stereo(audio: np.ndarray) -> np.ndarray:
    """``(1 or 2, n)`` audio as the ``(2, n)`` float32 the networks take: a mono stem on channel 0,
    channel 1 silent (the network is told which stems are mono)."""
    out = np.zeros((2, audio.shape[-1]), dtype=np.float32)
    out[: audio.shape[0]] = audio
    return out
