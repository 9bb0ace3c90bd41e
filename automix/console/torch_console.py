"""Differentiable batched mixing console (training and analysis path).

Signal flow per track (docs/architecture.md): trim → EQ (high-pass, low shelf, 4 bells,
high shelf) → compressor → fader → pan/width → post-fader send to the reverb bus.
Master: (sum of tracks + reverb return) → EQ → compressor → gain. Finalize (loudness,
limiter) is not part of this module.

Implementation choices:

* **EQ by frequency sampling.** The 7-section cascade's complex response is evaluated on the
  ``rfft`` grid of a 1 s FIR (:data:`EQ_IR_S`), turned into that FIR by one inverse FFT and
  applied by FFT convolution: one FFT pair per track however many bands are active, cost of
  the response independent of the clip length, and gradients to every coefficient for free.
  It equals the IIR filter run from silence except for the part of the filter's impulse
  response beyond 1 s, which is negligible for the schema's ranges (the slowest section,
  Q 10 at 40 Hz, decays 60 dB in about 0.55 s). ``torchaudio.functional.lfilter`` was the
  alternative: exact, but a sample-serial loop per section forward *and* backward, which is
  several times slower on CPU.
* **Compressor** via :func:`automix.console.compressor.compress` (torchlpc recursion for the
  detector, torchcomp's attack/release kernel with its custom backward).
* **Reverb** by FFT convolution with :func:`automix.console.reverb.reverb_ir`.
* **Automated EQ bands** (``eq.<band>.gain_db`` lanes) by :func:`ride_band`, an exact
  time-varying biquad on the block renderer's sub-block schedule (:mod:`automix.console.eq_ride`),
  after the static EQ and before the compressor as there; the static EQ holds those bands at 0 dB.

Gradients flow to every continuous parameter of ``TRACK``, ``FX`` and ``MASTER`` (where the
parameter has an audible effect on the given signal).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import torch
from torch import Tensor

from automix.console import design, eq_ride
from automix.console.automation import EQ_LANES, RIDE_LANES, lane_curve
from automix.console.biquad import band_section, eq_sos, sos_response
from automix.console.compressor import compress, strip_settings
from automix.console.reverb import reverb_ir
from automix.console.schema import EQ_BANDS, FX, MASTER, TRACK, ParamGroup, db_to_amplitude, send_gain
from automix.errors import AutomixError

EQ_IR_S = 1.0
"""Length of the FIR that stands in for each EQ cascade (see module docstring)."""


def eq_ir_length(sample_rate: int) -> int:
    """Samples of the EQ's FIR: ``EQ_IR_S`` seconds rounded up to a fast FFT size."""
    return scipy.fft.next_fast_len(math.ceil(EQ_IR_S * sample_rate), real=True)


def apply_eq(x: Tensor, sos: Tensor, sample_rate: int, gain: Tensor | None = None) -> Tensor:
    """Filter ``x`` ``(..., C, N)`` with per-strip sections ``(..., S, 6)`` (frequency sampling).

    ``gain`` ``(...)`` optionally scales each strip's filter (a trim folded into the EQ, which
    saves a pass over the audio: the EQ is linear).
    """
    n = x.shape[-1]
    n_ir = eq_ir_length(sample_rate)
    fir = torch.fft.irfft(sos_response(sos, n_ir), n=n_ir).to(x.dtype)  # (..., n_ir)
    if gain is not None:
        fir = fir * gain.to(x.dtype).unsqueeze(-1)
    n_fft = scipy.fft.next_fast_len(n + n_ir - 1, real=True)
    spectrum = torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(fir, n=n_fft).unsqueeze(-2)
    return torch.fft.irfft(spectrum, n=n_fft)[..., :n]


def _filter(x: Tensor, params: Tensor, group: ParamGroup, sample_rate: int, gain: Tensor | None = None) -> Tensor:
    return apply_eq(x, eq_sos(params, group, sample_rate), sample_rate, gain).to(x.dtype)


def pan_matrix(track_params: Tensor, is_stereo: Tensor) -> Tensor:
    """``(B, T, 2, 2)`` channel matrix of the fader + pan/width stage (output = M @ input).

    Mono (input channel 0 only): constant power, θ = (pan + 1)π/4, L = cos θ, R = sin θ.
    Stereo: width on mid/side (S·width), then balance gL = min(1, √2 cos θ), gR = min(1, √2 sin θ)
    so the centre is unity. The formula lives in :func:`automix.console.design.pan_matrix`,
    which the renderer calls with NumPy arrays.
    """
    return design.pan_matrix(track_params, is_stereo)


