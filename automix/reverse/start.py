"""The starting point of a reverse fit (step 2 of :mod:`automix.reverse`): faders, pans and
widths by least squares, or with every track's EQ curve fitted to its measured frequency
response, whichever explains the mix clearly better."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from automix.analysis_windows import multitrack_activity, window_starts_samples
from automix.console.biquad import sos_magnitude_db
from automix.console.schema import EQ_BANDS, TRACK
from automix.console.settings import MixSettings
from automix.refine import stems_tensor
from automix.reverse.align import fit_columns
from automix.reverse.dynamics import guess_compressors, hann_stft, with_compressors
from automix.reverse.fit import REVERSE_WINDOW_S, REVERSE_WINDOWS, excerpt_batch, residual_db

START_SEND_DB = -30.0
"""Reverb sends start here, not at "off": a parameter at the edge of its range sits where the
sigmoid is flat, and the fit could not raise a send in a few dozen steps. −30 dB is faint
enough to leave the starting residual nearly unchanged, and a send the mix does not need
falls towards off."""

START_HIGHPASS_HZ = 16.0
"""High-passes start here, not at their 10 Hz minimum, for the same reason as the sends: at the
edge of its range the cutoff could not move, and a fit from the flat start never found the 35 Hz
high-pass on a kick (measured: song_00061 of the full benchmark). At 16 Hz the 12 dB/oct filter
takes 0.3 dB off 40 Hz."""


_WIDTH, _PAN = TRACK.spec("width"), TRACK.spec("pan")

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
    left, right = fit_columns(stems, mix)
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
                widths[k] = float(np.clip((a - b + d - c) / (side_l + side_r), _WIDTH.minimum, _WIDTH.maximum))
                if side_l >= side_r:  # pan ≤ 0: the right side is √2·sin θ of the fader
                    theta = math.asin(min(1.0, side_r / (gain * math.sqrt(2.0))))
                else:
                    theta = math.acos(min(1.0, side_l / (gain * math.sqrt(2.0))))
                pans[k] = 4.0 * theta / math.pi - 1.0
        gains_db[k] = 20.0 * math.log10(gain) if gain > 1e-6 else -120.0
        col += stem.shape[0]
    return gains_db, np.clip(pans, _PAN.minimum, _PAN.maximum), widths


def initial_settings(names: list[str], stems: Sequence[np.ndarray], mix: np.ndarray) -> MixSettings:
    """Neutral console with least-squares faders, pans and widths (trim 0), sends at :data:`START_SEND_DB`,
    high-passes at :data:`START_HIGHPASS_HZ`."""
    gains_db, pans, widths = least_squares_strips(stems, mix)
    settings = MixSettings.neutral(names, mixer="reverse")
    settings.track[:, TRACK.index("gain_db")] = gains_db
    settings.track[:, TRACK.index("pan")] = pans
    settings.track[:, TRACK.index("width")] = widths
    settings.track[:, TRACK.index("send.reverb_db")] = START_SEND_DB
    settings.track[:, TRACK.index("eq.highpass.freq_hz")] = START_HIGHPASS_HZ
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

RANDOM_HIGHPASS_MAX_HZ = 300.0
"""The random starts of the EQ-curve fit put the high-pass anywhere from 16 Hz to here (log-uniform):
like the band frequencies, a cutoff far from where it belongs is not found by the descent."""

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
    from automix.console.design import pan_matrix

    params = np.array(settings.track, dtype=np.float64)
    params[:, TRACK.index("gain_db")] = 0.0
    return pan_matrix(params, np.asarray(is_stereo, dtype=bool))


def _panned_spectra(stems: Sequence[np.ndarray], matrices: np.ndarray, n_fft: int, hop: int) -> list[torch.Tensor]:
    """Every stem's STFT through its unit-fader pan/width matrix: ``(2, bins, frames)`` each."""
    out = []
    for k, stem in enumerate(stems):
        m = torch.from_numpy(matrices[k][:, : stem.shape[0]]).to(torch.complex64)
        out.append(torch.einsum("oi,ibt->obt", m, hann_stft(stem, n_fft, hop)))
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
    coef = _joint_gains(panned, hann_stft(target, RESPONSE_FFT, RESPONSE_HOP)).numpy()
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


def fit_eq_curves(
    response_db: np.ndarray, power: np.ndarray, sample_rate: int, *, steps: int = EQ_FIT_STEPS,
    starts: int = EQ_FIT_STARTS, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the console EQ plus a level to measured magnitude responses (no audio involved).

    Loss per track: the weighted mean squared dB error over log-spaced bands (:func:`_log_bands`),
    plus :data:`EQ_GAIN_PENALTY` per dB² of band gain. Several random band-frequency (and high-pass) starts run
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
    start_rows[:, TRACK.index("eq.highpass.freq_hz")] = START_HIGHPASS_HZ
    for r in range(tracks * starts):
        if r % starts == 0:
            continue  # the first start keeps the default band frequencies and the 16 Hz high-pass
        for band in EQ_BANDS:
            spec = TRACK.spec(f"eq.{band}.freq_hz")
            start_rows[r, TRACK.index(spec.name)] = math.exp(rng.uniform(math.log(spec.minimum), math.log(spec.maximum)))
        start_rows[r, TRACK.index("eq.highpass.freq_hz")] = math.exp(
            rng.uniform(math.log(START_HIGHPASS_HZ), math.log(RANDOM_HIGHPASS_MAX_HZ)))
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
        model_db = sos_magnitude_db(eq_sos(rows, TRACK, sample_rate), f, sample_rate) + level[:, None]
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


def analysis_excerpt(stems: Sequence[np.ndarray], target: np.ndarray, sample_rate: int,
                     window_s: float = INIT_WINDOW_S) -> tuple[list[np.ndarray], np.ndarray]:
    """The most active ``window_s`` seconds of the stems and the aligned mix (all of them if shorter)."""
    n = stems[0].shape[1]
    window = min(n, int(window_s * sample_rate))
    start = window_starts_samples(multitrack_activity(list(stems), sample_rate), sample_rate,
                                  window / sample_rate, 1, n)[0] if window < n else 0
    return [s[:, start: start + window] for s in stems], target[:, start: start + window]


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
    clip, target_clip = analysis_excerpt(stems, target, sample_rate, window_s)
    is_stereo = np.array([s.shape[0] == 2 for s in stems])
    response_db, power = track_responses(clip, target_clip, _unit_pan_matrices(settings, is_stereo))
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
    The EQ start must be better by :data:`EQ_START_MARGIN_DB`. Then the tracks the mix shows
    compressed get a compressor (:mod:`automix.reverse.dynamics`; the fit cannot switch one on
    itself), kept if the waveform residual is no worse with them (name ``"<start>+compressors"``).

    Returns:
        ``(settings, name of the chosen start, residual in dB of each start)``.
    """
    from automix.console.torch_console import mix_console

    flat = initial_settings(names, stems, target)
    if stems[0].shape[1] < 2 * RESPONSE_FFT:  # too short for the per-bin responses
        return flat, "flat", {}
    clip, target_clip = analysis_excerpt(stems, target, sample_rate)  # once, for the EQ curves and the compressors
    starts = {"flat": flat, "eq": structured_start(flat, clip, target_clip, sample_rate)}
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
    guesses = guess_compressors(starts[best], clip, target_clip, sample_rate)
    if any(guess is not None for guess in guesses):
        name = f"{best}+compressors"
        starts[name] = with_compressors(starts[best], guesses)
        residuals[name] = residual(starts[name])
        if residuals[name] <= residuals[best]:
            best = name
    return starts[best], best, residuals
