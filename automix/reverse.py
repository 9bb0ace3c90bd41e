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
   joint least squares per STFT bin, then the console's EQ fitted to the magnitudes).
3. **Optimise** all parameters (except the pure gains that duplicate the fader: trim and
   make-up, and the master gain) with Adam and the stereo sum/difference MRSTFT loss on the
   most active excerpts, each with a pre-roll so reverb tails and compressor state are
   established before the loss looks (:mod:`automix.refine`).
4. **Report** the fit on the whole song rendered by the full-song renderer and finalize: the
   residual ``10·log10(Σ(rendered − target)² / Σ target²)`` in dB, per-track gain and pan.
   A fit further from the mix than silence (residual above :data:`MAX_RESIDUAL_DB`) is
   refused and nothing is written.

Level: the target mix has its own loudness. The written ``mix.json`` sets ``target_lufs`` to
the target's measured integrated loudness and the true-peak ceiling just above the target's
own true peak, so ``automix render`` reproduces the target's level (finalize then applies
≈ 0 dB and the limiter does not act). Both are clipped to the schema's FINALIZE ranges.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal
import torch

from automix.analysis_windows import multitrack_activity, window_starts_samples
from automix.console.loudness import integrated_lufs, true_peak_dbtp
from automix.console.schema import EQ_BANDS, FINALIZE, TRACK
from automix.console.settings import MixSettings, dumps
from automix.errors import AutomixError
from automix.io.audio import (
    check_output,
    is_audio_file,
    load_audio,
    load_stems,
    resample,
    scan_folder,
    write_text_atomic,
)
from automix.refine import optimise_console, stems_tensor

DEFAULT_REVERSE_STEPS = 60
REVERSE_LR = 0.05
REVERSE_PENALTY = 0.001
"""Small pull towards the starting point: parameters the mix cannot reveal (the frequency of
a flat EQ band, the attack of a compressor that never acts) stay neutral, and a broadband
level change goes to the fader rather than to six EQ bands."""

REVERSE_WINDOWS = 3
REVERSE_WINDOW_S = 2.0
PREROLL_S = 0.5
"""Audio before each excerpt that the console processes but the loss ignores."""

LOSS_HOP_FRACTION = 0.5
"""STFT hop of the sum/difference loss as a fraction of the FFT size (half the cost of 25 %)."""

MAX_LAG_S = 2.0
"""Largest offset between the mix and the stems that alignment searches, seconds."""

MIN_CORRELATION = 0.5
"""A mix whose best least-squares fit from the stems correlates less than this is refused."""

MAX_RESIDUAL_DB = 0.0
"""A fit whose re-rendered mix is further from the target than silence is (0 dB) is refused."""

START_SEND_DB = -30.0
"""Reverb sends start here, not at "off": a parameter at the edge of its range sits where the
sigmoid is flat, and the fit could not raise a send in a few dozen steps. −30 dB is faint
enough to leave the starting residual nearly unchanged, and a send the mix does not need
falls towards off."""

CEILING_MARGIN_DB = 0.5
"""The written ceiling sits this far above the target mix's own true peak."""

_CANDIDATE_LAGS = 5
_LAG_TIE = 0.005
"""Fit correlations this close count as a tie, won by the lag nearest 0: a mix bounced from the
same session as its stems is aligned, and periodic stems (a held tone, a loop) fit equally well
one period later."""
MIN_LENGTH_FRACTION = 0.5
"""A mix shorter than this fraction of the stems is refused: it is an excerpt, not their mix."""
_LAG_REFINE = 3  # samples either side of the best candidate checked by the least-squares fit
_FIT_MAX_SAMPLES = 2_000_000  # alignment scoring uses an evenly strided subset beyond this

# Pure gains that duplicate the fader (or the level finalize sets) are not fitted.
REVERSE_FROZEN: dict[str, tuple[str, ...]] = {
    "track": ("trim_db", "compressor.makeup_db"),
    "fx": (),
    "master": ("gain_db", "compressor.makeup_db"),
}


# --------------------------------------------------------------------------------------
# Alignment
# --------------------------------------------------------------------------------------


@dataclass
class Alignment:
    """Where the stems sit in the mix.

    Attributes:
        lag_samples: the mix is late by this many samples (negative: early).
        correlation: correlation between the aligned mix and its least-squares fit from the
            stems (0 unrelated … 1 a pure gain/pan mix).
        inverted: the mix is polarity-inverted against the stems; the aligned mix returned by
            :func:`align_mix` is flipped back (the console has no polarity switch, and a flip of
            the whole mix is inaudible).
    """

    lag_samples: int
    correlation: float
    inverted: bool = False


