"""Loudness (ITU-R BS.1770-4 integrated, in LUFS) and true-peak (dBTP) measurement.

Audio is float ``(channels, samples)``. Everything is measured in chunks, so an hour of
stereo audio needs only a few tens of MB of working memory.

Loudness
    The K-weighting filters are the BS.1770-4 "DeMan" design (the one pyloudnorm offers,
    computed here without importing it); filtering (compiled, chunked, float64)
    and gating are done here: 400 ms blocks every 100 ms, absolute gate at −70 LUFS,
    relative gate 10 LU below the absolutely-gated level. Block starts are exactly
    ``j * sample_rate // 10`` and only complete blocks count, so the result equals
    pyloudnorm's (to 1e-6 LU) whenever the length is a whole number of 100 ms hops;
    otherwise pyloudnorm also counts a partly empty last block (a difference of up to
    ~0.1 LU on a short signal that ends loud, nothing on a song).

    Channels are weighted 1, 1, 1, 1.41, 1.41 (L, R, C, Ls, Rs) as BS.1770 says, so a
    *mono* signal is one channel with weight 1: a full-scale 997 Hz sine reads −3.01 LUFS in
    mono and 0.00 LUFS when it is in both channels of a stereo signal. This is what makes a
    mono stem and the same stem panned centre with the constant-power law (−3 dB per side)
    read the same loudness.

    A signal shorter than one 400 ms block is measured as a single block spanning the whole
    signal (its mean K-weighted power, still subject to the −70 LUFS absolute gate), so a
    short clip reads what a longer stationary signal would.

True peak
    BS.1770-4 Annex 2 style: upsample (4× by default) with a windowed-sinc polyphase FIR
    (16 taps per phase, Kaiser β = 6; flat to 0.35·fs, −0.1 dB at 0.40·fs, −0.4 dB at 0.42·fs)
    and take the largest magnitude. The filter is a Nyquist filter, so the original samples
    are among the interpolated points and the true peak is never below the sample peak.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np

NORMALISED_STEM_LUFS = -23.0
"""Level every stem is trimmed to before balance decisions are made.

