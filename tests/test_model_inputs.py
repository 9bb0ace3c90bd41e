"""The one preparation of a stem for a network at inference (:func:`automix.models.inputs.model_stem`).

Trim to the normalised stem loudness, clip to the model input limit, resample to the model's
rate; the console models and the end-to-end models both use it (no copy of their own).
"""

from __future__ import annotations

import numpy as np

from automix.console.loudness import NORMALISED_STEM_LUFS, integrated_lufs
from automix.console.schema import TRACK
from automix.models import direct_mixer, inputs, mixer
from automix.models.inputs import MODEL_INPUT_LIMIT, console_stereo, model_stem


def _tone(rate: int, seconds: float = 2.0, level: float = 0.1, channels: int = 2) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = level * np.sin(2 * np.pi * 440.0 * t)
    return np.tile(x, (channels, 1)).astype(np.float32)


def test_a_stem_is_trimmed_to_the_normalised_loudness_and_resampled():
    x = _tone(44100)
    out, trim_db = model_stem(x, 44100, 22050)
    assert out.dtype == np.float32 and out.shape == (2, 44100)
    assert abs(trim_db - (NORMALISED_STEM_LUFS - float(integrated_lufs(x, 44100)))) < 1e-9
    assert abs(float(integrated_lufs(out, 22050)) - NORMALISED_STEM_LUFS) < 0.2


def test_a_silent_stem_stays_silent_and_a_huge_one_is_clipped():
    silent, trim_db = model_stem(np.zeros((1, 16000), dtype=np.float32), 16000, 16000)
    assert 0 < trim_db <= TRACK.spec("trim_db").maximum and not silent.any()
    huge, _ = model_stem(np.full((1, 16000), 1e30, dtype=np.float64), 16000, 8000)
    # clipped before the resampler, whose ringing on the clipped edge adds a little (Gibbs), no more
    assert np.isfinite(huge).all() and np.abs(huge).max() <= MODEL_INPUT_LIMIT * 1.2


def test_a_mono_stem_sits_on_channel_0_with_channel_1_silent():
    mono = _tone(8000, channels=1)
    both = console_stereo(mono)
    assert both.shape == (2, mono.shape[1]) and np.array_equal(both[0], mono[0]) and not both[1].any()


def test_both_kinds_of_model_mixer_use_the_shared_preparation(monkeypatch):
    assert mixer.model_stem is inputs.model_stem and direct_mixer.model_stem is inputs.model_stem
    assert not hasattr(mixer, "_stereo")  # the copy that used to live there
    assert "integrated_lufs" not in vars(direct_mixer) and "stem_trim_db" not in vars(direct_mixer)