def _shift(mix: np.ndarray, lag: int, length: int) -> np.ndarray:
    """``out[:, t] = mix[:, t + lag]`` for ``t`` in ``[0, length)``, zeros outside the mix."""
    out = np.zeros((mix.shape[0], length), dtype=np.float32)
    src_lo, src_hi = max(0, lag), min(mix.shape[1], lag + length)
    if src_hi > src_lo:
        out[:, src_lo - lag: src_hi - lag] = mix[:, src_lo:src_hi]
    return out


def _fit_columns(stems: Sequence[np.ndarray], mix: np.ndarray) -> list[np.ndarray]:
    """Least-squares coefficients per mix channel: one column per stem channel.

    Returns ``[left, right]``, each the concatenation over stems of 1 (mono) or 2 (stereo:
    the stem's L then R) coefficients.
    """
    stride = max(1, mix.shape[1] // _FIT_MAX_SAMPLES)
    columns = np.concatenate([s[:, ::stride] for s in stems]).T.astype(np.float64)
    return [np.linalg.lstsq(columns, mix[c, ::stride].astype(np.float64), rcond=None)[0] for c in range(2)]


def _fit_correlation(stems: Sequence[np.ndarray], target: np.ndarray) -> float:
    """Multiple correlation ``√R²`` of the stereo ``target`` from every stem channel (least squares)."""
    stride = max(1, target.shape[1] // _FIT_MAX_SAMPLES)
    columns = np.concatenate([s[:, ::stride] for s in stems]).T.astype(np.float64)
    explained = total = 0.0
    for channel, coef in enumerate(_fit_columns(stems, target)):
        y = target[channel, ::stride].astype(np.float64)
        residual = y - columns @ coef
        explained += float(y @ y - residual @ residual)
        total += float(y @ y)
    return math.sqrt(max(0.0, explained) / total) if total > 0 else 0.0


def align_mix(
    stems: Sequence[np.ndarray], mix: np.ndarray, sample_rate: int, max_lag_s: float = MAX_LAG_S
) -> tuple[np.ndarray, Alignment]:
    """Align ``mix`` to the stems (all at ``sample_rate``) and check that it is made of them.

    Args:
        stems: ``(channels, N)`` arrays of equal length.
        mix: ``(2, M)``; any length.
        max_lag_s: search range of the offset, seconds each way.

    Returns:
        ``(aligned (2, N) float32, alignment)``.

    Raises:
        AutomixError: the aligned mix correlates less than :data:`MIN_CORRELATION` with its
            best fit from the stems (an unrelated mix, or stems of another song).
    """
    n = stems[0].shape[1]
    stem_sum = np.sum([s.mean(axis=0) for s in stems], axis=0)
    mono_mix = mix.mean(axis=0)
    max_lag = int(max_lag_s * sample_rate)
    xcorr = scipy.signal.correlate(mono_mix, stem_sum, mode="full", method="fft")
    lags = np.arange(-(n - 1), mono_mix.shape[0])
    keep = np.abs(lags) <= max_lag
    xcorr, lags = np.abs(xcorr[keep]), lags[keep]
    apart = sample_rate // 1000  # candidates are distinct peaks, at least 1 ms apart
    candidates: list[int] = []
    for index in np.argsort(xcorr)[::-1]:
        if all(abs(lags[index] - c) > apart for c in candidates):
            candidates.append(int(lags[index]))
        if len(candidates) == _CANDIDATE_LAGS:
            break
    if all(abs(c) > apart for c in candidates):
        candidates.append(0)
    lag = _best_candidate({c: _fit_correlation(stems, _shift(mix, c, n)) for c in candidates})
    # Filters shift the cross-correlation peak by a sample or two (phase): the exact best fit
    # around the chosen peak decides (no tie rule here: neighbouring lags always fit alike).
    near = {lag + d: _fit_correlation(stems, _shift(mix, lag + d, n)) for d in range(-_LAG_REFINE, _LAG_REFINE + 1)}
    lag = max(near, key=near.__getitem__)
    correlation = near[lag]
    if correlation < MIN_CORRELATION:
        raise AutomixError(
            f"the mix does not look like a mix of these stems (best fit correlation {correlation:.2f} "
            f"< {MIN_CORRELATION:g}); check that the stems and the mix belong to the same song"
        )
    aligned = _shift(mix, lag, n)
    inverted = float(np.dot(stem_sum, aligned.mean(axis=0))) < 0.0
    return (-aligned if inverted else aligned), Alignment(lag, correlation, inverted)


def _best_candidate(scored: dict[int, float]) -> int:
    """The candidate lag of the highest fit correlation; near-ties (:data:`_LAG_TIE`) between
    these distinct peaks go to the one nearest 0 (a period of a periodic stem apart)."""
    best = max(scored.values())
    return min((lag for lag, c in scored.items() if c >= best - _LAG_TIE), key=lambda lag: (abs(lag), lag))


# --------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------


def least_squares_strips(stems: Sequence[np.ndarray], mix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fader gain, pan and stereo width of every stem in ``mix`` by least squares.

    Like :func:`automix.evaluate.features.estimate_gains_pans` (same pan laws), but a stereo
    stem gets a full 2×2 fit, so its width is estimated too: the console's matrix is
    ``f·[[gL·d, gL·c], [gR·c, gR·d]]`` with ``d = (1 + w)/2``, ``c = (1 − w)/2``, hence
    ``f·gL = a + b``, ``f·gR = c' + d'`` and ``w = (a − b + d' − c') / (a + b + c' + d')``.
    Processing the fit cannot model (EQ, compression, reverb) leaves the best linear fit.

    Returns:
        ``(gains_db, pans, widths)``, each ``(K,)``; widths are 1 for mono stems. Gains of stems
        absent from the mix are floored at the fader's minimum later (``MixSettings.clipped``).
    """
    left, right = _fit_columns(stems, mix)
    gains_db, pans, widths = np.empty(len(stems)), np.zeros(len(stems)), np.ones(len(stems))
    col = 0
    for k, stem in enumerate(stems):
        if stem.shape[0] == 1:
            lo, ro = max(left[col], 0.0), max(right[col], 0.0)
            gain = math.hypot(lo, ro)
            pans[k] = 4.0 / math.pi * math.atan2(ro, lo) - 1.0 if gain > 0 else 0.0
        else:
            a, b, c, d = left[col], left[col + 1], right[col], right[col + 1]
            side_l, side_r = max(a + b, 0.0), max(c + d, 0.0)
            gain = max(side_l, side_r)
            if gain > 0:
                widths[k] = float(np.clip((a - b + d - c) / (side_l + side_r), 0.0, 2.0))
                if side_l >= side_r:  # pan ≤ 0: the right side is √2·sin θ of the fader
                    theta = math.asin(min(1.0, side_r / (gain * math.sqrt(2.0))))
                else:
                    theta = math.acos(min(1.0, side_l / (gain * math.sqrt(2.0))))
                pans[k] = 4.0 * theta / math.pi - 1.0
        gains_db[k] = 20.0 * math.log10(gain) if gain > 1e-6 else -120.0
        col += stem.shape[0]
    return gains_db, np.clip(pans, -1.0, 1.0), widths


def initial_settings(names: list[str], stems: Sequence[np.ndarray], mix: np.ndarray) -> MixSettings:
    """Neutral console with least-squares faders, pans and widths (trim 0), sends at :data:`START_SEND_DB`."""
    gains_db, pans, widths = least_squares_strips(stems, mix)
    settings = MixSettings.neutral(names, mixer="reverse")
    settings.track[:, TRACK.index("gain_db")] = gains_db
    settings.track[:, TRACK.index("pan")] = pans
    settings.track[:, TRACK.index("width")] = widths
    settings.track[:, TRACK.index("send.reverb_db")] = START_SEND_DB
    return settings.clipped()


# --------------------------------------------------------------------------------------
# Structured start: per-track frequency responses → EQ curves and faders
# --------------------------------------------------------------------------------------

INIT_WINDOW_S = 15.0
"""Length of the (most active) excerpt the structured start analyses, seconds."""

RESPONSE_FFT = 4096
RESPONSE_HOP = 1024
RESPONSE_RIDGE = 1e-4
"""Ridge of each bin's least squares, relative to the mean diagonal of its normal matrix."""

RESPONSE_FLOOR_DB = -50.0
"""Bins where a stem is this far below its loudest bin do not constrain its EQ curve."""

EQ_FIT_STEPS = 300
EQ_FIT_STARTS = 6
EQ_FIT_LR = 0.1
EQ_GAIN_PENALTY = 0.002
"""Per dB² of every EQ band's gain: a broadband level change goes to the fader, not to the EQ."""


EQ_START_MARGIN_DB = 3.0
"""The EQ start is taken only if its residual is this much lower than the flat start's: on a stem
with few partials (a synthetic lead) a broad EQ move and a fader move sound alike, and an EQ start
that fits the waveform a little better can put the level on the wrong one (the 3-stem test case:
−15.4 vs −14.2 dB, fader 3.9 dB off after the fit)."""


def _unit_pan_matrices(settings: MixSettings, is_stereo: np.ndarray) -> np.ndarray:
    """``(K, 2, 2)`` pan/width matrices of every track with the fader at 0 dB (mono: column 0)."""
    from automix.console.torch_console import pan_matrix

    params = torch.as_tensor(settings.track, dtype=torch.float64).clone()
    params[:, TRACK.index("gain_db")] = 0.0
    return pan_matrix(params[None], torch.as_tensor(is_stereo)[None])[0].numpy()


def _stft(audio: np.ndarray, n_fft: int = RESPONSE_FFT, hop: int = RESPONSE_HOP) -> torch.Tensor:
    """``(C, n)`` → ``(C, bins, frames)`` complex64 (Hann window, frames centred on ``t·hop``)."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)


def _panned_spectra(stems: Sequence[np.ndarray], matrices: np.ndarray, n_fft: int, hop: int) -> list[torch.Tensor]:
    """Every stem's STFT through its unit-fader pan/width matrix: ``(2, bins, frames)`` each."""
    out = []
    for k, stem in enumerate(stems):
        m = torch.from_numpy(matrices[k][:, : stem.shape[0]]).to(torch.complex64)
        out.append(torch.einsum("oi,ibt->obt", m, _stft(stem, n_fft, hop)))
    return out


def _joint_gains(panned: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """One complex gain per track and bin: least squares of ``target`` on all tracks at once.

    ``panned[k]`` and ``target`` are ``(2, bins, frames)``; returns ``(bins, K)``.
    """
    columns = torch.stack([p.permute(1, 2, 0).reshape(p.shape[1], -1) for p in panned], dim=-1)
    y = target.permute(1, 2, 0).reshape(columns.shape[0], -1, 1)
    normal = columns.mH @ columns  # (bins, K, K)
    ridge = RESPONSE_RIDGE * normal.diagonal(dim1=-2, dim2=-1).real.mean(-1).clamp_min(1e-20)
    normal = normal + ridge[:, None, None] * torch.eye(normal.shape[-1])
    return torch.linalg.solve(normal, columns.mH @ y)[..., 0]


def track_responses(
    stems: Sequence[np.ndarray], target: np.ndarray, matrices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each track's magnitude response in the mix, by multi-input least squares per STFT bin.

    Every stem goes through its pan/width matrix ``matrices[k]`` (unit fader, ``(2, 2)``, mono:
    column 0), and for every bin one complex gain per track is fitted, jointly over the target's two channels and all frames
    (so stems that overlap in frequency are told apart by their different time courses):
    fader × EQ (× the average gain of whatever the model misses). Fitting the stem's channels
    separately instead would be ill-posed when a stereo stem's channels are nearly identical.

    Returns:
        ``(response_db (K, bins), power (K, bins))``; ``power`` is the stem's mean power per bin.
    """
    panned = _panned_spectra(stems, matrices, RESPONSE_FFT, RESPONSE_HOP)
    powers = [p.abs().pow(2).mean(dim=(0, 2)).numpy().astype(np.float64) for p in panned]
    coef = _joint_gains(panned, _stft(target)).numpy()
    return 20.0 * np.log10(np.abs(coef.T) + 1e-9), np.stack(powers)


_EQ_COLUMNS = [i for i, n in enumerate(TRACK.names) if n.startswith("eq.")]


RESPONSE_BANDS_PER_OCTAVE = 6
RESPONSE_MIN_HZ = 25.0


def _log_bands(response_db: np.ndarray, power: np.ndarray, sample_rate: int) -> tuple[np.ndarray, ...]:
    """STFT bins → :data:`RESPONSE_BANDS_PER_OCTAVE` bands per octave (so every octave counts alike).

    Returns ``(freqs_hz (B,), response_db (K, B), weights (K, B))``: each band's power-weighted
    mean frequency and dB response, and a weight √(band power / loudest band) that is 0 below
    :data:`RESPONSE_FLOOR_DB`; weights sum to 1 per track.
    """
    bins = response_db.shape[1]
    freqs = np.arange(bins) * sample_rate / RESPONSE_FFT
    top = 0.45 * sample_rate
    edges = RESPONSE_MIN_HZ * 2.0 ** (np.arange(0, 64) / RESPONSE_BANDS_PER_OCTAVE)
    edges = edges[edges < top]
    band = np.searchsorted(edges, freqs) - 1  # −1 below the first edge, last index above the top
    keep = (band >= 0) & (band < len(edges) - 1)
    used = np.unique(band[keep])
    total = power.sum(axis=1, keepdims=True) + 1e-30
    centre, resp, level = [], [], []
    for b in used:
        sel = keep & (band == b)
        p = power[:, sel] + 1e-30 * total
        centre.append(float(np.sum(freqs[sel] * p.mean(0)) / np.sum(p.mean(0))))
        resp.append(np.sum(response_db[:, sel] * p, axis=1) / p.sum(axis=1))
        level.append(p.sum(axis=1) / sel.sum())
    level_arr = np.stack(level, axis=1)
    rel = level_arr / level_arr.max(axis=1, keepdims=True)
    weights = np.where(10.0 * np.log10(rel + 1e-30) > RESPONSE_FLOOR_DB, np.sqrt(rel), 0.0)
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-30)
    return np.array(centre), np.stack(resp, axis=1), weights


def _response_db_at(sos: torch.Tensor, freqs_hz: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Magnitude response in dB of cascades ``(..., S, 6)`` at ``freqs_hz`` ``(F,)`` → ``(..., F)``."""
    w = freqs_hz.to(torch.float64) * (2.0 * math.pi / sample_rate)
    basis_re = torch.stack([torch.ones_like(w), torch.cos(w), torch.cos(2.0 * w)])
    basis_im = torch.stack([torch.zeros_like(w), -torch.sin(w), -torch.sin(2.0 * w)])
    b, a = sos[..., 0:3], sos[..., 3:6]
    num = (b @ basis_re) ** 2 + (b @ basis_im) ** 2
    den = (a @ basis_re) ** 2 + (a @ basis_im) ** 2
    return (10.0 * torch.log10(num.clamp_min(1e-30) / den.clamp_min(1e-30))).sum(dim=-2)


def fit_eq_curves(
    response_db: np.ndarray, power: np.ndarray, sample_rate: int, *, steps: int = EQ_FIT_STEPS,
    starts: int = EQ_FIT_STARTS, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the console EQ plus a level to measured magnitude responses (no audio involved).

    Loss per track: the weighted mean squared dB error over log-spaced bands (:func:`_log_bands`),
    plus :data:`EQ_GAIN_PENALTY` per dB² of band gain. Several random band-frequency starts run
    in one batch; the best wins.

    Returns:
        ``(track_rows (K, len(TRACK)) with the fitted eq.* columns (others default), level_db (K,))``.
    """
    from automix.console.biquad import eq_sos

    tracks = response_db.shape[0]
    freqs, band_db, weights = _log_bands(response_db, power, sample_rate)
    f = torch.from_numpy(freqs)
    w = torch.from_numpy(np.repeat(weights, starts, axis=0))
    target = torch.from_numpy(np.repeat(band_db, starts, axis=0))

    rng = np.random.default_rng(seed)
    start_rows = np.tile(TRACK.defaults(), (tracks * starts, 1))
    for r in range(tracks * starts):
        if r % starts == 0:
            continue  # the first start keeps the default band frequencies
        for band in EQ_BANDS:
            spec = TRACK.spec(f"eq.{band}.freq_hz")
            start_rows[r, TRACK.index(spec.name)] = math.exp(rng.uniform(math.log(spec.minimum), math.log(spec.maximum)))
    base = torch.from_numpy(start_rows)
    mask = torch.zeros(len(TRACK), dtype=torch.bool)
    mask[_EQ_COLUMNS] = True
    normalised = TRACK.to_normalised(base).clamp(1e-3, 1 - 1e-3)
    logits = torch.nn.Parameter(torch.log(normalised / (1 - normalised)))
    gain_cols = [TRACK.index(f"eq.{b}.gain_db") for b in EQ_BANDS]
    level0 = (w * target).sum(dim=1)
    level = torch.nn.Parameter(level0.clone())
    optimiser = torch.optim.Adam([logits, level], lr=EQ_FIT_LR)

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.where(mask, TRACK.from_normalised(torch.sigmoid(logits)), base)
        model_db = _response_db_at(eq_sos(rows, TRACK, sample_rate), f, sample_rate) + level[:, None]
        per_start = (w * (model_db - target) ** 2).sum(dim=1) + EQ_GAIN_PENALTY * rows[:, gain_cols].pow(2).sum(1)
        return per_start, rows

    for _ in range(steps):
        optimiser.zero_grad()
        per_start, _ = losses()
        per_start.sum().backward()
        optimiser.step()
    with torch.no_grad():
        per_start, rows = losses()
    best = per_start.reshape(tracks, starts).argmin(dim=1).numpy()
    pick = np.arange(tracks) * starts + best
    out = np.tile(TRACK.defaults(), (tracks, 1))
    out[:, _EQ_COLUMNS] = rows.numpy()[pick][:, _EQ_COLUMNS]
    return np.clip(out, TRACK.minimum(), TRACK.maximum()), level.detach().numpy()[pick]


def structured_start(
    flat: MixSettings, stems: Sequence[np.ndarray], target: np.ndarray, sample_rate: int,
    *, window_s: float = INIT_WINDOW_S,
) -> MixSettings:
    """The ``flat`` start (:func:`initial_settings`) with every track's EQ curve and fader from
    its measured response (pans, widths and sends kept).

    Responses come from :func:`track_responses` on the most active ``window_s`` seconds of the
    song (the whole song if shorter), EQ curves and faders from :func:`fit_eq_curves`.
    """
    settings = flat.clipped()  # a copy (flat is in range already)
    n = stems[0].shape[1]
    window = min(n, int(window_s * sample_rate))
    start = window_starts_samples(multitrack_activity(list(stems), sample_rate), sample_rate,
                                  window / sample_rate, 1, n)[0] if window < n else 0
    clip = [s[:, start: start + window] for s in stems]
    is_stereo = np.array([s.shape[0] == 2 for s in stems])
    response_db, power = track_responses(clip, target[:, start: start + window],
                                         _unit_pan_matrices(settings, is_stereo))
    rows, level_db = fit_eq_curves(response_db, power, sample_rate)
    settings.track[:, _EQ_COLUMNS] = rows[:, _EQ_COLUMNS]
    settings.track[:, TRACK.index("gain_db")] = level_db
    return settings.clipped()


def choose_start(
    names: list[str], stems: Sequence[np.ndarray], target: np.ndarray, sample_rate: int, *,
    windows: int = REVERSE_WINDOWS, window_s: float = REVERSE_WINDOW_S,
) -> tuple[MixSettings, str, dict[str, float]]:
    """The better of two starts by the waveform residual on the fit's excerpts (one console pass each).

    ``"flat"`` (:func:`initial_settings`: EQ flat) or ``"eq"`` (:func:`structured_start`). The EQ
    start wins big when the mix was equalised; on a mix without EQ but with a loud reverb, the
    reverb's smearing reads as EQ in the per-bin responses, and the flat start is better. (The
    MRSTFT loss is not the judge: on such a mix it preferred the EQ start, which then fitted worse.)
    The EQ start must be better by :data:`EQ_START_MARGIN_DB`.

    Returns:
        ``(settings, name of the chosen start, residual in dB of each start)``.
    """
    from automix.console.torch_console import mix_console

    flat = initial_settings(names, stems, target)
    if stems[0].shape[1] < 2 * RESPONSE_FFT:  # too short for the per-bin responses
        return flat, "flat", {}
    starts = {"flat": flat, "eq": structured_start(flat, stems, target, sample_rate)}
    stem_windows, target_windows, preroll, _ = excerpt_batch(stems, target, sample_rate, windows, window_s)
    batch, is_stereo = stems_tensor(stem_windows)
    count = batch.shape[0]

    def residual(settings: MixSettings) -> float:
        def params(values: np.ndarray) -> torch.Tensor:
            tensor = torch.as_tensor(values, dtype=torch.float32)
            return tensor.unsqueeze(0).expand(count, *tensor.shape)

        with torch.no_grad():
            mixed = mix_console(batch, is_stereo, params(settings.track), params(settings.fx),
                                params(settings.master), sample_rate)
        return residual_db(mixed[..., preroll:].numpy(), target_windows.numpy())

    residuals = {name: residual(start) for name, start in starts.items()}
    best = "eq" if residuals["eq"] <= residuals["flat"] - EQ_START_MARGIN_DB else "flat"
    return starts[best], best, residuals


def residual_db(rendered: np.ndarray, target: np.ndarray) -> float:
    """``10·log10(Σ(rendered − target)² / Σ target²)`` over the common length, dB."""
    n = min(rendered.shape[-1], target.shape[-1])
    error = np.sum((rendered[..., :n].astype(np.float64) - target[..., :n]) ** 2)
    energy = np.sum(target[..., :n].astype(np.float64) ** 2)
    return 10.0 * math.log10(max(error, 1e-30) / max(energy, 1e-30))


def excerpt_batch(
    stems: Sequence[np.ndarray], target: np.ndarray, sample_rate: int, count: int, window_s: float,
    preroll_s: float = PREROLL_S,
) -> tuple[list[list[np.ndarray]], torch.Tensor, int, list[int]]:
    """The most active excerpts of the stems (with pre-roll) and the matching target excerpts.

    Returns:
        ``(stem_windows, target (W, 2, window), preroll_samples, starts)``; the stems'
        windows are ``preroll + window`` samples long and start ``preroll`` before ``starts``.
    """
    n = stems[0].shape[1]
    window = min(int(window_s * sample_rate), n)
    preroll = int(preroll_s * sample_rate)
    starts = window_starts_samples(multitrack_activity(list(stems), sample_rate), sample_rate,
                                   window / sample_rate, count, n)
    stem_windows, targets = [], []
    for start in starts:
        lo = start - preroll
        stem_windows.append([_shift(s, lo, preroll + window) for s in stems])
        targets.append(_shift(target, start, window))
    return stem_windows, torch.from_numpy(np.stack(targets)), preroll, starts


def fit_settings(
    stems: Sequence[np.ndarray], target: np.ndarray, init: MixSettings, sample_rate: int, *,
    steps: int = DEFAULT_REVERSE_STEPS, lr: float = REVERSE_LR, penalty: float = REVERSE_PENALTY,
    windows: int = REVERSE_WINDOWS, window_s: float = REVERSE_WINDOW_S,
    progress: Callable[[int, float], None] | None = None,
):
    """Optimise ``init`` so the console turns ``stems`` into the aligned ``target`` (sum/diff MRSTFT).

    Returns:
        :class:`automix.refine.OptimiseResult`.
    """
    from automix.train.losses import SumDiffSTFTLoss

    stem_windows, target_windows, preroll, _ = excerpt_batch(stems, target, sample_rate, windows, window_s)
    batch, is_stereo = stems_tensor(stem_windows)
    loss = SumDiffSTFTLoss(hop_fraction=LOSS_HOP_FRACTION)

    def loss_fn(mix: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"sum_diff_mrstft": loss(mix[..., preroll:], target_windows)}

    return optimise_console(batch, is_stereo, init, sample_rate, loss_fn, steps=steps, lr=lr, penalty=penalty,
                            frozen=REVERSE_FROZEN, progress=progress)


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


_START_LABELS = {"flat": "start: least-squares faders/pans, EQ flat", "eq": "start: fitted EQ curves and faders"}


@dataclass
class ReverseResult:
    """What :func:`reverse` found (``--json`` prints :meth:`to_json`)."""

    params_path: Path
    mix_path: Path
    tracks: list[str]
    sample_rate: int
    lag_samples: int
    correlation: float
    steps: int
    start: str
    loss_before: float
    loss_after: float
    residual_db_initial: float
    residual_db: float
    target_lufs: float
    ceiling_dbtp: float
    gains_db: list[float]
    pans: list[float]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def r(x: float, digits: int = 2) -> float:
            return round(float(x), digits)

        return {
            "params": str(self.params_path), "mix": str(self.mix_path), "sample_rate": self.sample_rate,
            "lag_samples": self.lag_samples, "lag_s": r(self.lag_samples / self.sample_rate, 4),
            "correlation": r(self.correlation, 3), "steps": self.steps, "start": self.start,
            "loss_before": r(self.loss_before, 4), "loss_after": r(self.loss_after, 4),
            "residual_db_initial": r(self.residual_db_initial), "residual_db": r(self.residual_db),
            "target_lufs": r(self.target_lufs), "ceiling_dbtp": r(self.ceiling_dbtp),
            "tracks": [{"name": n, "gain_db": r(g), "pan": r(p, 3)}
                       for n, g, p in zip(self.tracks, self.gains_db, self.pans)],
            "seconds": r(self.seconds), "notes": list(self.notes),
        }

    def report(self) -> str:
        """The fit report printed by ``automix reverse`` (several lines)."""
        width = max(len(n) for n in self.tracks)
        lines = [
            (f"aligned: mix offset {self.lag_samples} samples ({self.lag_samples / self.sample_rate * 1000:.1f} ms), "
            f"fit correlation {self.correlation:.3f}"),
            (f"residual: {self.residual_db_initial:.1f} dB ({_START_LABELS[self.start]}) → {self.residual_db:.1f} dB "
            f"after {self.steps} steps (loss {self.loss_before:.3f} → {self.loss_after:.3f})"),
            f"level: target {self.target_lufs:.1f} LUFS, ceiling {self.ceiling_dbtp:.1f} dBTP",
            f"{'track':<{width}}  gain dB    pan",
        ]
        lines += [f"{n:<{width}}  {g:+7.2f}  {p:+.3f}" for n, g, p in zip(self.tracks, self.gains_db, self.pans)]
        return "\n".join(lines)


def _stereo(audio: np.ndarray) -> np.ndarray:
    return np.concatenate([audio, audio]) if audio.shape[0] == 1 else audio


def render_fit(stems: Sequence[np.ndarray], settings: MixSettings, sample_rate: int) -> np.ndarray:
    """What ``automix render`` makes of ``settings``: the full-song console, then finalize."""
    from automix.console.finalize import finalize
    from automix.console.render import render_console

    mixed = render_console(list(stems), sample_rate, settings)
    final, _ = finalize(mixed, sample_rate, settings.target_lufs, settings.ceiling_dbtp)
    return final


def level_targets(mix: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """``(target_lufs, ceiling_dbtp)`` that make finalize reproduce ``mix``'s own level (clipped to range)."""
    lufs_spec, ceiling_spec = FINALIZE.spec("target_lufs"), FINALIZE.spec("ceiling_dbtp")
    lufs = float(np.clip(integrated_lufs(mix, sample_rate), lufs_spec.minimum, lufs_spec.maximum))
    peak = float(true_peak_dbtp(mix, sample_rate)) + CEILING_MARGIN_DB
    return lufs, float(np.clip(peak, ceiling_spec.minimum, ceiling_spec.maximum))


def reverse(
    stems_dir: str | Path,
    mix_path: str | Path,
    out_json: str | Path,
    *,
    steps: int = DEFAULT_REVERSE_STEPS,
    sample_rate: int | None = None,
    windows: int = REVERSE_WINDOWS,
    window_s: float = REVERSE_WINDOW_S,
    force: bool = False,
    progress: Callable[[str, float], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> ReverseResult:
    """Estimate the console settings that turn the stems in ``stems_dir`` into ``mix_path``.

    Args:
        stems_dir: folder of stems.
        mix_path: the mix (any format, rate, mono or stereo).
        out_json: where to write the settings (a ``mix.json`` that ``automix render`` renders).
        steps: optimisation steps (0 = the start only: least-squares pans/widths, EQ curves, faders).
        sample_rate: analysis/render rate; None = the most common stem rate.
        windows, window_s: how many of the most active excerpts the fit uses, and their length.
        force: overwrite ``out_json``.
        progress: ``(step name, fraction)`` callback; log: one-line notes.

    Raises:
        AutomixError: bad inputs, an unrelated mix, an existing output without ``force``.
    """
    started = time.perf_counter()
    mix_path, out_json = Path(mix_path), Path(out_json)
    if steps < 0:
        raise AutomixError(f"--steps {steps}: expected 0 or more")
    files, _ = scan_folder(stems_dir)
    if is_audio_file(out_json):  # next time it would be read as a stem (or mistaken for a mix)
        raise AutomixError(f"{out_json}: the settings are written as JSON; name the file .json")
    check_output(out_json, force, [*files, mix_path])

    def step(name: str, fraction: float) -> None:
        if progress is not None:
            progress(name, fraction)

    step("load", 0.0)
    stems, rate, notes = load_stems(stems_dir, sample_rate, log)
    mix, mix_rate = load_audio(mix_path)
    if mix_rate != rate:
        notes.append(f"resampled the mix from {mix_rate} Hz to {rate} Hz")
        mix = resample(mix, mix_rate, rate)
    if mix.shape[0] == 1:
        notes.append("the mix is mono: pans cannot be recovered")
    mix = _stereo(mix)
    audio = [s.audio for s in stems]
    stems_s, mix_s = audio[0].shape[1] / rate, mix.shape[1] / rate
    if mix_s < MIN_LENGTH_FRACTION * stems_s:
        raise AutomixError(f"{mix_path}: the mix is {mix_s:.1f} s long, the stems {stems_s:.1f} s; "
                           "give the mix of the whole song (reverse fits the stems' full length)")
    names = [s.name for s in stems]
    step("load", 1.0)

    step("align", 0.0)
    target, alignment = align_mix(audio, mix, rate)
    if alignment.inverted:
        notes.append("the mix is polarity-inverted against the stems: fitted (and residuals measured) "
                      "with its polarity flipped back")
    step("align", 1.0)
    step("start", 0.0)
    init, start_name, _ = choose_start(names, audio, target, rate, windows=windows, window_s=window_s)
    step("start", 1.0)
    result = fit_settings(audio, target, init, rate, steps=steps, windows=windows, window_s=window_s,
                          progress=lambda i, _loss: step("fit", i / max(steps, 1)))
    settings = result.settings
    settings.mixer = "reverse"
    settings.sample_rate = rate
    lufs, ceiling = level_targets(mix, rate)
    for s in (init, settings):
        s.finalize[FINALIZE.index("target_lufs")] = lufs
        s.finalize[FINALIZE.index("ceiling_dbtp")] = ceiling
    settings = settings.clipped().rounded()  # report exactly what the JSON will render

    step("render", 0.0)
    residual_initial = residual_db(render_fit(audio, init.rounded(), rate), target)
    residual = residual_db(render_fit(audio, settings, rate), target)
    step("render", 1.0)
    if residual > MAX_RESIDUAL_DB:
        raise AutomixError(
            f"the fit does not reproduce the mix (residual {residual:+.1f} dB > {MAX_RESIDUAL_DB:g} dB, "
            "further from it than silence); the mix may use processing the console cannot model, or stems "
            "it does not contain; nothing written")
    write_text_atomic(out_json, dumps(settings), force=force, protect=[*files, mix_path])
    for note in notes:
        if log is not None and note.startswith(("resampled the mix", "the mix is mono", "the mix is polarity")):
            log(note)
    return ReverseResult(
        params_path=out_json, mix_path=mix_path, tracks=names, sample_rate=rate,
        lag_samples=alignment.lag_samples, correlation=alignment.correlation, steps=steps, start=start_name,
        loss_before=result.terms["sum_diff_mrstft"][0], loss_after=result.terms["sum_diff_mrstft"][-1],
        residual_db_initial=residual_initial, residual_db=residual, target_lufs=lufs, ceiling_dbtp=ceiling,
        gains_db=[float(v) for v in settings.track[:, TRACK.index("gain_db")]],
        pans=[float(v) for v in settings.track[:, TRACK.index("pan")]],
        seconds=time.perf_counter() - started, notes=notes,
    )