−23 LUFS is the EBU R128 programme level: it leaves ~20 dB of headroom above typical
stems (so trimming never clips in float or after an EQ boost), it is the level
loudness-normalised reference corpora are usually analysed at, and summing ~8–16 stems at
−23 LUFS lands a mix around −14…−10 LUFS before the master stage, i.e. near the delivery
target, so master gain stays small. Faders then express *relative* balance in dB.
"""

SILENCE_LUFS = -70.0
"""Reported for silence: the BS.1770 absolute gate (nothing quieter is ever measured)."""

TRUE_PEAK_FLOOR_DB = -200.0
"""Reported peak of an all-zero signal instead of −inf."""

_BLOCK_HOPS = 4  # a 400 ms gating block is four 100 ms hops (75 % overlap)
_ABSOLUTE_GATE_LUFS = -70.0
_RELATIVE_GATE_LU = -10.0
_LOUDNESS_OFFSET_DB = -0.691  # BS.1770 calibration: 997 Hz at 0 dBFS in one channel reads −3.01
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
_CHUNK_SAMPLES = 1 << 20

_TAPS_PER_PHASE = 16
_KAISER_BETA = 6.0


def _check_audio(audio: np.ndarray) -> None:
    if not isinstance(audio, np.ndarray) or audio.ndim != 2:
        raise ValueError(f"audio must be a (channels, samples) array, got shape {np.shape(audio)}")
    if not 1 <= audio.shape[0] <= len(_CHANNEL_WEIGHTS):
        raise ValueError(f"audio must have 1 to {len(_CHANNEL_WEIGHTS)} channels, got {audio.shape[0]}")


# BS.1770-4 K-weighting as two analog prototypes (high shelf, then the RLB high-pass), mapped to
# any rate by the bilinear transform. Brecht De Man fitted these constants to the ITU's 48 kHz
# coefficients; pyloudnorm's "DeMan" filter class uses the same design (tests pin ours to it), and
# it reads a full-scale 997 Hz sine 0.04 LU closer to the standard than an RBJ approximation.
_SHELF_GAIN_DB = 3.99984385397
_SHELF_Q = 0.7071752369554193
_SHELF_HZ = 1681.9744509555319
_SHELF_MID_EXPONENT = 0.499666774155  # mid-band gain = high-band gain ** this
_HIGHPASS_Q = 0.5003270373253953
_HIGHPASS_HZ = 38.13547087613982


@lru_cache(maxsize=16)
def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """BS.1770-4 K-weighting (pre-filter shelf, then RLB high-pass) as second-order sections,
    ``(2, 6)`` float64 rows ``[b0, b1, b2, 1, a1, a2]`` for ``sample_rate`` Hz."""
    k = math.tan(math.pi * _SHELF_HZ / sample_rate)
    high = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    mid = high ** _SHELF_MID_EXPONENT
    norm = 1.0 + k / _SHELF_Q + k * k
    shelf = [(high + mid * k / _SHELF_Q + k * k) / norm, 2.0 * (k * k - high) / norm,
             (high - mid * k / _SHELF_Q + k * k) / norm, 1.0, 2.0 * (k * k - 1.0) / norm,
             (1.0 - k / _SHELF_Q + k * k) / norm]
    k = math.tan(math.pi * _HIGHPASS_HZ / sample_rate)
    norm = 1.0 + k / _HIGHPASS_Q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / norm, (1.0 - k / _HIGHPASS_Q + k * k) / norm]
    return np.array([shelf, highpass])



KState = tuple[float, float, float, float, float, float]
"""K-weighting filter state of one channel (see :func:`k_weight_step`)."""


@lru_cache(maxsize=16)
def k_weighting_coefficients(sample_rate: int) -> tuple[float, ...]:
    """:func:`k_weighting_sos` flattened for :func:`k_weight_step`:
    ``(b0, b1, b2, a1, a2)`` of the shelf, then of the high-pass."""
    sos = k_weighting_sos(sample_rate)
    return tuple(float(v) for row in sos for v in (row[0], row[1], row[2], row[4], row[5]))


@numba.njit(inline="always", fastmath={"contract"})
def k_weight_step(v: float, k: tuple[float, ...], s: KState) -> tuple[float, KState]:  # pragma: no cover
    """K-weight one sample: ``(output, new state)``. ``k`` from :func:`k_weighting_coefficients`;
    ``s`` is ``(x[n-1], x[n-2], y[n-1], y[n-2], z[n-1], z[n-2])`` (input, shelf output, output).

    Direct form I in float64: each section's recursion is one multiply-add on its previous
    output (the feed-forward terms do not wait for it), so the loop-carried dependency is short,
    and the state stays in registers (a tuple, not an array). Inlined into the callers' loops.
    """
    x1, x2, y1, y2, z1, z2 = s
    y = k[0] * v + k[1] * x1 + k[2] * x2 - k[4] * y2 - k[3] * y1
    z = k[5] * y + k[6] * y1 + k[7] * y2 - k[9] * z2 - k[8] * z1
    return z, (v, x1, y, y1, z, z1)


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _k_weighted_segments(
    x: np.ndarray, k: tuple[float, ...], state: np.ndarray, weights: np.ndarray, cuts: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Add ``weight * Σ k_weighted(x)²`` of each segment into ``out``: segment ``i`` ends at
    ``cuts[i]`` (the last one at the end of ``x``; ``out`` has ``cuts.size + 1`` entries).
    ``state`` ``(channels, 6)`` carries the filters from chunk to chunk."""
    channels, n = x.shape
    for c in range(channels):
        s = (state[c, 0], state[c, 1], state[c, 2], state[c, 3], state[c, 4], state[c, 5])
        start = 0
        for i in range(cuts.size + 1):
            stop = cuts[i] if i < cuts.size else n
            acc = 0.0
            for t in range(start, stop):
                z, s = k_weight_step(np.float64(x[c, t]), k, s)
                acc += z * z
            out[i] += weights[c] * acc
            start = stop
        for j in range(6):
            state[c, j] = s[j]


