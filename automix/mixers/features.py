"""Stem analysis for the mixers that need no training: audio features and role inference.

All features are computed on the stem as loaded (before any processing), from a mono
downmix except the stereo correlation. Levels are dBFS, frequencies Hz.

Speed and memory: a stem is read once, block by block (:func:`analyse_reader`), so the same
code analyses an array in memory or a file streamed from disk, with the same result. Every
sample is used for the level features (peak, loudness, frame powers, correlation: they decide
the trim, the compressor threshold and the roles, and a decimated copy would change them);
one compiled loop measures them all (K-weighting, 10/50 ms frame energies, 100 ms loudness
hops, peak, stereo products), accumulating in float64 straight from the float32 audio. The
spectra use at most :data:`MAX_SPECTRUM_FRAMES` evenly spaced ~0.2 s windows (enough to
characterise a stem; time stays flat for long songs), copied out of the same blocks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
import scipy.fft

from automix.console.loudness import k_weight_step, k_weighting_coefficients, lufs_from_hops

LOW_FREQ_HZ = 150.0
"""Power below this frequency counts as low-frequency energy (kick and bass territory)."""

RESONANCE_BAND_HZ = (200.0, 5000.0)
"""Where the resonance finder looks: the band where ringing and masking are most audible."""

RESONANCE_AUDIBLE_DB = 30.0
"""A resonance candidate must be within this many dB of the spectrum's strongest bin."""

FRAME_S = 0.05
ACTIVE_RANGE_DB = 40.0
"""Frames more than this far below the loudest frame are rests, not signal (for RMS/crest)."""

DC_ONLY_SHARE = 0.9999
"""A stem with at least this share of its power in its DC offset holds nothing audible: what
is left is ≥ 40 dB below the offset, and the console's high-pass (its DC blocker) removes the
offset itself."""


@dataclass(frozen=True)
class StemFeatures:
    """What the rules need to know about one stem.

    Attributes:
        lufs: integrated loudness (BS.1770), −70 for (near) silence.
        peak_dbfs: sample peak.
        active_rms_dbfs: RMS over the frames that are playing (rests ignored).
        crest_db: ``peak_dbfs − active_rms_dbfs``: high for drums, ~3 dB for a sine.
        transient_db: envelope spikiness (see :func:`transient_db`): high for drums.
        centroid_hz: power-weighted mean frequency (brightness).
        low_ratio: fraction of power below :data:`LOW_FREQ_HZ` (0…1).
        low_edge_hz: frequency below which 5 % of the power lies (lowest important content).
        stereo_correlation: L/R correlation (1 for mono or dual-mono, ~0 for wide stereo).
        resonance_hz: strongest persistent narrow peak in :data:`RESONANCE_BAND_HZ`.
        resonance_db: how far that peak stands above the 1/3-octave-smoothed spectrum.
        dc_share: fraction of the power that is a constant (DC) offset, 0…1 (0 for silence).
    """

    lufs: float
    peak_dbfs: float
    active_rms_dbfs: float
    crest_db: float
    transient_db: float
    centroid_hz: float
    low_ratio: float
    low_edge_hz: float
    stereo_correlation: float
    resonance_hz: float
    resonance_db: float
    dc_share: float = 0.0

    @property
    def only_dc(self) -> bool:
        """Nothing audible besides a DC offset (see :data:`DC_ONLY_SHARE`)."""
        return self.dc_share >= DC_ONLY_SHARE


def _db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 1e-20 else -200.0


