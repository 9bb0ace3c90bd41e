"""Training data for the transformation network: stem excerpts + random strip settings.

Examples are endless: item ``i`` draws from ``numpy.random.default_rng([seed, i])`` a song, an
excerpt, one active stem of it (one channel of a stereo stem), an input level, a crop, and
strip settings; the target is computed in the batch by the DSP console itself
(:func:`dsp_strip`), so the network learns exactly the processors the renderer runs.

Settings are drawn uniformly over each parameter's normalised range (the schema's log or
linear mapping), as in Steinmetz et al. 2021, except that each processor is bypassed with
:data:`BYPASS_PROB` (EQ flat and high-pass at its floor, or compressor ratio 1), and each EQ
band is flat with :data:`FLAT_BAND_PROB`: a console strip is often neutral, and the network
must reproduce the dry signal exactly then.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from automix.console.biquad import eq_sos
from automix.console.compressor import compress, strip_settings
from automix.console.loudness import NORMALISED_STEM_LUFS
from automix.console.schema import EQ_BANDS, TRACK
from automix.console.torch_console import apply_eq
from automix.data.samplers import ACTIVE_BELOW_NORMALISED_DB, CachedSong
from automix.errors import AutomixError
from automix.models.tcn import STRIP_PARAMS

BYPASS_PROB = 0.2
"""Probability that the EQ (and, independently, the compressor) of an example is bypassed."""

FLAT_BAND_PROB = 0.3
"""Probability that one EQ band of an active EQ is left at 0 dB."""

ACTIVE_OUTPUT_DBFS = -50.0
"""An example's output window must reach this RMS (dB full scale, before the input gain): the
spectral-convergence term of MRSTFT divides by the target's magnitude, so a silent target window
gives a loss 10⁴ times the typical one and a gradient that says nothing about the strip."""

DRAWS_PER_ITEM = 16
"""Excerpt draws an item tries before it accepts a quiet window."""

INPUT_LEVEL_RANGE_DB = (-12.0, 12.0)
"""Gain applied to the normalised stem (−23 LUFS) before the strip: the compressor's threshold
is absolute, so the network must see the levels that trims produce."""


def random_strip_params(rng: np.random.Generator) -> np.ndarray:
    """Physical track settings ``(len(TRACK),)``: defaults, with EQ and compressor drawn as above."""
    values = TRACK.defaults()
    normalised = TRACK.to_normalised(values)
    eq_on, comp_on = rng.random() >= BYPASS_PROB, rng.random() >= BYPASS_PROB
    for name in STRIP_PARAMS:
        i = TRACK.index(name)
        if (name.startswith("eq.") and eq_on) or (name.startswith("compressor.") and comp_on):
            normalised[i] = rng.random()
    values = TRACK.from_normalised(normalised)
    if comp_on and values[TRACK.index("compressor.ratio")] < 1.05:
        values[TRACK.index("compressor.ratio")] = 1.05  # "on" must not draw the bypass value
    if not comp_on:
        values[TRACK.index("compressor.ratio")] = 1.0
    for band in EQ_BANDS:
        if not eq_on or rng.random() < FLAT_BAND_PROB:
            values[TRACK.index(f"eq.{band}.gain_db")] = 0.0
    if not eq_on:
        values[TRACK.index("eq.highpass.freq_hz")] = TRACK.spec("eq.highpass.freq_hz").minimum
    return values


def dsp_strip(x: Tensor, track_params: Tensor, sample_rate: int) -> Tensor:
    """The console's EQ → compressor on mono signals: ``x (B, 1, N)``, physical ``track_params
    (B, len(TRACK))`` → ``(B, 1, N)`` (the same functions the differentiable console runs)."""
    y = apply_eq(x, eq_sos(track_params, TRACK, sample_rate), sample_rate).to(x.dtype)
    settings = strip_settings(track_params, TRACK)
    return compress(y, y[:, 0].pow(2), settings, sample_rate)


class StripDataset(Dataset):
    """Endless strip examples from cached song excerpts.

    Item: ``{"audio": (1, input_samples) float32, "strip_params": (len(TRACK),) float64}``.

    Args:
        songs: cached songs (:func:`automix.data.samplers.cache_song`).
        seed: base seed; item ``i`` uses ``default_rng([seed, i])``.
        length: number of items.
        input_samples: samples per example (receptive field + output samples).
        output_samples: the centre window the network outputs, which must be active
            (:data:`ACTIVE_OUTPUT_DBFS`); default the whole example.
    """

    def __init__(self, songs: list[CachedSong], seed: int, length: int, input_samples: int,
                 output_samples: int | None = None):
        floor = NORMALISED_STEM_LUFS - ACTIVE_BELOW_NORMALISED_DB
        self.choices = [(s, e, t) for s in songs for e in range(s.half_power_db.shape[0])
                        for t in range(s.half_power_db.shape[1]) if s.half_power_db[e, t].max() > floor]
        if not self.choices:
            raise AutomixError("no active stem excerpt to train the strip on")
        samples = songs[0].stems().shape[-1]
        if samples < input_samples:
            raise AutomixError(f"cached excerpts hold {samples} samples, the network needs {input_samples}: "
                               "raise data.excerpt_s")
        self.seed, self.length, self.input_samples = seed, length, input_samples
        self.output_samples = input_samples if output_samples is None else output_samples

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, i])
        side = (self.input_samples - self.output_samples) // 2
        floor = 10.0 ** (ACTIVE_OUTPUT_DBFS / 10.0)
        for _ in range(DRAWS_PER_ITEM):
            song, excerpt, track = self.choices[int(rng.integers(len(self.choices)))]
            stems = song.stems()
            channel = int(rng.integers(2)) if song.is_stereo[track] else 0
            start = int(rng.integers(stems.shape[-1] - self.input_samples + 1))
            audio = np.asarray(stems[excerpt, track, channel, start: start + self.input_samples], dtype=np.float32)
            if float(np.mean(np.square(audio[side: side + self.output_samples], dtype=np.float64))) >= floor:
                break
        gain = 10.0 ** (rng.uniform(*INPUT_LEVEL_RANGE_DB) / 20.0)
        return {"audio": torch.from_numpy(audio * np.float32(gain))[None],
                "strip_params": torch.from_numpy(random_strip_params(rng))}


def collate(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {key: torch.stack([it[key] for it in items]) for key in items[0]}