class LoudnessAccumulator:
    """Streaming BS.1770-4 integrated loudness: :meth:`push` consecutive chunks, then :meth:`lufs`.

    Args:
        sample_rate: Hz.
        channels: 1–5 (weights L, R, C, Ls, Rs).
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        if not 1 <= channels <= len(_CHANNEL_WEIGHTS):
            raise ValueError(f"loudness needs 1 to {len(_CHANNEL_WEIGHTS)} channels, got {channels}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.channels = channels
        self._k = k_weighting_coefficients(self.sample_rate)
        self._state = np.zeros((channels, 6))
        self._weights = np.array(_CHANNEL_WEIGHTS[:channels])
        self._position = 0  # samples pushed so far
        self._next_hop = 1  # index j of the next hop boundary j * fs // 10 not yet passed
        self._partial = 0.0  # weighted K-power summed since the last hop boundary
        self._hop_energies: list[np.ndarray] = []

    def push(self, chunk: np.ndarray) -> None:
        """Add the next ``(channels, samples)`` chunk of the signal."""
        if chunk.ndim != 2 or chunk.shape[0] != self.channels:
            raise ValueError(f"expected a ({self.channels}, samples) chunk, got shape {chunk.shape}")
        n = chunk.shape[1]
        if n == 0:
            return
        end = self._position + n
        last_hop = (10 * (end + 1) - 1) // self.sample_rate  # largest j with boundary(j) <= end
        cuts = np.arange(self._next_hop, last_hop + 1) * self.sample_rate // 10 - self._position  # in (0, n]
        sums = np.zeros(cuts.size + 1)  # segments [0, c1), [c1, c2), ..., [c_last, n)
        _k_weighted_segments(chunk, self._k, self._state, self._weights, cuts, sums)
        if cuts.size:
            sums[0] += self._partial
            self._hop_energies.append(sums[:-1])
            self._partial = 0.0
            self._next_hop = last_hop + 1
        self._partial += float(sums[-1])
        self._position = end

    def lufs(self) -> float:
        """Integrated loudness of everything pushed so far, in LUFS (``SILENCE_LUFS`` for silence)."""
        hops = np.concatenate(self._hop_energies) if self._hop_energies else np.zeros(0)
        return lufs_from_hops(hops, self._position, self.sample_rate, self._partial)


def lufs_from_hops(hop_energy: np.ndarray, samples: int, sample_rate: int, tail_energy: float = 0.0) -> float:
    """Integrated loudness (LUFS, gated as BS.1770-4) from the K-weighted, channel-weighted
    energy of consecutive 100 ms hops: hop ``j`` spans samples ``[j·fs // 10, (j+1)·fs // 10)``.

    Args:
        hop_energy: ``(hops,)`` energies of the complete hops of the signal.
        samples: the signal's length.
        tail_energy: energy after the last complete hop (only counts for a signal shorter than
            one 400 ms block, which is measured as one block; see the module docstring).
    """
    if samples == 0:
        return SILENCE_LUFS
    if hop_energy.size < _BLOCK_HOPS:
        mean_power = np.array([(hop_energy.sum() + tail_energy) / samples])
    else:
        window = np.cumsum(np.concatenate([[0.0], hop_energy]))
        block_energy = window[_BLOCK_HOPS:] - window[:-_BLOCK_HOPS]
        starts = np.arange(block_energy.size)
        block_samples = (starts + _BLOCK_HOPS) * sample_rate // 10 - starts * sample_rate // 10
        mean_power = block_energy / block_samples
    with np.errstate(divide="ignore"):
        block_lufs = _LOUDNESS_OFFSET_DB + 10.0 * np.log10(mean_power)
    gated = block_lufs > _ABSOLUTE_GATE_LUFS
    if not gated.any():
        return SILENCE_LUFS
    relative_gate = _LOUDNESS_OFFSET_DB + 10.0 * math.log10(mean_power[gated].mean()) + _RELATIVE_GATE_LU
    gated &= block_lufs > relative_gate
    return max(SILENCE_LUFS, _LOUDNESS_OFFSET_DB + 10.0 * math.log10(mean_power[gated].mean()))


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """BS.1770-4 integrated loudness of float ``(channels, samples)`` audio, in LUFS.

    Returns ``SILENCE_LUFS`` (−70) for silence instead of −inf. See the module docstring
    for mono and for signals shorter than 400 ms.
    """
    _check_audio(audio)
    meter = LoudnessAccumulator(sample_rate, audio.shape[0])
    for start in range(0, audio.shape[1], _CHUNK_SAMPLES):
        meter.push(audio[:, start:start + _CHUNK_SAMPLES])
    return meter.lufs()


# --------------------------------------------------------------------------------------
# True peak
# --------------------------------------------------------------------------------------

def kaiser_lowpass(taps: int, cutoff: float, beta: float) -> np.ndarray:
    """Windowed-sinc low-pass FIR (``taps`` odd, ``cutoff`` as a fraction of Nyquist), unity gain at DC.

    The same filter as ``scipy.signal.firwin(taps, cutoff, window=("kaiser", beta))``, in numpy:
    importing ``scipy.signal`` costs about a second per command (it pulls in ``scipy.stats``).
    """
    m = np.arange(taps) - (taps - 1) / 2.0
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(taps, beta)
    return h / h.sum()


@lru_cache(maxsize=8)
def _interpolation_taps(oversample: int) -> np.ndarray:
    """Polyphase interpolation FIR, ``(oversample - 1, _TAPS_PER_PHASE)`` float32.

    Row ``k - 1`` dotted with ``x[n - K + 1 : n + K + 1]`` (K = taps per phase / 2)
    gives the band-limited value at ``n + k / oversample``.
    """
    if not isinstance(oversample, int) or not 2 <= oversample <= 32:
        raise ValueError(f"oversample must be an integer in [2, 32], got {oversample!r}")
    half = _TAPS_PER_PHASE // 2
    prototype = kaiser_lowpass(2 * half * oversample + 1, 1.0 / oversample, _KAISER_BETA) * oversample
    j = np.arange(2 * half)
    taps = np.array([prototype[oversample * (2 * half - 1 - j) + k] for k in range(1, oversample)])
    taps /= taps.sum(axis=1, keepdims=True)  # unity gain at DC for every phase
    return np.ascontiguousarray(taps, dtype=np.float32)


@numba.njit(cache=True, nogil=True, fastmath=True, boundscheck=False)
def _accumulate_interval_peaks(x: np.ndarray, taps: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """``out[i] = max(out[i], |x[i + K - 1]|, |interpolated values between it and the next sample|)``.

    ``x`` is one channel with ``K - 1`` context samples before and ``K`` after (float32);
    ``taps`` is ``(phases, 2K)``. Blocked so the inner loops run over samples and vectorise.
    """
    n = out.shape[0]
    phases, width = taps.shape
    block = 1024
    acc = np.empty((phases, block), np.float32)
    for b in range(0, n, block):
        nb = min(block, n - b)
        xb = x[b:b + nb + width]
        for k in range(phases):
            a = acc[k]
            for i in range(nb):
                a[i] = 0.0
            for j in range(width):
                t = taps[k, j]
                xs = xb[j:j + nb]
                for i in range(nb):
                    a[i] += t * xs[i]
        o = out[b:b + nb]
        centre = xb[width // 2 - 1:width // 2 - 1 + nb]
        for i in range(nb):
            v = max(o[i], abs(centre[i]))
            for k in range(phases):
                v = max(v, abs(acc[k, i]))
            o[i] = v


def true_peak_spread(oversample: int = 4) -> float:
    """How far one sample's change can move the oversampled true peak: the largest absolute tap
    sum of the interpolation filter (≥ 1; about 2.04 at 4×). A change of ``e`` in every sample
    moves the measured true peak by at most ``spread · e``."""
    return max(1.0, float(np.abs(_interpolation_taps(oversample)).sum(axis=1).max()))


def interval_peaks(audio: np.ndarray, start: int = 0, stop: int | None = None, oversample: int = 4) -> np.ndarray:
    """Oversampled peak magnitude of each sample interval, the maximum over channels.

    ``result[i]`` is the largest magnitude of the reconstructed signal on
    ``[start + i, start + i + 1)`` (the sample itself and ``oversample - 1`` points after it).
    ``start`` / ``stop`` may lie outside ``[0, samples]``: the signal is zero there. Samples
    outside the range are used as interpolation context, so chunked results match whole ones.

    Returns:
        ``(stop - start,)`` float32, linear amplitude.
    """
    _check_audio(audio)
    total = audio.shape[1]
    stop = total if stop is None else stop
    taps = _interpolation_taps(oversample)
    half = taps.shape[1] // 2
    lo, hi = start - half + 1, stop + half  # input needed, with context
    out = np.zeros(max(stop - start, 0), dtype=np.float32)
    if out.size == 0:
        return out
    src_lo, src_hi = max(lo, 0), min(hi, total)
    for channel in audio:
        x = np.zeros(hi - lo, dtype=np.float32)
        if src_hi > src_lo:
            x[src_lo - lo:src_hi - lo] = channel[src_lo:src_hi]
        _accumulate_interval_peaks(x, taps, out)
    return out


def true_peak_dbtp(audio: np.ndarray, sample_rate: int, oversample: int = 4) -> float:
    """True peak of ``(channels, samples)`` audio in dBTP (≥ 4× oversampled; floor −200 for silence).

    ``sample_rate`` is accepted for symmetry with :func:`integrated_lufs`; the interpolation
    filter is defined relative to the sample rate, so the result does not depend on it.
    """
    _check_audio(audio)
    if oversample < 4:
        raise ValueError(f"true peak needs at least 4x oversampling, got {oversample}")
    peak = 0.0
    for start in range(0, audio.shape[1], _CHUNK_SAMPLES):
        stop = min(start + _CHUNK_SAMPLES, audio.shape[1])
        peak = max(peak, float(interval_peaks(audio, start, stop, oversample).max()))
    return _to_db(peak)


def sample_peak_db(audio: np.ndarray) -> float:
    """Largest absolute sample value in dBFS (floor −200 for silence)."""
    audio = np.atleast_2d(np.asarray(audio))
    peak = 0.0
    for start in range(0, audio.shape[-1], _CHUNK_SAMPLES):
        piece = audio[..., start:start + _CHUNK_SAMPLES]
        if piece.size:
            peak = max(peak, float(np.max(np.abs(piece))))
    return _to_db(peak)


def _to_db(amplitude: float) -> float:
    if not amplitude > 0.0:
        return TRUE_PEAK_FLOOR_DB
    return max(TRUE_PEAK_FLOOR_DB, 20.0 * math.log10(amplitude))