@numba.njit(cache=True, nogil=True)
def _frame_sums(x: np.ndarray, n: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[f] += Σ x[c, f·n : (f+1)·n]²`` over channels ``c``, float64, for ``out.size`` frames."""
    for c in range(x.shape[0]):
        for f in range(out.shape[0]):
            acc = 0.0
            for i in range(f * n, (f + 1) * n):
                v = np.float64(x[c, i])
                acc += v * v
            out[f] += acc


def frame_power(audio: np.ndarray, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """Mean power (averaged over channels) of consecutive non-overlapping frames, ``(frames,)``.

    Args:
        audio: ``(channels, samples)`` or ``(samples,)``.
    """
    x = np.atleast_2d(audio)
    n = max(1, round(frame_s * sample_rate))
    frames = x.shape[-1] // n
    if frames == 0:  # shorter than one frame: one zero-padded frame
        x = np.pad(x.astype(np.float64), ((0, 0), (0, n - x.shape[-1])))
        frames = 1
    sums = np.zeros(frames)
    _frame_sums(np.ascontiguousarray(x[:, : frames * n]), n, sums)
    return sums / (x.shape[0] * n)


def _active(power: np.ndarray) -> np.ndarray:
    """The frames within :data:`ACTIVE_RANGE_DB` of the loudest one (rests dropped)."""
    loudest = float(power.max())
    if loudest <= 0:
        return power[:0]
    return power[power >= loudest * 10 ** (-ACTIVE_RANGE_DB / 10)]


def _active_rms_db(power: np.ndarray) -> float:
    active = _active(power)
    return _db(float(active.mean())) if active.size else -200.0


def _transient_db(power: np.ndarray) -> float:
    active = _active(power)
    if active.size < 2:
        return 0.0
    return _db(float(np.percentile(active, 90))) - _db(float(np.percentile(active, 50)))


def active_rms_dbfs(audio: np.ndarray, sample_rate: int) -> float:
    """RMS level (dBFS) over the frames that are playing, rests ignored."""
    return _active_rms_db(frame_power(audio, sample_rate))


def transient_db(audio: np.ndarray, sample_rate: int) -> float:
    """How spiky the 10 ms envelope is: 90th over 50th percentile of active frame power, dB.

    About 0–3 dB for sustained sources (pads, bass notes), 10+ dB for drum hits.
    """
    return _transient_db(frame_power(audio, sample_rate, 0.01))


MAX_SPECTRUM_FRAMES = 256
"""Spectra average at most this many evenly spaced frames (~95 s at 44.1 kHz): plenty to
characterise a stem, and analysis time stays flat for long songs."""


def _spectrum_layout(samples: int, sample_rate: int) -> tuple[int, np.ndarray]:
    """``(nperseg, frame starts)`` of :func:`spectra` for a signal of ``samples``."""
    nperseg = int(2 ** math.ceil(math.log2(sample_rate / 5.0)))
    nperseg = min(nperseg, 1 << int(math.log2(max(256, samples))))
    starts = np.arange(0, max(samples, nperseg) - nperseg + 1, nperseg // 2)
    if starts.size > MAX_SPECTRUM_FRAMES:
        starts = starts[np.linspace(0, starts.size - 1, MAX_SPECTRUM_FRAMES).round().astype(int)]
    return nperseg, starts


@lru_cache(maxsize=4)
def _hann(nperseg: int) -> np.ndarray:
    return np.hanning(nperseg).astype(np.float32)


def _medians_over_frames(power: np.ndarray) -> np.ndarray:
    """``np.median(power, axis=0)`` of float32 ``(frames, bins)``, bit for bit, as float64.

    numpy's median partitions each column separately (slow across thousands of bins); sorting
    the transposed copy row by row uses numpy's vectorised sort and gives the same values (the
    mean of the two middle values is taken in float32, as numpy does).
    """
    ordered = np.ascontiguousarray(power.T)
    ordered.sort(axis=1)
    m = ordered.shape[1]
    if m % 2:
        return ordered[:, m // 2].astype(np.float64)
    return ((ordered[:, m // 2 - 1] + ordered[:, m // 2]) * np.float32(0.5)).astype(np.float64)


FLOAT32_SPECTRUM_LIMIT = 1e18
"""Bound on ``peak sample × frame length`` (≥ any bin's magnitude) below which a float32 FFT's
power cannot overflow (float32 holds magnitudes to 1.8e19 squared)."""


def _spectra_from_frames(frames: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(freqs_hz, mean_power, median_power)`` of float32 ``(frames, nperseg)`` (overwritten)."""
    # float32 FFTs: the spectra steer EQ decisions at a dB scale, 1e-6 relative error is irrelevant.
    nperseg = frames.shape[-1]
    if float(np.abs(frames).max(initial=0.0)) * nperseg > FLOAT32_SPECTRUM_LIMIT:
        # Samples this large (a broken render kept with --strict) overflow float32 powers to inf,
        # and inf/inf makes every spectral feature NaN: such frames are analysed in float64.
        frames = frames.astype(np.float64)
    frames *= _hann(nperseg)
    spectrum = scipy.fft.rfft(frames, axis=-1, overwrite_x=True)
    power = spectrum.real**2 + spectrum.imag**2
    freqs = np.fft.rfftfreq(nperseg, 1.0 / sample_rate)
    return freqs, power.mean(axis=0, dtype=np.float64), _medians_over_frames(power)


def spectra(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(freqs_hz, mean_power, median_power)`` over Hann-windowed frames (50 % overlap).

    Frames are ~0.2 s (about 5 Hz resolution, so a resonance a few Hz wide stands out). The
    median over time keeps only what is present most of the time (resonances, not passing notes).
    """
    nperseg, starts = _spectrum_layout(mono.size, sample_rate)
    x = mono if mono.size >= nperseg else np.pad(mono, (0, nperseg - mono.size))
    frames = np.stack([x[s : s + nperseg] for s in starts]).astype(np.float32)
    return _spectra_from_frames(frames, sample_rate)


@numba.njit(cache=True)
def _window_medians(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:  # pragma: no cover
    """``out[k] = median(values[lo[k]:hi[k]])`` (compiled: thousands of windows per stem)."""
    out = np.empty(lo.size)
    for k in range(lo.size):
        out[k] = np.median(values[lo[k]:hi[k]])
    return out


def find_resonance(freqs: np.ndarray, psd: np.ndarray) -> tuple[float, float]:
    """Strongest narrow peak in :data:`RESONANCE_BAND_HZ` relative to a 1/3-octave median.

    Args:
        freqs, psd: a power spectrum, ``freqs`` ascending (use a median-over-time one so only
            persistent peaks, not passing melody notes, show up).

    Returns:
        ``(frequency_hz, prominence_db)``; prominence 0 when the band is flat or empty.
    """
    psd_db = 10.0 * np.log10(np.maximum(np.asarray(psd, dtype=np.float64), 1e-20))
    freqs = np.asarray(freqs, dtype=np.float64)
    lo, hi = RESONANCE_BAND_HZ
    third = 2.0 ** (1.0 / 6.0)  # half of a third of an octave each side
    audible = psd_db >= psd_db.max() - RESONANCE_AUDIBLE_DB  # ignore "peaks" in the noise floor
    candidates = np.flatnonzero((freqs >= lo) & (freqs <= hi) & audible)
    if candidates.size == 0:
        return 0.0, 0.0
    # Each candidate's window is the bins within 1/6 octave of it (inclusive), as index bounds.
    first = np.searchsorted(freqs, freqs[candidates] / third, side="left")
    last = np.searchsorted(freqs, freqs[candidates] * third, side="right")
    prominence = psd_db[candidates] - _window_medians(psd_db, first, last)
    best = int(np.argmax(prominence))  # the first of equal maxima, like a strict scan
    if not prominence[best] > 0.0:
        return 0.0, 0.0
    return float(freqs[candidates[best]]), float(prominence[best])


Reader = Callable[[int, int], np.ndarray]
"""``read(start, stop)`` → float32 ``(channels, stop - start)``: a stem's samples, from memory or disk."""

ANALYSIS_BLOCK_SAMPLES = 1 << 20
"""Samples per block of :func:`analyse_reader` (how much of a streamed stem is in memory)."""


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _measure_block(
    left: np.ndarray, right: np.ndarray, stereo: bool, start: int, sample_rate: int, k: tuple[float, ...],
    state: np.ndarray, n10: int, n50: int, power10: np.ndarray, power50: np.ndarray, hops: np.ndarray,
    stats: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Measure samples ``[start, start + n)`` of a stem (``left``/``right``: float32 ``(n,)``
    rows; ``right`` is ignored unless ``stereo``), adding into stem-wide float64 accumulators:

    * ``power10[f]``, ``power50[f]``: Σ x² over channels of 10/50 ms frame ``f`` (``f·n``…);
      a partial last frame is dropped (there is no slot for it) unless it is the only one;
    * ``hops[j]``: Σ K-weighted² over channels of 100 ms hop ``j`` (``[j·fs // 10, (j+1)·fs // 10)``),
      the last entry collecting what follows the last complete hop;
    * ``stats``: ``[peak, L·L, R·R, L·R, L, R]`` (peak is a maximum, the others sums);
    * ``state``: ``(channels, 6)`` K-weighting filter state, carried from block to block.

    The block is cut where any frame or hop ends, so each run needs only plain sums.
    """
    n = left.size
    sl = (state[0, 0], state[0, 1], state[0, 2], state[0, 3], state[0, 4], state[0, 5])
    sr = (state[-1, 0], state[-1, 1], state[-1, 2], state[-1, 3], state[-1, 4], state[-1, 5])
    peak, ll_total, rr_total, lr_total, l_total, r_total = stats[0], 0.0, 0.0, 0.0, 0.0, 0.0
    i = 0
    while i < n:
        t = start + i
        f10, f50 = t // n10, t // n50
        hop = (10 * (t + 1) - 1) // sample_rate  # the hop holding sample t
        stop = min(n, (f10 + 1) * n10 - start, (f50 + 1) * n50 - start, (hop + 1) * sample_rate // 10 - start)
        ll = rr = lr = kk = ls = rs = 0.0
        if stereo:
            for j in range(i, stop):
                a, b = np.float64(left[j]), np.float64(right[j])
                za, sl = k_weight_step(a, k, sl)
                zb, sr = k_weight_step(b, k, sr)
                ll += a * a
                rr += b * b
                lr += a * b
                ls += a
                rs += b
                kk += za * za + zb * zb
                peak = max(peak, abs(a), abs(b))
        else:
            for j in range(i, stop):
                a = np.float64(left[j])
                za, sl = k_weight_step(a, k, sl)
                ll += a * a
                ls += a
                kk += za * za
                peak = max(peak, abs(a))
        if f10 < power10.size:
            power10[f10] += ll + rr
        if f50 < power50.size:
            power50[f50] += ll + rr
        hops[min(hop, hops.size - 1)] += kk
        ll_total += ll
        rr_total += rr
        lr_total += lr
        l_total += ls
        r_total += rs
        i = stop
    stats[0] = peak
    stats[1] += ll_total
    stats[2] += rr_total
    stats[3] += lr_total
    stats[4] += l_total
    stats[5] += r_total
    for c in range(6):
        state[0, c] = sl[c]
        if stereo:
            state[1, c] = sr[c]


def _copy_windows(x: np.ndarray, start: int, starts: np.ndarray, frames: np.ndarray) -> None:
    """Copy the mono downmix of block ``x`` (samples ``start…``) into the spectrum windows
    (``frames[k]`` holds samples ``starts[k]…``) that overlap it."""
    nperseg = frames.shape[1]
    stop = start + x.shape[1]
    first = int(np.searchsorted(starts, start - nperseg, side="right"))
    for k in range(first, starts.size):
        s = int(starts[k])
        if s >= stop:
            break
        lo, hi = max(s, start), min(s + nperseg, stop)
        out = frames[k, lo - s : hi - s]
        if x.shape[0] == 1:
            out[:] = x[0, lo - start : hi - start]
        else:  # the float32 mean of the channels, as ndarray.mean(axis=0)
            np.add(x[0, lo - start : hi - start], x[1, lo - start : hi - start], out=out)
            out *= np.float32(0.5)


def analyse_reader(read: Reader, channels: int, samples: int, sample_rate: int) -> StemFeatures:
    """Measure one stem given as a block reader (see :data:`Reader`), reading each sample once.
    Same result for a file on disk and the same samples in memory."""
    if channels not in (1, 2):
        raise ValueError(f"a stem has 1 or 2 channels, got {channels}")
    n10, n50 = max(1, round(0.01 * sample_rate)), max(1, round(FRAME_S * sample_rate))
    power10 = np.zeros(max(1, samples // n10))  # a stem shorter than a frame: one zero-padded frame
    power50 = np.zeros(max(1, samples // n50))
    hops = np.zeros((10 * (samples + 1) - 1) // sample_rate + 1)  # complete 100 ms hops, then the rest
    stats = np.zeros(6)  # peak, L·L, R·R, L·R, L, R
    state = np.zeros((channels, 6))
    k = k_weighting_coefficients(sample_rate)
    nperseg, starts = _spectrum_layout(samples, sample_rate)
    frames = np.zeros((starts.size, nperseg), dtype=np.float32)
    for start in range(0, samples, ANALYSIS_BLOCK_SAMPLES):
        x = np.asarray(read(start, min(start + ANALYSIS_BLOCK_SAMPLES, samples)), dtype=np.float32)
        rows = [np.ascontiguousarray(row) for row in x]  # views for stems in memory
        _measure_block(rows[0], rows[-1], channels == 2, start, sample_rate, k, state, n10, n50,
                       power10, power50, hops, stats)
        _copy_windows(x, start, starts, frames)
    power10 /= channels * n10
    power50 /= channels * n50

    peak = float(stats[0])
    peak_db = 20.0 * math.log10(peak) if peak > 0 else -200.0
    rms_db = _active_rms_db(power50)

    freqs, psd, median_psd = _spectra_from_frames(frames, sample_rate)
    audible = freqs >= 20.0
    total = float(psd[audible].sum())
    if total > 0:
        centroid = float((freqs[audible] * psd[audible]).sum() / total)
        low_ratio = float(psd[audible & (freqs < LOW_FREQ_HZ)].sum() / total)
        cumulative = np.cumsum(psd[audible]) / total
        low_edge = float(freqs[audible][np.searchsorted(cumulative, 0.05)])
    else:
        centroid, low_ratio, low_edge = 0.0, 0.0, 20.0

    resonance_hz, resonance_db = find_resonance(freqs, median_psd)

    # The DC offset's power is the mean of each channel squared; the total power Σx²/n.
    sums, squares = stats[4:4 + channels], stats[1:1 + channels]
    total_power = float(squares.sum())
    dc_share = min(1.0, float(np.square(sums).sum()) / (samples * total_power)) if total_power > 0 else 0.0

    correlation = 1.0
    if channels == 2:
        denom = math.sqrt(float(stats[1]) * float(stats[2]))
        correlation = float(stats[3]) / denom if denom > 0 else 0.0

    return StemFeatures(
        lufs=lufs_from_hops(hops[:-1], samples, sample_rate, float(hops[-1])),
        peak_dbfs=peak_db,
        active_rms_dbfs=rms_db,
        crest_db=peak_db - rms_db,
        transient_db=_transient_db(power10),
        centroid_hz=centroid,
        low_ratio=low_ratio,
        low_edge_hz=low_edge,
        stereo_correlation=correlation,
        resonance_hz=resonance_hz,
        resonance_db=resonance_db,
        dc_share=dc_share,
    )


def analyse_stem(audio: np.ndarray, sample_rate: int) -> StemFeatures:
    """Measure one stem, float32 ``(channels, samples)``."""
    audio = np.asarray(audio, dtype=np.float32)
    return analyse_reader(lambda a, b: audio[:, a:b], audio.shape[0], audio.shape[1], sample_rate)


# --------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------

PERCUSSIVE_TRANSIENT_DB = 9.0
"""Envelope spikiness (:func:`transient_db`) from which a source counts as percussive."""

SUSTAINED_TRANSIENT_DB = 5.0
"""Envelope spikiness below which a source counts as sustained (pads, drones)."""

ROLES: tuple[str, ...] = (
    "kick", "snare", "hats", "drums", "bass", "lead_vocal", "backing_vocal",
    "lead", "guitar", "keys", "pad", "fx", "melodic", "silent",
)
"""Every role a stem can get. ``melodic`` is a pitched source the rules could not name;
``silent`` a stem with nothing audible in it (only a DC offset)."""

# Checked in this order, so "bass drum" is a kick and "lead vocal" a vocal, not a lead.
# Keywords of 4+ letters match anywhere in the name; shorter ones only as a whole word.
_NAME_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("backing_vocal", ("backing", "bgv", "bv", "bvs", "bvox", "harmony", "harmonies", "choir", "adlib", "dbl")),
    ("lead_vocal", ("vocal", "vox", "voc", "voice", "singer", "lv", "leadvox")),
    ("kick", ("kick", "kik", "bd", "bassdrum")),
    ("snare", ("snare", "snr", "sd", "clap", "rimshot", "rim")),
    ("hats", ("hihat", "hat", "hats", "hh", "cymbal", "ride", "crash", "shaker", "tamb", "tambourine",
              "overhead", "oh")),
    ("drums", ("drum", "drums", "tom", "toms", "perc", "room", "kit", "conga", "bongo", "cowbell")),
    ("bass", ("bass", "sub", "808", "bs")),
    ("fx", ("fx", "sfx", "riser", "sweep", "impact", "noise", "efx")),
    ("pad", ("pad", "pads", "strings", "string", "str", "atmos", "ambient", "drone")),
    ("lead", ("lead", "solo", "melody", "mel", "sax", "trumpet", "flute", "violin", "whistle")),
    ("guitar", ("guitar", "gtr", "gtrs", "git", "acoustic", "strum")),
    ("keys", ("keys", "key", "piano", "pno", "organ", "rhodes", "epiano", "synth", "arp", "pluck", "bell")),
)


def _name_tokens(name: str) -> tuple[list[str], str]:
    base = name.rsplit(".", 1)[0] if "." in name else name
    base = re.sub(r"([a-z])([A-Z])", r"\1 \2", base).casefold()  # "LeadVox" → "lead vox"
    tokens = [t for t in re.split(r"[^a-z0-9]+", base) if t]
    words = [re.sub(r"\d+$", "", t) or t for t in tokens]  # "kick01" → "kick", "808" stays
    return words, "".join(words)


def role_from_name(name: str) -> tuple[str | None, str | None]:
    """The role a file name announces, and the keyword that decided it (or ``(None, None)``)."""
    words, joined = _name_tokens(name)
    for role, keywords in _NAME_KEYWORDS:
        for keyword in keywords:
            if keyword in words or (len(keyword) >= 4 and keyword in joined):
                return role, keyword
    return None, None


def role_from_audio(f: StemFeatures) -> tuple[str, str]:
    """Guess a role from features alone; returns ``(role, reason)``.

    The tree follows how engineers listen: low-frequency weight first (kick vs bass:
    percussive vs sustained envelope), then brightness (cymbals), then transients (other
    drums), then stereo-ness with a steady envelope (pads), else melodic. A stem that is only
    a DC offset is ``silent`` (its power is all below 20 Hz, but it is no bass).
    """
    if f.only_dc:
        return "silent", f"nothing audible ({f.dc_share:.2%} of its power is a DC offset)"
    percussive = f.transient_db >= PERCUSSIVE_TRANSIENT_DB
    if f.low_ratio >= 0.5:
        low = f"{f.low_ratio:.0%} of power below {LOW_FREQ_HZ:g} Hz"
        if percussive:
            return "kick", f"{low}, percussive (transients {f.transient_db:.0f} dB)"
        return "bass", f"{low}, sustained (transients {f.transient_db:.0f} dB)"
    if f.centroid_hz >= 4000.0:
        return "hats", f"bright (centroid {f.centroid_hz:.0f} Hz)"
    if percussive:
        return "drums", f"percussive (transients {f.transient_db:.0f} dB)"
    if f.stereo_correlation < 0.7 and f.transient_db < SUSTAINED_TRANSIENT_DB:
        wide = f"L/R correlation {f.stereo_correlation:.2f}"
        return "pad", f"wide ({wide}) and sustained (transients {f.transient_db:.0f} dB)"
    return "melodic", f"pitched, centroid {f.centroid_hz:.0f} Hz"


def infer_role(name: str, features: StemFeatures) -> tuple[str, str]:
    """Role of a stem from its file name, else from its audio; returns ``(role, why)``.

    A stem with nothing audible is ``silent`` whatever its name says."""
    role, keyword = role_from_name(name) if not features.only_dc else (None, None)
    if role is not None:
        return role, f"role {role} from name ({keyword!r})"
    role, reason = role_from_audio(features)
    return role, f"role {role} from audio: {reason}"
