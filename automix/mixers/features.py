"""Stem analysis for the mixers that need no training: audio features and role inference.

All features are computed on the stem as loaded (before any processing), from a mono
downmix except the stereo correlation. Levels are dBFS, frequencies Hz.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from automix.console.loudness import integrated_lufs

LOW_FREQ_HZ = 150.0
"""Power below this frequency counts as low-frequency energy (kick and bass territory)."""

RESONANCE_BAND_HZ = (200.0, 5000.0)
"""Where the resonance finder looks: the band where ringing and masking are most audible."""

RESONANCE_AUDIBLE_DB = 30.0
"""A resonance candidate must be within this many dB of the spectrum's strongest bin."""

FRAME_S = 0.05
ACTIVE_RANGE_DB = 40.0
"""Frames more than this far below the loudest frame are rests, not signal (for RMS/crest)."""


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


def _db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 1e-20 else -200.0


def frame_power(audio: np.ndarray, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """Mean power (averaged over channels) of consecutive non-overlapping frames, ``(frames,)``.

    Args:
        audio: ``(channels, samples)`` or ``(samples,)``.
    """
    x = np.atleast_2d(audio).astype(np.float64)
    n = max(1, round(frame_s * sample_rate))
    frames = max(1, x.shape[-1] // n)
    x = x[:, : frames * n]
    if x.shape[-1] < n:
        x = np.pad(x, ((0, 0), (0, n - x.shape[-1])))
    return np.mean(x.reshape(x.shape[0], frames, n) ** 2, axis=(0, 2))


def _active(power: np.ndarray) -> np.ndarray:
    """The frames within :data:`ACTIVE_RANGE_DB` of the loudest one (rests dropped)."""
    loudest = float(power.max())
    if loudest <= 0:
        return power[:0]
    return power[power >= loudest * 10 ** (-ACTIVE_RANGE_DB / 10)]


def active_rms_dbfs(audio: np.ndarray, sample_rate: int) -> float:
    """RMS level (dBFS) over the frames that are playing, rests ignored."""
    active = _active(frame_power(audio, sample_rate))
    return _db(float(active.mean())) if active.size else -200.0


def transient_db(audio: np.ndarray, sample_rate: int) -> float:
    """How spiky the 10 ms envelope is: 90th over 50th percentile of active frame power, dB.

    About 0–3 dB for sustained sources (pads, bass notes), 10+ dB for drum hits.
    """
    active = _active(frame_power(audio, sample_rate, 0.01))
    if active.size < 2:
        return 0.0
    return _db(float(np.percentile(active, 90))) - _db(float(np.percentile(active, 50)))


MAX_SPECTRUM_FRAMES = 256
"""Spectra average at most this many evenly spaced frames (~95 s at 44.1 kHz): plenty to
characterise a stem, and analysis time stays flat for long songs."""


def spectra(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(freqs_hz, mean_power, median_power)`` over Hann-windowed frames (50 % overlap).

    Frames are ~0.2 s (about 5 Hz resolution, so a resonance a few Hz wide stands out). The
    median over time keeps only what is present most of the time (resonances, not passing notes).
    """
    x = mono.astype(np.float64)
    nperseg = int(2 ** math.ceil(math.log2(sample_rate / 5.0)))
    nperseg = min(nperseg, 1 << int(math.log2(max(256, x.size))))
    if x.size < nperseg:
        x = np.pad(x, (0, nperseg - x.size))
    starts = np.arange(0, x.size - nperseg + 1, nperseg // 2)
    if starts.size > MAX_SPECTRUM_FRAMES:
        starts = starts[np.linspace(0, starts.size - 1, MAX_SPECTRUM_FRAMES).round().astype(int)]
    window = np.hanning(nperseg)
    frames = np.stack([x[s : s + nperseg] for s in starts]) * window
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(nperseg, 1.0 / sample_rate)
    return freqs, power.mean(axis=0), np.median(power, axis=0)


def find_resonance(freqs: np.ndarray, psd: np.ndarray) -> tuple[float, float]:
    """Strongest narrow peak in :data:`RESONANCE_BAND_HZ` relative to a 1/3-octave median.

    Args:
        freqs, psd: a power spectrum (use a median-over-time one so only persistent peaks,
            not passing melody notes, show up).

    Returns:
        ``(frequency_hz, prominence_db)``; prominence 0 when the band is flat or empty.
    """
    psd_db = 10.0 * np.log10(np.maximum(psd, 1e-20))
    lo, hi = RESONANCE_BAND_HZ
    best_hz, best_db = 0.0, 0.0
    third = 2.0 ** (1.0 / 6.0)  # half of a third of an octave each side
    audible = psd_db >= psd_db.max() - RESONANCE_AUDIBLE_DB  # ignore "peaks" in the noise floor
    for i in np.flatnonzero((freqs >= lo) & (freqs <= hi) & audible):
        window = (freqs >= freqs[i] / third) & (freqs <= freqs[i] * third)
        prominence = float(psd_db[i] - np.median(psd_db[window]))
        if prominence > best_db:
            best_hz, best_db = float(freqs[i]), prominence
    return best_hz, best_db


def analyse_stem(audio: np.ndarray, sample_rate: int) -> StemFeatures:
    """Measure one stem, float32 ``(channels, samples)``."""
    audio = np.asarray(audio, dtype=np.float32)
    mono = audio.mean(axis=0)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    peak_db = 20.0 * math.log10(peak) if peak > 0 else -200.0
    rms_db = active_rms_dbfs(audio, sample_rate)

    freqs, psd, median_psd = spectra(mono, sample_rate)
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

    if audio.shape[0] == 2:
        left, right = audio[0].astype(np.float64), audio[1].astype(np.float64)
        denom = math.sqrt(float(left @ left) * float(right @ right))
        correlation = float(left @ right) / denom if denom > 0 else 0.0
    else:
        correlation = 1.0

    return StemFeatures(
        lufs=float(integrated_lufs(audio, sample_rate)),
        peak_dbfs=peak_db,
        active_rms_dbfs=rms_db,
        crest_db=peak_db - rms_db,
        transient_db=transient_db(audio, sample_rate),
        centroid_hz=centroid,
        low_ratio=low_ratio,
        low_edge_hz=low_edge,
        stereo_correlation=correlation,
        resonance_hz=resonance_hz,
        resonance_db=resonance_db,
    )


# --------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------

PERCUSSIVE_TRANSIENT_DB = 9.0
"""Envelope spikiness (:func:`transient_db`) from which a source counts as percussive."""

SUSTAINED_TRANSIENT_DB = 5.0
"""Envelope spikiness below which a source counts as sustained (pads, drones)."""

ROLES: tuple[str, ...] = (
    "kick", "snare", "hats", "drums", "bass", "lead_vocal", "backing_vocal",
    "lead", "guitar", "keys", "pad", "fx", "melodic",
)
"""Every role a stem can get. ``melodic`` is a pitched source the rules could not name."""

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
    drums), then stereo-ness with a steady envelope (pads), else melodic.
    """
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
    """Role of a stem from its file name, else from its audio; returns ``(role, why)``."""
    role, keyword = role_from_name(name)
    if role is not None:
        return role, f"role {role} from name ({keyword!r})"
    role, reason = role_from_audio(features)
    return role, f"role {role} from audio: {reason}"