@dataclass
class BandRide:
    """One automated EQ band across a batch, on the sub-block schedule of :mod:`automix.console.eq_ride`.

    Attributes:
        gains_db: ``(B, T, K)`` the band's gain per sub-block (``K = sub_blocks(N)``; zeros on
            tracks without the lane).
        ridden: ``(B, T)`` bool, the tracks with a lane on this band.
    """

    gains_db: Tensor
    ridden: Tensor


@dataclass
class Automation:
    """Automation curves for a batch, in physical units.

    Attributes:
        track: ``{param: (B, T, N)}`` per-sample curves of the automated
            :data:`~automix.console.automation.RIDE_LANES` (every track of the batch has a
            curve; a track without a lane holds its static value).
        eq: ``{"eq.<band>.gain_db": BandRide}`` for the automated EQ bands.
        master_gain_db: ``(B, N)`` master output gain, or None when static.
    """

    track: dict[str, Tensor] = field(default_factory=dict)
    eq: dict[str, BandRide] = field(default_factory=dict)
    master_gain_db: Tensor | None = None


def _track_lanes(settings: Sequence, name: str) -> list[list]:
    """``[b][t]`` the lane on ``name`` of each track of each batch item, or None."""
    return [[s.automation.get(track, {}).get(name) for track in s.track_names] for s in settings]


def automation_curves(settings: Sequence, n: int, sample_rate: int,
                      dtype: torch.dtype = torch.float32) -> Automation | None:
    """The curves of ``settings`` (one :class:`~automix.console.settings.MixSettings` per batch item,
    same track count) over samples ``[0, n)``, from the block renderer's own functions
    (:func:`~automix.console.automation.lane_curve`, :func:`~automix.console.eq_ride.schedule_gains`);
    None when nothing is automated."""
    if not any(s.is_automated for s in settings):
        return None
    shape = (len(settings), len(settings[0].track_names))
    track: dict[str, Tensor] = {}
    for name in RIDE_LANES:
        lanes = _track_lanes(settings, name)
        if not any(lane is not None for row in lanes for lane in row):
            continue
        curves = np.empty((*shape, n))
        for b, s in enumerate(settings):
            for t, lane in enumerate(lanes[b]):
                curves[b, t] = lane_curve(lane, 0, n, sample_rate) if lane is not None else s.track[t, TRACK.index(name)]
        track[name] = torch.from_numpy(curves).to(dtype)
    eq: dict[str, BandRide] = {}
    for name in EQ_LANES:
        lanes = _track_lanes(settings, name)
        ridden = np.array([[lane is not None for lane in row] for row in lanes]).reshape(shape)
        if not ridden.any():
            continue
        gains = np.zeros((*shape, eq_ride.sub_blocks(n)))
        for b, t in zip(*np.nonzero(ridden)):
            gains[b, t] = eq_ride.schedule_gains(lanes[b][t], 0, gains.shape[-1], sample_rate)
        eq[name] = BandRide(torch.from_numpy(gains), torch.from_numpy(ridden))
    master = None
    if any("gain_db" in s.master_automation for s in settings):
        master = torch.from_numpy(np.stack([
            lane_curve(s.master_automation["gain_db"], 0, n, sample_rate) if "gain_db" in s.master_automation
            else np.full(n, s.master[MASTER.index("gain_db")]) for s in settings])).to(dtype)
    return Automation(track, eq, master)


