"""Reverse engineering a mix: the console settings that turn these stems into that mix.

After Colonel & Reiss, "Reverse engineering of a recording mix with differentiable digital
signal processing" (JASA 2021): fit every console parameter by gradient descent so the
differentiable console's output matches the given mix. Steps of :func:`reverse`:

1. **Align** the mix to the stems (:func:`align_mix`): cross-correlate the mono mix with the
   mono sum of the stems, then score the strongest candidate lags by how much of the mix a
   least-squares combination of the stems explains there (lag 0 is always a candidate, and a
   near-tie between candidates goes to the one nearest 0: periodic stems fit almost as well one
   period later), then take the exact best lag within a few samples of it.
   The best lag is reported; a mix that the stems explain poorly (:data:`MIN_CORRELATION`) is
   refused as unrelated, a mix much shorter than the stems as an excerpt, and a mix
   polarity-inverted against the stems is flipped back (with a note).
2. **Start** (:func:`choose_start`): faders, pans and stereo widths by least squares
   (:func:`least_squares_strips`, the console's pan laws as in
   :func:`automix.evaluate.features.estimate_gains_pans`, plus a 2×2 fit per stereo stem for its
   width), EQ flat; or, if it explains the mix clearly better, the same pans with every track's
   EQ curve and fader fitted to its frequency response in the mix (:func:`structured_start`:
   joint least squares per STFT bin, then the console's EQ fitted to the magnitudes); then a
   compressor on every track whose per-frame gain in the mix follows its own level
   (:mod:`automix.reverse.dynamics`), kept if the start explains the mix no worse with them.
3. **Optimise** all parameters (except the pure gains that duplicate the fader: trim and
   make-up, and the master gain) with Adam and the stereo sum/difference MRSTFT loss on the
   most active excerpts, each with a pre-roll so reverb tails and compressor state are
   established before the loss looks (:mod:`automix.refine`).
4. **Report** the fit on the whole song rendered by the full-song renderer and finalize: the
   residual ``10·log10(Σ(rendered − target)² / Σ target²)`` in dB, per-track gain, pan and compressor.
   A fit further from the mix than silence (residual above :data:`MAX_RESIDUAL_DB`) is
   refused and nothing is written.
5. **Ride** (:mod:`automix.reverse.rides`, unless ``automate=False``): where some track's level
   in the mix against the static fit changes between sections by more than
   :data:`~automix.reverse.rides.RIDE_SPREAD_DB`, its fader gets a per-section lane (least-squares
   offsets per section), kept if the whole-song residual drops; steady mixes stay static. The
   refusal of step 4 judges what is written: the ridden fit when rides were kept.

Level: the target mix has its own loudness. The written ``mix.json`` sets ``target_lufs`` to
the target's measured integrated loudness and the true-peak ceiling just above the target's
own true peak, so ``automix render`` reproduces the target's level (finalize then applies
≈ 0 dB and the limiter does not act). Both are clipped to the schema's FINALIZE ranges.
"""

from automix.reverse.align import Alignment, align_mix
from automix.reverse.command import MAX_RESIDUAL_DB, ReverseResult, level_targets, render_fit, reverse
from automix.reverse.fit import DEFAULT_REVERSE_STEPS, fit_settings, residual_db
from automix.reverse.rides import RideFit, fit_rides
from automix.reverse.start import choose_start, initial_settings, least_squares_strips, structured_start

__all__ = [
    "DEFAULT_REVERSE_STEPS", "MAX_RESIDUAL_DB", "Alignment", "ReverseResult", "RideFit", "align_mix", "choose_start",
    "fit_rides", "fit_settings", "initial_settings", "least_squares_strips", "level_targets", "render_fit", "residual_db",
    "reverse", "structured_start",
]
