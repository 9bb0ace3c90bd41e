"""Random console settings that sound like a plausible mix (Method 1 ground truth).

Uniform draws over the schema ranges would mostly produce absurd mixes (faders at −38 dB,
+15 dB EQ spikes, 20:1 compression everywhere), and a model trained on them learns nothing
about real mixes. The draws below are musically plausible instead: most faders within
±12 dB, EQ mostly gentle with many bands left flat, compressors off or moderate, some sends.
Every value is finally clipped into its schema range; ranges themselves come from the schema.
All draws use the caller's ``numpy.random.Generator`` so a seed reproduces them exactly.
"""

from __future__ import annotations

import numpy as np

from automix.console.schema import EQ_BANDS, FX, MASTER, TRACK, ParamGroup


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _band_freq(rng: np.random.Generator, group: ParamGroup, prefix: str, band: str) -> float:
    spec = group.spec(f"{prefix}{band}.freq_hz")
    return _log_uniform(rng, spec.minimum, spec.maximum)


def _eq(rng: np.random.Generator, group: ParamGroup, prefix: str, values: np.ndarray,
        gain_sd_db: float, active_prob: float) -> None:
    """High-pass on half the strips; each band active with ``active_prob``, gain ~ N(0, sd)."""
    if rng.random() < 0.5:
        values[group.index(f"{prefix}highpass.freq_hz")] = _log_uniform(rng, 20.0, 250.0)
    for band in EQ_BANDS:
        values[group.index(f"{prefix}{band}.freq_hz")] = _band_freq(rng, group, prefix, band)
        q_hi = 1.0 if "shelf" in band else 4.0
        values[group.index(f"{prefix}{band}.q")] = _log_uniform(rng, 0.5, q_hi)
        if rng.random() < active_prob:
            values[group.index(f"{prefix}{band}.gain_db")] = float(np.clip(rng.normal(0.0, gain_sd_db), -12, 12))


def _compressor(rng: np.random.Generator, group: ParamGroup, prefix: str, values: np.ndarray,
                on_prob: float, threshold_range_db: tuple[float, float], ratio_max: float) -> None:
    """Off (ratio 1) or moderate: threshold in range, ratio 1.5…max, usual time constants."""
    if rng.random() >= on_prob:
        return
    values[group.index(f"{prefix}threshold_db")] = rng.uniform(*threshold_range_db)
    values[group.index(f"{prefix}ratio")] = _log_uniform(rng, 1.5, ratio_max)
    values[group.index(f"{prefix}attack_ms")] = _log_uniform(rng, 1.0, 50.0)
    values[group.index(f"{prefix}release_ms")] = _log_uniform(rng, 40.0, 500.0)
    values[group.index(f"{prefix}knee_db")] = rng.uniform(0.0, 12.0)
    values[group.index(f"{prefix}makeup_db")] = rng.uniform(0.0, 6.0)


def random_track_params(rng: np.random.Generator, is_stereo: np.ndarray) -> np.ndarray:
    """Plausible physical track settings for stems already trimmed to a common loudness.

    Args:
        rng: random generator.
        is_stereo: ``(tracks,)`` bool.

    Returns:
        ``(tracks, len(TRACK))`` float64; ``trim_db`` is 0 (the stems arrive normalised).
    """
    rows = []
    for stereo in np.asarray(is_stereo, dtype=bool):
        v = TRACK.defaults()
        _eq(rng, TRACK, "eq.", v, gain_sd_db=4.0, active_prob=0.5)
        _compressor(rng, TRACK, "compressor.", v, on_prob=0.5, threshold_range_db=(-35.0, -10.0), ratio_max=6.0)
        v[TRACK.index("gain_db")] = float(np.clip(rng.normal(-3.0, 5.0), -20.0, 9.0))
        if rng.random() < 0.7:
            v[TRACK.index("pan")] = rng.uniform(-0.8, 0.8)
        if stereo:
            v[TRACK.index("width")] = rng.uniform(0.5, 1.5)
        if rng.random() < 0.5:
            v[TRACK.index("send.reverb_db")] = rng.uniform(-30.0, -6.0)
        rows.append(v)
    out = np.stack(rows) if rows else np.zeros((0, len(TRACK)))
    return np.clip(out, TRACK.minimum(), TRACK.maximum())


def random_fx_params(rng: np.random.Generator) -> np.ndarray:
    """Plausible reverb: 0.4–3 s decay, modest pre-delay, return −12…0 dB. ``(len(FX),)``."""
    v = FX.defaults()
    v[FX.index("reverb.decay_s")] = _log_uniform(rng, 0.4, 3.0)
    v[FX.index("reverb.predelay_ms")] = rng.uniform(0.0, 50.0)
    v[FX.index("reverb.damping")] = rng.uniform(0.2, 0.8)
    v[FX.index("reverb.return_db")] = rng.uniform(-12.0, 0.0)
    return np.clip(v, FX.minimum(), FX.maximum())


def random_master_params(rng: np.random.Generator) -> np.ndarray:
    """Gentle master: small EQ moves, optional light glue compression, unity gain. ``(len(MASTER),)``."""
    v = MASTER.defaults()
    _eq(rng, MASTER, "eq.", v, gain_sd_db=1.5, active_prob=0.4)
    v[MASTER.index("eq.highpass.freq_hz")] = min(v[MASTER.index("eq.highpass.freq_hz")], 40.0)
    _compressor(rng, MASTER, "compressor.", v, on_prob=0.4, threshold_range_db=(-24.0, -8.0), ratio_max=4.0)
    return np.clip(v, MASTER.minimum(), MASTER.maximum())