def ride_band(x: Tensor, band: str, gains_db: Tensor, freq_hz: Tensor, q: Tensor, sample_rate: int) -> Tensor:
    """EQ band ``band`` with its gain changing per sub-block of
    :data:`~automix.console.eq_ride.EQ_UPDATE_SAMPLES` samples, from silence (differentiable).

    Args:
        x: ``(M, C, N)`` audio, starting at sample 0 of the schedule.
        band: one of :data:`~automix.console.schema.EQ_BANDS`.
        gains_db: ``(M, K)`` gain per sub-block, ``K ≥ ⌈N / EQ_UPDATE_SAMPLES⌉``.
        freq_hz, q: ``(M,)`` the band's static frequency and Q.
        sample_rate: Hz.

    Returns:
        ``(M, C, N)`` of ``x``'s dtype; the block renderer's TDF-II recursion to rounding.
    """
    from torchlpc import sample_wise_lpc  # as the compressor: import only when used

    rows, channels, n = x.shape
    k = gains_db.shape[-1]
    sos = band_section(band, freq_hz.to(torch.float64)[:, None].expand(rows, k), gains_db.to(torch.float64),
                       q.to(torch.float64)[:, None].expand(rows, k), sample_rate)  # (M, K, 6)
    # TDF-II with coefficients c[n] unrolls to y[n] = b0[n] x[n] + b1[n−1] x[n−1] + b2[n−2] x[n−2]
    # − a1[n−1] y[n−1] − a2[n−2] y[n−2]: each term keeps the coefficients of the sample that put it
    # into the state. Before sample 0, x = y = 0, so lags are clamped to sample 0.
    sample = torch.arange(n)

    def lagged(column: int, lag: int) -> Tensor:  # (M, N): coefficient ``column`` of sample n − lag
        return sos[:, (sample - lag).clamp_min(0) // eq_ride.EQ_UPDATE_SAMPLES, column]

    x64 = x.to(torch.float64)

    def delayed(lag: int) -> Tensor:
        return torch.nn.functional.pad(x64[..., : n - lag], (lag, 0))

    u = lagged(0, 0)[:, None] * x64 + lagged(1, 1)[:, None] * delayed(1) + lagged(2, 2)[:, None] * delayed(2)
    poles = torch.stack([lagged(4, 1), lagged(5, 2)], -1)  # (M, N, 2): y[n] = u[n] − Σ a_k y[n − k]
    poles = poles[:, None].expand(rows, channels, n, 2).reshape(rows * channels, n, 2)
    y = sample_wise_lpc(u.reshape(rows * channels, n), poles)
    return y.reshape(rows, channels, n).to(x.dtype)


def _ride_bands(x: Tensor, track_params: Tensor, rides: dict[str, BandRide], sample_rate: int) -> Tensor:
    """``x`` ``(B, T, 2, N)`` after the static EQ → through each automated band, in processing order."""
    for band, name in zip(EQ_BANDS, EQ_LANES):
        ride = rides.get(name)
        if ride is None:
            continue
        rows = ride.ridden
        params = track_params[rows]  # (M, len(TRACK))
        y = ride_band(x[rows], band, ride.gains_db[rows], params[:, TRACK.index(f"eq.{band}.freq_hz")],
                      params[:, TRACK.index(f"eq.{band}.q")], sample_rate)
        x = x.index_put((rows,), y)
    return x


def _without_ridden_gains(track_params: Tensor, rides: dict[str, BandRide]) -> Tensor:
    """``track_params`` with each ridden band's gain at 0 dB on its ridden tracks (the static EQ's share)."""
    for name, ride in rides.items():
        column = torch.zeros(len(TRACK), dtype=torch.bool)
        column[TRACK.index(name)] = True
        track_params = torch.where(ride.ridden[..., None] & column, 0.0, track_params)
    return track_params


def _check(stems: Tensor, is_stereo: Tensor, track_params: Tensor) -> None:
    if stems.ndim != 4 or stems.shape[2] != 2:
        raise AutomixError(f"stems must be (batch, tracks, 2, samples), got {tuple(stems.shape)}")
    if tuple(is_stereo.shape) != tuple(stems.shape[:2]):
        raise AutomixError(f"is_stereo must be {tuple(stems.shape[:2])}, got {tuple(is_stereo.shape)}")
    if tuple(track_params.shape) != (*stems.shape[:2], len(TRACK)):
        raise AutomixError(
            f"track_params must be {(*stems.shape[:2], len(TRACK))}, got {tuple(track_params.shape)}"
        )


def process_tracks(stems: Tensor, is_stereo: Tensor, track_params: Tensor, sample_rate: int) -> Tensor:
    """Channel strips of every track, up to and including pan.

    Args:
        stems: ``(B, T, 2, N)`` float audio (a mono stem uses channel 0 only).
        is_stereo: ``(B, T)`` bool.
        track_params: ``(B, T, len(TRACK))`` physical units.
        sample_rate: Hz.

    Returns:
        ``(B, T, 2, N)`` post-pan tracks, dtype of ``stems``.
    """
    return _strips(stems, is_stereo, track_params, sample_rate, None)


def _strips(stems: Tensor, is_stereo: Tensor, track_params: Tensor, sample_rate: int,
            track_mask: Tensor | None, automation: Automation | None = None) -> Tensor:
    _check(stems, is_stereo, track_params)
    batch, tracks, _, n = stems.shape
    is_stereo = is_stereo.to(torch.bool)
    trim = db_to_amplitude(track_params[..., TRACK.index("trim_db")])
    rides = automation.eq if automation is not None else {}
    x = _filter(stems, _without_ridden_gains(track_params, rides), TRACK, sample_rate, gain=trim)
    x = _ride_bands(x, track_params, rides, sample_rate)  # before the detector: the compressor hears them
    # Linked detector: mean power of a stereo stem's channels; channel 0 alone for mono.
    power = torch.where(is_stereo[..., None], x.pow(2).mean(dim=-2), x[..., 0, :].pow(2))
    settings = {k: v.reshape(-1) for k, v in strip_settings(track_params, TRACK).items()}
    x = compress(x.reshape(batch * tracks, 2, n), power.reshape(batch * tracks, n), settings, sample_rate)
    x = x.reshape(batch, tracks, 2, n)
    curves = automation.track if automation is not None else {}
    ridden = bool(curves.keys() & {"gain_db", "pan"})
    if ridden:  # a matrix per sample, from the same formula and the same lane curves
        def curve(name: str) -> Tensor:
            static = track_params[..., TRACK.index(name)]
            return curves.get(name, static[..., None].expand(-1, -1, n)).to(static.dtype)

        width = track_params[..., TRACK.index("width")][..., None]
        matrix = design.fader_pan_matrix(curve("gain_db"), curve("pan"), width, is_stereo[..., None])
    else:
        matrix = pan_matrix(track_params, is_stereo)
    if track_mask is not None:  # padding tracks: folded into the pan matrix, no extra pass
        matrix = matrix * track_mask.to(matrix.dtype)[(..., *([None] * (matrix.ndim - 2)))]
    if ridden:
        return torch.einsum("btnij,btjn->btin", matrix.to(stems.dtype), x)
    return torch.einsum("btij,btjn->btin", matrix.to(stems.dtype), x)


def fft_convolve(x: Tensor, ir: Tensor) -> Tensor:
    """Linear convolution of ``x`` ``(B, C, N)`` with ``ir`` ``(B, C, L)``, cropped to N samples."""
    n = x.shape[-1]
    n_fft = scipy.fft.next_fast_len(n + ir.shape[-1] - 1, real=True)
    y = torch.fft.irfft(torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(ir, n=n_fft), n=n_fft)
    return y[..., :n]


def master_bus(mix: Tensor, master_params: Tensor, sample_rate: int, gain_db_curve: Tensor | None = None) -> Tensor:
    """Master EQ → compressor (stereo-linked) → gain for ``(B, 2, N)`` (``gain_db_curve``
    ``(B, N)``: the automated output gain, replacing the static one)."""
    y = _filter(mix, master_params, MASTER, sample_rate)
    settings = strip_settings(master_params, MASTER)
    y = compress(y, y.pow(2).mean(dim=-2), settings, sample_rate)
    if gain_db_curve is not None:
        return y * db_to_amplitude(gain_db_curve).to(mix.dtype)[:, None, :]
    gain = db_to_amplitude(master_params[..., MASTER.index("gain_db")]).to(mix.dtype)
    return y * gain[:, None, None]


def mix_console(
    stems: Tensor,
    is_stereo: Tensor,
    track_params: Tensor,
    fx_params: Tensor,
    master_params: Tensor,
    sample_rate: int,
    track_mask: Tensor | None = None,
    automation: Automation | None = None,
) -> Tensor:
    """The whole console before finalize.

    Args:
        stems: ``(B, T, 2, N)`` float audio; ``is_stereo``: ``(B, T)`` bool.
        track_params: ``(B, T, len(TRACK))``; ``fx_params``: ``(B, len(FX))``;
            ``master_params``: ``(B, len(MASTER))``, all in physical units.
        sample_rate: Hz.
        track_mask: ``(B, T)`` bool; False tracks (padding) contribute nothing.
        automation: per-sample curves (:func:`automation_curves`), or None for a static mix.

    Returns:
        ``(B, 2, N)`` mix, dtype of ``stems``.
    """
    batch = stems.shape[0]
    if tuple(fx_params.shape) != (batch, len(FX)):
        raise AutomixError(f"fx_params must be {(batch, len(FX))}, got {tuple(fx_params.shape)}")
    if tuple(master_params.shape) != (batch, len(MASTER)):
        raise AutomixError(f"master_params must be {(batch, len(MASTER))}, got {tuple(master_params.shape)}")
    tracks = _strips(stems, is_stereo, track_params, sample_rate, track_mask, automation)
    mix = tracks.sum(dim=1)
    send_curve = automation.track.get("send.reverb_db") if automation is not None else None
    send_db = send_curve if send_curve is not None else track_params[..., TRACK.index("send.reverb_db")]
    send_amp = send_gain(send_db).to(tracks.dtype)
    return_amp = send_gain(fx_params[:, FX.index("reverb.return_db")]).to(tracks.dtype)
    if bool((send_amp != 0).any()) and bool((return_amp != 0).any()):
        pattern = "btn,btcn->bcn" if send_curve is not None else "bt,btcn->bcn"
        send_bus = torch.einsum(pattern, send_amp, tracks)
        ir = reverb_ir(fx_params, sample_rate).to(tracks.dtype)
        mix = mix + fft_convolve(send_bus, ir) * return_amp[:, None, None]
    gain_curve = automation.master_gain_db if automation is not None else None
    return master_bus(mix, master_params, sample_rate, gain_curve)
