"""Loudness / true-peak measurement and the output stage (loudness normalisation + limiter)."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import scipy.signal
from signals import sine as _signal_sine

from automix.console import finalize as finalize_module
from automix.console import loudness
from automix.console.finalize import MAX_LIMITER_DRIVE_DB, finalize
from automix.console.loudness import (
    SILENCE_LUFS,
    TRUE_PEAK_FLOOR_DB,
    integrated_lufs,
    interval_peaks,
    sample_peak_db,
    true_peak_dbtp,
)
from automix.errors import ParamsError

SR = 44100


def sine(freq_hz: float, peak_dbfs: float, seconds: float, sr: int = SR, phase: float = 0.0) -> np.ndarray:
    return _signal_sine(freq_hz, seconds, amplitude=10 ** (peak_dbfs / 20), sr=sr, phase=phase, dtype=np.float64)


def square(peak: float, seconds: float = 6.0, freq_hz: float = 110.0) -> np.ndarray:
    """Naive (aliased) stereo square wave: samples are exactly ±peak, true peak is higher."""
    t = np.arange(int(seconds * SR)) / SR
    wave = np.where((t * freq_hz) % 1.0 < 0.5, peak, -peak)
    return np.stack([wave, wave]).astype(np.float32)


def drums(seconds: float = 8.0, seed: int = 0) -> np.ndarray:
    """Dense drum-like stereo loop: kick, snare and hi-hat hits on 8th notes at 120 bpm."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = np.zeros((2, n))
    hit = np.arange(int(0.25 * SR)) / SR
    kick = 0.9 * np.sin(2 * np.pi * np.cumsum(50 + 90 * np.exp(-hit / 0.02)) / SR) * np.exp(-hit / 0.07)
    step = int(0.25 * SR)
    for i, start in enumerate(range(0, n - hit.size, step)):
        if i % 4 == 0:
            out[:, start:start + hit.size] += kick
        if i % 4 == 2:
            body = 0.5 * np.sin(2 * np.pi * 185 * hit) * np.exp(-hit / 0.05)
            out[:, start:start + hit.size] += body + 0.4 * rng.standard_normal((2, hit.size)) * np.exp(-hit / 0.06)
        hat = rng.standard_normal((2, hit.size)) * np.exp(-hit / 0.01)
        out[:, start:start + hit.size] += 0.15 * np.diff(hat, prepend=0.0, axis=1)
    return out.astype(np.float32)


def pink_noise(lufs: float, seconds: float = 8.0, seed: int = 1) -> np.ndarray:
    """Stereo noise with a 1/f power spectrum, scaled to ``lufs``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    shape = 1 / np.sqrt(np.maximum(freqs, 20.0))
    spectra = shape * (rng.standard_normal((2, freqs.size)) + 1j * rng.standard_normal((2, freqs.size)))
    noise = np.fft.irfft(spectra, n)
    noise *= 0.1 / noise.std()  # irfft output is tiny (below the -70 LUFS gate) until scaled
    noise *= 10 ** ((lufs - integrated_lufs(noise, SR)) / 20)
    return noise.astype(np.float32)


SIGNALS = {
    "square_0dBFS": lambda: square(1.0),
    "square_+6dBFS": lambda: square(2.0),
    "drums": drums,
    "pink_-30LUFS": lambda: pink_noise(-30.0),
}


# --------------------------------------------------------------------------------------
# Loudness
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("sr", [44100, 48000])
def test_bs1770_sine_calibration(sr: int) -> None:
    # BS.1770-4: a 0 dBFS 997 Hz sine in ONE channel reads -3.01 LUFS; mono is one channel.
    tone = sine(997, 0.0, 5.0, sr)
    assert integrated_lufs(tone[None], sr) == pytest.approx(-3.01, abs=0.02)
    assert integrated_lufs(0.1 * tone[None], sr) == pytest.approx(-23.01, abs=0.02)
    # The same tone in both channels has twice the power: 0.00 LUFS (not -3.01).
    assert integrated_lufs(np.stack([tone, tone]), sr) == pytest.approx(0.0, abs=0.02)
    # EBU Tech 3341 test 1: stereo 1 kHz sine at -23 dBFS reads -23.0 LUFS.
    minus23 = sine(1000, -23.0, 20.0, sr)
    assert integrated_lufs(np.stack([minus23, minus23]), sr) == pytest.approx(-23.0, abs=0.1)


def test_matches_pyloudnorm_itu_filters() -> None:
    rng = np.random.default_rng(3)
    n = 73 * SR // 10  # a whole number of 100 ms hops, so both block layouts coincide
    audio = rng.standard_normal((2, n)) * np.linspace(0.01, 0.5, n)
    reference = pyloudnorm.Meter(SR, filter_class="DeMan").integrated_loudness(audio.T)
    assert integrated_lufs(audio, SR) == pytest.approx(reference, abs=1e-6)
    assert integrated_lufs(audio.astype(np.float32), SR) == pytest.approx(reference, abs=1e-4)


def test_mono_equals_constant_power_centre_pan() -> None:
    rng = np.random.default_rng(4)
    mono = rng.standard_normal((1, 3 * SR)) * 0.1
    centred = np.concatenate([mono, mono]) / np.sqrt(2)
    assert integrated_lufs(mono, SR) == pytest.approx(integrated_lufs(centred, SR), abs=1e-9)


def test_gating_ignores_silence_and_quiet_passages() -> None:
    loud = sine(997, -20.0, 6.0)
    reference = integrated_lufs(loud[None], SR)
    with_silence = np.concatenate([loud, np.zeros(6 * SR)])[None]
    # Ungated, half silence would read 3.01 dB lower; gated, only the three blocks straddling
    # the tone's end (75/50/25 % tone) pull the mean down: 10*log10(58.5/60) = -0.11 LU.
    assert integrated_lufs(with_silence, SR) == pytest.approx(reference - 0.11, abs=0.01)
    # A passage 20 dB quieter falls under the relative gate (10 LU below the gated mean).
    with_quiet = np.concatenate([loud, 0.1 * loud])[None]
    assert integrated_lufs(with_quiet, SR) == pytest.approx(reference, abs=0.2)


def test_short_signal_and_silence() -> None:
    tone = sine(997, -20.0, 4.0)[None]
    long_reading = integrated_lufs(tone, SR)
    short_reading = integrated_lufs(tone[:, : int(0.2 * SR)], SR)  # half a gating block
    assert short_reading == pytest.approx(long_reading, abs=0.05)
    assert integrated_lufs(np.zeros((2, 3 * SR)), SR) == SILENCE_LUFS
    assert integrated_lufs(np.zeros((2, 100)), SR) == SILENCE_LUFS
    assert integrated_lufs(np.zeros((2, 0)), SR) == SILENCE_LUFS
    assert integrated_lufs(1e-6 * tone, SR) == SILENCE_LUFS  # -143 LUFS: below the absolute gate


def test_chunked_loudness_equals_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    audio = drums(5.0)
    whole = integrated_lufs(audio, SR)
    monkeypatch.setattr(loudness, "_CHUNK_SAMPLES", 12345)
    assert integrated_lufs(audio, SR) == pytest.approx(whole, abs=1e-9)
    # At 11025 Hz a 100 ms hop is 1102.5 samples: chunk ends fall between hop boundaries.
    audio = audio[:, : 3 * SR // 4]
    for chunk in (1102, 1103, 4410, 1 << 20):
        monkeypatch.setattr(loudness, "_CHUNK_SAMPLES", chunk)
        readings = integrated_lufs(audio, 11025)
        if chunk == 1102:
            reference = readings
        assert readings == pytest.approx(reference, abs=1e-9)


def test_loudness_rejects_bad_layout() -> None:
    with pytest.raises(ValueError, match="channels, samples"):
        integrated_lufs(np.zeros(1000), SR)
    with pytest.raises(ValueError, match="channels"):
        integrated_lufs(np.zeros((8, 1000)), SR)


# --------------------------------------------------------------------------------------
# Peaks
# --------------------------------------------------------------------------------------

def test_true_peak_finds_inter_sample_peak() -> None:
    # fs/4 with a 45 degree phase: every sample sits at ±0.707 (-3.01 dBFS), the waveform peaks at 1.
    n = 2 * SR
    wave = np.sin(2 * np.pi * np.arange(n) / 4 + np.pi / 4) * np.hanning(n) ** 0.05
    audio = wave[None]
    assert sample_peak_db(audio) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbtp(audio, SR) == pytest.approx(0.0, abs=0.5)
    assert true_peak_dbtp(audio, SR) == pytest.approx(0.0, abs=0.05)  # and in fact much closer


def test_true_peak_matches_fine_oversampling() -> None:
    rng = np.random.default_rng(5)
    sos = scipy.signal.butter(10, 0.7, output="sos")  # content up to 0.35 fs (15 kHz at 44.1 kHz)
    audio = scipy.signal.sosfilt(sos, rng.standard_normal((2, SR)), axis=-1)
    fine = scipy.signal.resample_poly(audio, 32, 1, axis=-1, window=("kaiser", 10.0))
    reference_db = 20 * np.log10(np.abs(fine[:, 1000:-1000]).max())
    assert true_peak_dbtp(audio, SR) == pytest.approx(reference_db, abs=0.1)
    assert true_peak_dbtp(audio, SR) >= sample_peak_db(audio)


def test_peaks_of_silence_and_chunking() -> None:
    assert true_peak_dbtp(np.zeros((2, 1000)), SR) == TRUE_PEAK_FLOOR_DB
    assert sample_peak_db(np.zeros((2, 1000))) == TRUE_PEAK_FLOOR_DB
    assert sample_peak_db(np.array([[0.0, -0.5, 0.25]])) == pytest.approx(-6.0206, abs=1e-4)
    audio = drums(2.0)
    whole = interval_peaks(audio)
    pieces = np.concatenate([interval_peaks(audio, a, min(a + 5000, audio.shape[1]))
                             for a in range(0, audio.shape[1], 5000)])
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------
# finalize
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signals() -> dict[str, np.ndarray]:
    return {name: make() for name, make in SIGNALS.items()}


@pytest.mark.parametrize("name", list(SIGNALS))
@pytest.mark.parametrize("ceiling_dbtp", [-1.0, -0.1, -6.0])
@pytest.mark.parametrize("target_lufs", [-14.0, -23.0, -10.0])
def test_finalize_ceiling_and_loudness(signals, name: str, ceiling_dbtp: float, target_lufs: float) -> None:
    mix = signals[name]
    out, report = finalize(mix, SR, target_lufs, ceiling_dbtp)
    assert out.dtype == np.float32 and out.shape == mix.shape
    assert np.isfinite(out).all()
    peak = true_peak_dbtp(out, SR)
    assert peak <= ceiling_dbtp
    assert report.true_peak_dbtp == pytest.approx(peak, abs=1e-3)  # predicted when far under the ceiling
    measured = integrated_lufs(out, SR)
    assert report.output_lufs == pytest.approx(measured, abs=0.01)
    # The rule: the target is met within 0.5 LU unless reaching it would take more than
    # MAX_LIMITER_DRIVE_DB of peak limiting; then the output is quieter, never louder.
    if report.limiter_max_reduction_db < MAX_LIMITER_DRIVE_DB - 0.1:
        assert measured == pytest.approx(target_lufs, abs=0.5)
    else:
        assert measured < target_lufs + 0.5


@pytest.mark.parametrize(
    ("name", "target_lufs", "ceiling_dbtp"),
    [
        ("pink_-30LUFS", -14.0, -1.0),  # needs +16 dB and a little limiting
        ("pink_-30LUFS", -23.0, -6.0),
        ("drums", -16.0, -1.0),  # ~19 dB peak-to-loudness: -14 at -1 dBTP needs over 12 dB
        ("drums", -23.0, -0.1),
        ("square_0dBFS", -10.0, -0.1),
        ("square_+6dBFS", -14.0, -6.0),
    ],
)
def test_reachable_targets_are_met(signals, name: str, target_lufs: float, ceiling_dbtp: float) -> None:
    out, report = finalize(signals[name], SR, target_lufs, ceiling_dbtp)
    assert integrated_lufs(out, SR) == pytest.approx(target_lufs, abs=0.5)
    assert report.limiter_max_reduction_db < MAX_LIMITER_DRIVE_DB
    assert true_peak_dbtp(out, SR) <= ceiling_dbtp


def test_pink_noise_gain_is_reported(signals) -> None:
    # Pink noise peaks ~11 dB over its loudness: +16 dB to -14 LUFS stays under -1 dBTP ...
    out, report = finalize(signals["pink_-30LUFS"], SR, -14.0, -1.0)
    assert report.input_lufs == pytest.approx(-30.0, abs=0.01)
    assert report.gain_db == pytest.approx(16.0, abs=0.01)
    assert report.limiter_max_reduction_db == 0.0 and report.passes == 0
    assert integrated_lufs(out, SR) == pytest.approx(-14.0, abs=0.01)
    # ... while +20 dB to -10 LUFS needs ~2 dB of limiting on the highest peaks (which costs
    # less than 0.1 LU of loudness on noise, so no further gain is needed).
    out, report = finalize(signals["pink_-30LUFS"], SR, -10.0, -1.0)
    assert 1.0 < report.limiter_max_reduction_db < 4.0
    assert report.gain_db >= 20.0 - 0.01
    assert report.passes >= 1
    assert integrated_lufs(out, SR) == pytest.approx(-10.0, abs=0.5)


def test_limiter_does_not_touch_quiet_material(signals) -> None:
    # At -23 LUFS the drums peak under -1 dBTP: the output is exactly the input times one gain.
    mix = signals["drums"]
    out, report = finalize(mix, SR, -23.0, -1.0)
    assert report.limiter_max_reduction_db == 0.0
    gain = 10 ** (report.gain_db / 20)
    np.testing.assert_allclose(out, mix * gain, rtol=1e-6, atol=1e-9)


def test_unreachable_target_stops_at_drive_limit() -> None:
    # One loud click over quiet noise: reaching -10 LUFS would need ~35 dB off the click.
    rng = np.random.default_rng(6)
    mix = (0.01 * rng.standard_normal((2, 6 * SR))).astype(np.float32)
    mix[:, SR] = 1.0
    out, report = finalize(mix, SR, -10.0, -1.0)
    assert report.limiter_max_reduction_db == pytest.approx(MAX_LIMITER_DRIVE_DB, abs=0.05)
    assert integrated_lufs(out, SR) < -10.0 - 5.0
    assert true_peak_dbtp(out, SR) <= -1.0


def test_silent_mix_is_returned_unchanged() -> None:
    for mix in (np.zeros((2, 3 * SR), dtype=np.float32), np.zeros((2, 10), dtype=np.float32)):
        out, report = finalize(mix, SR)
        assert report.silent
        assert report.gain_db == 0.0 and report.limiter_max_reduction_db == 0.0
        assert report.input_lufs == SILENCE_LUFS and report.output_lufs == SILENCE_LUFS
        assert np.array_equal(out, mix) and out.dtype == np.float32


def test_finalize_is_deterministic(signals) -> None:
    first, report_1 = finalize(signals["drums"], SR, -10.0, -1.0)
    second, report_2 = finalize(signals["drums"], SR, -10.0, -1.0)
    assert report_1 == report_2
    assert np.array_equal(first, second)


def test_chunked_limiter_matches_whole(monkeypatch: pytest.MonkeyPatch, signals) -> None:
    whole, report = finalize(signals["drums"], SR, -12.0, -1.0)
    assert report.limiter_max_reduction_db > 1.0  # the limiter is really working here
    monkeypatch.setattr(finalize_module, "_CHUNK_SAMPLES", 20000)
    monkeypatch.setattr(finalize_module, "_CACHE_ENVELOPE_MAX_SAMPLES", 0)
    chunked, chunked_report = finalize(signals["drums"], SR, -12.0, -1.0)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5)
    assert chunked_report.output_lufs == pytest.approx(report.output_lufs, abs=1e-3)
    assert true_peak_dbtp(chunked, SR) <= -1.0


def test_mono_mix_and_float64_input() -> None:
    mix = pink_noise(-20.0)[:1].astype(np.float64)
    out, report = finalize(mix, SR, -16.0, -1.0)
    assert report.output_lufs == pytest.approx(-16.0, abs=0.5)
    assert out.dtype == np.float32 and out.shape == mix.shape
    assert integrated_lufs(out, SR) == pytest.approx(-16.0, abs=0.5)


def test_finalize_rejects_bad_input() -> None:
    mix = np.zeros((2, SR), dtype=np.float32)
    with pytest.raises(ParamsError, match="target_lufs"):
        finalize(mix, SR, target_lufs=3.0)
    with pytest.raises(ParamsError, match="ceiling_dbtp"):
        finalize(mix, SR, ceiling_dbtp=1.0)
    bad = mix.copy()
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        finalize(bad, SR)
    with pytest.raises(ValueError, match="channels, samples"):
        finalize(np.zeros(SR, dtype=np.float32), SR)


def test_limiter_looks_ahead_and_releases() -> None:
    # A steady -20 dBFS tone with one 5 ms burst near 0 dBFS: only the burst should be limited.
    seconds, burst_at, burst_len = 3.0, int(1.5 * SR), int(0.005 * SR)
    t = np.arange(int(seconds * SR)) / SR
    mono = 0.1 * np.sin(2 * np.pi * 440 * t)
    mono[burst_at:burst_at + burst_len] += 0.9 * np.sin(2 * np.pi * 3000 * t[:burst_len])
    mix = np.stack([mono, mono]).astype(np.float32)
    out, report = finalize(mix, SR, integrated_lufs(mix, SR), -6.0)
    # The burst peaks ~6 dB over the ceiling; limiting it costs loudness, which a little more
    # gain (and so a little more reduction) makes up.
    assert report.passes >= 1 and 5.0 < report.limiter_max_reduction_db < 9.0
    usable = np.abs(mix[0]) > 0.03  # where the gain can be read off as out / in
    gain_db = np.full(mix.shape[1], np.nan)
    gain_db[usable] = 20 * np.log10(out[0, usable] / mix[0, usable]) - report.gain_db
    lookahead = int(finalize_module.LOOKAHEAD_MS * 1e-3 * SR)
    before = gain_db[: burst_at - lookahead - 5]
    assert np.nanmax(np.abs(before)) < 1e-3  # untouched until the look-ahead window
    assert np.nanmin(gain_db[burst_at - 3:burst_at + 3]) < -4.0  # already down when the burst starts
    release_s = finalize_module.RELEASE_MS * 1e-3
    recovered = gain_db[burst_at + burst_len + int(6 * release_s * SR):]
    assert np.nanmin(recovered) > -0.05
    halfway = gain_db[burst_at + burst_len + int(release_s * SR)]
    assert -4.0 < halfway < -0.5  # exponential release: ~1/e of the reduction after one time constant


def test_ceiling_holds_for_random_short_and_odd_signals() -> None:
    rng = np.random.default_rng(0)
    for _ in range(25):
        channels, n = int(rng.integers(1, 3)), int(rng.integers(1, 20000))
        mix = rng.standard_normal((channels, n)) * 10 ** rng.uniform(-3, 1)
        if rng.random() < 0.3:
            mix = np.cumsum(mix, axis=1) * 0.01  # low-frequency heavy
        target, ceiling = float(rng.uniform(-40, -5)), float(rng.uniform(-12, 0))
        out, report = finalize(mix.astype(np.float32), SR, target, ceiling)
        assert out.dtype == np.float32 and np.isfinite(out).all()
        assert true_peak_dbtp(out, SR) <= ceiling
        if report.silent:
            assert np.array_equal(out, mix.astype(np.float32))


def test_predicted_peak_of_a_plain_gain_matches_the_measurement(signals) -> None:
    # Without limiting the output peak is predicted (input peak + gain) instead of measured again;
    # across targets that put the peak from well under the ceiling to just under it, the
    # prediction must agree with the meter and the ceiling must hold.
    mix = signals["drums"]
    input_peak = true_peak_dbtp(mix, SR)
    input_lufs = integrated_lufs(mix, SR)
    ceiling = -1.0
    for headroom_db in (6.0, 0.5, 0.02, finalize_module.PREDICTED_PEAK_MARGIN_DB + 1e-4,
                        finalize_module.PREDICTED_PEAK_MARGIN_DB - 1e-4, 0.001):
        target = input_lufs + (ceiling - headroom_db - input_peak)
        out, report = finalize(mix, SR, target, ceiling)
        measured = true_peak_dbtp(out, SR)
        assert report.passes == 0 and report.limiter_max_reduction_db == 0.0
        assert measured <= ceiling
        assert report.true_peak_dbtp == pytest.approx(measured, abs=1e-4)
        assert measured == pytest.approx(ceiling - headroom_db, abs=1e-3)


@pytest.mark.parametrize("over_db", [0.0005, 0.3, 6.0])
def test_safety_scaling_lands_under_the_ceiling_without_remeasuring(signals, over_db: float) -> None:
    # The safety stage measures once, scales, and predicts the new peak; the meter must agree.
    out = signals["drums"].copy()
    ceiling = true_peak_dbtp(out, SR) - over_db
    gain_db, reported = finalize_module._apply_safety(out, SR, ceiling)
    measured = true_peak_dbtp(out, SR)
    assert measured <= ceiling
    assert reported == pytest.approx(measured, abs=1e-4)
    assert gain_db == pytest.approx(-(over_db + finalize_module.SAFETY_MARGIN_DB), abs=1e-5)


@pytest.mark.parametrize(("taps", "cutoff", "beta"), [(49, 0.25, 8.6), (97, 0.125, 5.0), (33, 0.5, 12.0)])
def test_kaiser_lowpass_is_scipys_firwin(taps, cutoff, beta):
    import scipy.signal

    from automix.console.loudness import kaiser_lowpass

    np.testing.assert_allclose(kaiser_lowpass(taps, cutoff, beta),
                               scipy.signal.firwin(taps, cutoff, window=("kaiser", beta)), rtol=0, atol=1e-15)


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100, 48000, 96000])
def test_k_weighting_is_pyloudnorms_deman_design(sample_rate):
    import pyloudnorm

    from automix.console.loudness import k_weighting_sos

    stages = pyloudnorm.Meter(sample_rate, filter_class="DeMan")._filters.values()
    expected = np.array([np.concatenate([np.asarray(f.b) * f.passband_gain / f.a[0], np.asarray(f.a) / f.a[0]])
                         for f in stages])
    np.testing.assert_allclose(k_weighting_sos(sample_rate), expected, rtol=0, atol=1e-13)
