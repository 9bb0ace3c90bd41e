"""Console DSP building blocks: EQ, compressor, pan law, gains, reverb, send, gradients."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch
from signals import sine as _signal_sine

from automix.console.biquad import eq_sos, sos_to_numpy
from automix.console.compressor import BlockCompressor, compress
from automix.console.design import pan_matrix as design_pan_matrix
from automix.console.render import render_console
from automix.console.reverb import NOISE_SEED, gaussian_noise, reverb_ir
from automix.console.schema import FX, MASTER, TRACK, send_gain
from automix.console.settings import MixSettings
from automix.console.torch_console import mix_console, pan_matrix, process_tracks

SR = 44100


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small tensors: a second OpenMP thread only adds synchronisation cost (and the CI box is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _track(**values: float) -> torch.Tensor:
    """A neutral TRACK vector with some values set, ``(len(TRACK),)`` float64."""
    p = torch.tensor(TRACK.defaults())
    for name, v in values.items():
        p[TRACK.index(name.replace("__", "."))] = v
    return p


def _db(x: np.ndarray) -> float:
    return 10.0 * math.log10(float(np.mean(np.square(x, dtype=np.float64))))


def _sine(freq_hz: float, seconds: float, amplitude: float = 0.5, sr: int = SR) -> np.ndarray:
    return _signal_sine(freq_hz, seconds, amplitude=amplitude, sr=sr)


def _strip_gain_db(params: torch.Tensor, freq_hz: float) -> float:
    """Steady-state level change of a sine through the torch strip (mono, centre pan → +3 dB)."""
    sine = _sine(freq_hz, 1.0)
    stems = torch.zeros(1, 1, 2, sine.size)
    stems[0, 0, 0] = torch.from_numpy(sine)
    with torch.no_grad():
        out = process_tracks(stems, torch.tensor([[False]]), params[None, None].float(), SR)[0, 0, 0].numpy()
    half = sine.size // 2
    return _db(out[half:]) - _db(sine[half:]) + 20 * math.log10(math.sqrt(2.0))  # undo the −3 dB pan law


def _sosfilt_gain_db(params: torch.Tensor, freq_hz: float) -> float:
    """Same through the renderer's exact IIR (scipy sosfilt on the shared design)."""
    sine = _sine(freq_hz, 1.0).astype(np.float64)
    out = scipy.signal.sosfilt(sos_to_numpy(eq_sos(params, TRACK, SR)), sine)
    half = sine.size // 2
    return _db(out[half:]) - _db(sine[half:])


@pytest.mark.parametrize(
    ("band", "freq_hz", "gain_db", "q"),
    [("band_1", 200.0, 9.0, 2.0), ("band_2", 1000.0, -12.0, 0.7), ("band_3", 3000.0, 6.0, 8.0),
     ("band_4", 8000.0, -4.5, 1.0)],
)
def test_peaking_band_gain_at_centre(band: str, freq_hz: float, gain_db: float, q: float) -> None:
    params = _track(**{f"eq__{band}__freq_hz": freq_hz, f"eq__{band}__gain_db": gain_db, f"eq__{band}__q": q})
    flat = _track()
    for measure in (_strip_gain_db, _sosfilt_gain_db):
        measured = measure(params, freq_hz) - measure(flat, freq_hz)
        assert abs(measured - gain_db) < 0.1, (measure.__name__, measured)


@pytest.mark.parametrize(("band", "corner_hz", "probe_hz", "gain_db"),
                         [("low_shelf", 400.0, 40.0, 8.0), ("high_shelf", 1500.0, 15000.0, -10.0)])
def test_shelf_plateau_gain(band: str, corner_hz: float, probe_hz: float, gain_db: float) -> None:
    params = _track(**{f"eq__{band}__freq_hz": corner_hz, f"eq__{band}__gain_db": gain_db})
    flat = _track()
    for measure in (_strip_gain_db, _sosfilt_gain_db):
        measured = measure(params, probe_hz) - measure(flat, probe_hz)
        assert abs(measured - gain_db) < 0.1, (measure.__name__, measured)


def test_highpass_is_minus_3_db_at_cutoff_and_12_db_per_octave() -> None:
    params = _track(eq__highpass__freq_hz=400.0)
    for measure in (_strip_gain_db, _sosfilt_gain_db):
        assert abs(measure(params, 400.0) + 3.01) < 0.1
        # Two octaves below, a 2nd-order Butterworth is down 10·log10(1 + 4⁴) ≈ 24.1 dB.
        assert abs(measure(params, 100.0) + 24.09) < 0.2


def test_filters_are_stable_at_a_low_sample_rate() -> None:
    sr = 8000
    params = _track(eq__band_4__freq_hz=16000.0, eq__band_4__gain_db=12.0, eq__high_shelf__freq_hz=16000.0,
                    eq__high_shelf__gain_db=-12.0, eq__highpass__freq_hz=1000.0)
    sos = sos_to_numpy(eq_sos(params, TRACK, sr))
    poles = np.concatenate([np.roots(section[3:]) for section in sos])
    assert np.all(np.abs(poles) < 1.0)


# ---------------------------------------------------------------- compressor

def _compress_both(x: np.ndarray, threshold_db: float, ratio: float, knee_db: float, attack_ms: float,
                   release_ms: float, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """Outputs of the torch compressor and of the renderer kernel (in blocks) for mono x."""
    settings = {"threshold_db": threshold_db, "ratio": ratio, "attack_ms": attack_ms, "release_ms": release_ms,
                "knee_db": knee_db, "makeup_db": 0.0}
    xt = torch.from_numpy(x.astype(np.float64))[None, None]
    torch_out = compress(xt, xt[:, 0] ** 2, {k: torch.tensor([v]) for k, v in settings.items()}, sr)[0, 0].numpy()
    block = BlockCompressor(settings, sr)
    render_gain = np.concatenate([block.gain(x[None, i:i + 1000].astype(np.float64))
                                  for i in range(0, x.size, 1000)])
    return torch_out, x * render_gain


@pytest.mark.parametrize("knee_db", [0.0, 6.0])
@pytest.mark.parametrize(("rms_db", "expected_gain_db"),
                         [(-30.0, 0.0), (-20.0, None), (-14.0, -4.5), (-4.0, -12.0)])
def test_static_curve_on_steady_sines(knee_db: float, rms_db: float, expected_gain_db: float | None) -> None:
    # threshold −20 dB RMS, ratio 4: 16 dB over → 4 dB out, i.e. −12 dB of gain.
    if expected_gain_db is None:  # exactly at threshold: hard knee 0, soft knee (1/4 − 1)(k/2)²/(2k)
        expected_gain_db = 0.0 if knee_db == 0 else (0.25 - 1.0) * (knee_db / 2) ** 2 / (2 * knee_db)
    amplitude = math.sqrt(2.0) * 10 ** (rms_db / 20)
    x = _sine(1000.0, 0.6, amplitude).astype(np.float64)
    for y in _compress_both(x, -20.0, 4.0, knee_db, attack_ms=5.0, release_ms=50.0):
        steady = slice(x.size // 2, None)
        measured = _db(y[steady]) - _db(x[steady])
        assert abs(measured - expected_gain_db) < 0.5, measured


@pytest.mark.parametrize(("attack_ms", "release_ms"), [(40.0, 150.0), (80.0, 400.0)])
def test_attack_and_release_time_constants(attack_ms: float, release_ms: float) -> None:
    # DC steps make the gain directly observable: 1.0 (18 dB over a −18 dB threshold, ratio 10)
    # then 0.001 (far below it). The 5 ms detector adds a little lag, hence the tolerance.
    sr = 8000
    loud, quiet = int(1.0 * sr), int(2.0 * sr)
    x = np.concatenate([np.ones(loud), np.full(quiet, 1e-3)])
    for y in _compress_both(x, -18.0, 10.0, 0.0, attack_ms, release_ms, sr):
        gain = y / x
        final = gain[loud - 1]
        target = 1.0 - 0.632 * (1.0 - final)
        t_attack_ms = np.argmax(gain[:loud] <= target) / sr * 1000.0
        assert 0.85 * attack_ms < t_attack_ms < 1.3 * attack_ms, t_attack_ms
        rise = gain[loud:]
        target = final + 0.632 * (1.0 - final)
        t_release_ms = np.argmax(rise >= target) / sr * 1000.0
        assert 0.85 * release_ms < t_release_ms < 1.2 * release_ms, t_release_ms


def test_hard_knee_has_finite_gradients() -> None:
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.standard_normal((1, 1, 4000)) * 0.5)
    settings = {name: torch.tensor([value], dtype=torch.float64, requires_grad=True) for name, value in
                {"threshold_db": -12.0, "ratio": 4.0, "attack_ms": 2.0, "release_ms": 40.0, "knee_db": 0.0,
                 "makeup_db": 0.0}.items()}
    compress(x, x[:, 0] ** 2, settings, 8000).pow(2).sum().backward()
    for name in ("threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db"):
        grad = settings[name].grad
        assert grad is not None and torch.isfinite(grad).all() and float(grad.abs()) > 0, name
    assert torch.isfinite(settings["knee_db"].grad).all()


# ---------------------------------------------------------------- pan and gains

def test_mono_pan_is_constant_power_and_stereo_centre_is_unity() -> None:
    pans = torch.linspace(-1.0, 1.0, 11, dtype=torch.float64)
    params = torch.stack([_track(pan=float(p)) for p in pans])[None]
    mono = pan_matrix(params, torch.zeros(1, 11, dtype=torch.bool))[0]
    power = mono[:, 0, 0] ** 2 + mono[:, 1, 0] ** 2
    assert torch.allclose(power, torch.ones(11, dtype=torch.float64), atol=1e-12)
    assert abs(float(mono[5, 0, 0]) - math.sqrt(0.5)) < 1e-12  # −3 dB at centre
    assert float(mono[0, 1, 0]) == pytest.approx(0.0, abs=1e-12)  # hard left
    stereo = pan_matrix(params, torch.ones(1, 11, dtype=torch.bool))[0]
    assert torch.allclose(stereo[5], torch.eye(2, dtype=torch.float64), atol=1e-12)
    assert float(stereo[0, 1, 1]) == pytest.approx(0.0, abs=1e-12)  # balance hard left mutes right
    # Width 0 folds a stereo stem to mono (mid on both sides).
    narrow = pan_matrix(_track(width=0.0)[None, None], torch.ones(1, 1, dtype=torch.bool))[0, 0]
    assert torch.allclose(narrow, torch.full((2, 2), 0.5, dtype=torch.float64))


def test_trim_and_fader_scale_the_output() -> None:
    rng = np.random.default_rng(1)
    stems = torch.from_numpy(rng.standard_normal((1, 1, 2, 8000)).astype(np.float32) * 0.1)
    stereo = torch.tensor([[True]])

    def run(**values: float) -> np.ndarray:
        with torch.no_grad():
            return process_tracks(stems, stereo, _track(**values)[None, None].float(), SR)[0, 0].numpy()

    ref = run()
    for name in ("trim_db", "gain_db"):
        half = run(**{name: -6.0206})
        assert np.allclose(half, 0.5 * ref, rtol=1e-4, atol=1e-7)
        assert np.array_equal(run(**{name: 0.0}), ref)


# ---------------------------------------------------------------- reverb and send

def _fx(**values: float) -> torch.Tensor:
    p = torch.tensor(FX.defaults())
    for name, v in values.items():
        p[FX.index(f"reverb.{name}")] = v
    return p[None]


def test_reverb_ir_is_deterministic_and_unit_energy() -> None:
    a = reverb_ir(_fx(decay_s=1.0), SR)
    b = reverb_ir(_fx(decay_s=1.0), SR)
    assert torch.equal(a, b)
    assert torch.allclose(a.pow(2).sum(-1), torch.ones(1, 2, dtype=torch.float64))
    corr = float((a[0, 0] * a[0, 1]).sum())
    assert abs(corr) < 0.1  # left and right tails are decorrelated


@pytest.mark.parametrize("decay_s", [0.5, 2.0])
def test_reverb_energy_falls_60_db_at_decay_time(decay_s: float) -> None:
    predelay_ms = 20.0
    ir = reverb_ir(_fx(decay_s=decay_s, predelay_ms=predelay_ms, damping=0.0), SR)[0, 0].numpy()
    window = int(0.01 * SR)
    frames = ir[: ir.size // window * window].reshape(-1, window)
    energy_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-30)
    t = (np.arange(frames.shape[0]) + 0.5) * window / SR - predelay_ms / 1000.0
    fit = (t > 0.03) & (t < 0.8 * decay_s)
    slope_db_per_s = np.polyfit(t[fit], energy_db[fit], 1)[0]
    measured_rt60 = -60.0 / slope_db_per_s
    assert 0.8 * decay_s < measured_rt60 < 1.2 * decay_s, measured_rt60
    assert np.all(ir[: int(predelay_ms / 1000 * SR)] == 0.0)  # silent during the pre-delay


def test_damping_shortens_the_high_band() -> None:
    bright = reverb_ir(_fx(decay_s=2.0, damping=0.0), SR)[0, 0].numpy()
    dark = reverb_ir(_fx(decay_s=2.0, damping=1.0), SR)[0, 0].numpy()
    late = slice(int(0.5 * SR), int(1.0 * SR))

    def high_ratio(ir: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(ir[late])) ** 2
        freqs = np.fft.rfftfreq(ir[late].size, 1 / SR)
        return float(spectrum[freqs > 6000].sum() / spectrum.sum())

    assert high_ratio(dark) < 0.1 * high_ratio(bright)


def test_send_at_minimum_is_exactly_silent() -> None:
    assert float(send_gain(torch.tensor(-60.0))) == 0.0 and send_gain(-60.0) == 0.0
    rng = np.random.default_rng(2)
    stem = rng.standard_normal((1, 4000)).astype(np.float32) * 0.1
    settings = MixSettings.neutral(["a"])
    settings.set_fx("reverb.return_db", 0.0)
    dry = MixSettings.neutral(["a"])
    dry.set_fx("reverb.return_db", -60.0)
    dry.set("a", "send.reverb_db", -20.0)
    settings.set("a", "send.reverb_db", -60.0)
    assert np.array_equal(render_console([stem], SR, settings), render_console([stem], SR, dry))
    wet = MixSettings.neutral(["a"])
    wet.set_fx("reverb.return_db", 0.0)
    wet.set("a", "send.reverb_db", -59.0)
    assert not np.array_equal(render_console([stem], SR, wet), render_console([stem], SR, dry))


# ---------------------------------------------------------------- gradients

def test_every_continuous_parameter_gets_a_gradient() -> None:
    sr, n = 22050, 11025
    g = torch.Generator().manual_seed(3)
    t = torch.arange(n) / sr
    hits = torch.exp(-((t * 8) % 1.0) * 30.0)  # a decaying hit every 125 ms
    mono = torch.randn(n, generator=g) * hits * 0.5
    stereo = torch.stack([torch.sin(2 * math.pi * 220 * t), torch.randn(n, generator=g) * 0.3]) * hits
    stems = torch.zeros(1, 2, 2, n)
    stems[0, 0, 0] = mono
    stems[0, 1] = stereo
    is_stereo = torch.tensor([[False, True]])

    strip = {"eq.highpass.freq_hz": 60.0, "compressor.threshold_db": -30.0, "compressor.ratio": 3.0,
             "compressor.attack_ms": 5.0, "compressor.release_ms": 60.0, "compressor.knee_db": 6.0,
             "compressor.makeup_db": 2.0, "gain_db": -2.0, "trim_db": 1.0, "pan": 0.3, "width": 1.4,
             "send.reverb_db": -12.0}
    track = torch.tensor(TRACK.defaults()).repeat(1, 2, 1)
    master = torch.tensor(MASTER.defaults())[None].clone()
    for group, tensor in ((TRACK, track), (MASTER, master)):
        for i, name in enumerate(group.names):
            if name.endswith(".gain_db") and name.startswith("eq."):
                tensor[..., i] = 4.0  # bands at 0 dB have no gradient for frequency and Q
            if name in strip:
                tensor[..., i] = strip[name]
    master[..., MASTER.index("compressor.threshold_db")] = -25.0
    fx = _fx(decay_s=0.4, predelay_ms=10.0, damping=0.5, return_db=-3.0).float()
    params = [p.float().requires_grad_() for p in (track, fx, master)]
    target = torch.randn(1, 2, n, generator=g) * 0.1
    out = mix_console(stems, is_stereo, *params, sr)
    (out - target).pow(2).mean().backward()
    for group, p in zip((TRACK, FX, MASTER), params):
        grad = p.grad.reshape(-1, len(group)).abs().sum(0)
        assert torch.all(torch.isfinite(p.grad)), group.name
        missing = [name for name, gr in zip(group.names, grad) if not gr > 0]
        assert not missing, f"{group.name}: no gradient for {missing}"


# ---------------------------------------------------------------- one design for NumPy and torch

def test_numpy_designs_match_the_torch_designs() -> None:
    """The renderer designs in NumPy what the torch console designs in torch: same numbers."""
    rng = np.random.default_rng(21)
    track = TRACK.from_normalised(rng.uniform(0, 1, (6, len(TRACK))))
    master = MASTER.from_normalised(rng.uniform(0, 1, (3, len(MASTER))))
    fx = FX.from_normalised(rng.uniform(0, 1, (3, len(FX))))
    stereo = rng.uniform(0, 1, 6) > 0.5
    for sr in (22050, 44100):
        for group, params in ((TRACK, track), (MASTER, master)):
            np_sos = eq_sos(params, group, sr)
            assert isinstance(np_sos, np.ndarray) and np_sos.shape == (len(params), 7, 6)
            np.testing.assert_allclose(np_sos, eq_sos(torch.from_numpy(params), group, sr).numpy(), rtol=0, atol=1e-9)
        np_ir = reverb_ir(fx, sr)
        assert isinstance(np_ir, np.ndarray)
        np.testing.assert_allclose(np_ir, reverb_ir(torch.from_numpy(fx), sr).numpy(), rtol=0, atol=1e-9)
    np_pan = design_pan_matrix(track, stereo)
    torch_pan = pan_matrix(torch.from_numpy(track), torch.from_numpy(stereo)).numpy()
    np.testing.assert_allclose(np_pan, torch_pan, rtol=0, atol=1e-9)
    assert abs(np_pan).max() > 0.1


@pytest.mark.parametrize("count", [16, 4000, 4001])
def test_reverb_noise_is_torch_randn(count: int) -> None:
    # The IR's noise must stay the samples torch.randn drew with the same seed (and that models
    # were trained with), including the redrawn tail when the count is not a multiple of 16.
    generator = torch.Generator().manual_seed(NOISE_SEED)
    expected = torch.randn(count, generator=generator, dtype=torch.float64).numpy()
    np.testing.assert_allclose(gaussian_noise(NOISE_SEED, count), expected, rtol=0, atol=1e-12)


def test_render_and_finalize_do_not_import_torch(tmp_path) -> None:
    script = """
import sys
import numpy as np
from automix.console.finalize import finalize
from automix.console.render import render_console
from automix.console.settings import MixSettings
rng = np.random.default_rng(0)
stems = [(0.1 * rng.standard_normal((1, 30000))).astype(np.float32),
         (0.1 * rng.standard_normal((2, 30000))).astype(np.float32)]
s = MixSettings.neutral(["a", "b"])
for name in ("a", "b"):
    s.set(name, "eq.band_2.gain_db", 6.0)
    s.set(name, "compressor.ratio", 4.0)
    s.set(name, "compressor.threshold_db", -30.0)
    s.set(name, "send.reverb_db", -12.0)
s.set_master("eq.high_shelf.gain_db", 2.0)
s.set_master("compressor.ratio", 2.0)
s.set_master("compressor.threshold_db", -20.0)
mix = render_console(stems, 22050, s, block_size=4096)
out, report = finalize(mix, 22050, -14.0, -1.0)
assert np.isfinite(out).all() and abs(report.output_lufs + 14.0) < 0.5, report
print("torch" in sys.modules)
"""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", script], check=False, cwd=root, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_sos_magnitude_db_matches_the_complex_response_and_has_finite_gradients():
    import torch

    from automix.console.biquad import sos_magnitude_db, sos_response

    sos = torch.tensor([[[1.2, -1.5, 0.6, 1.0, -1.4, 0.55], [0.9, 0.1, 0.05, 1.0, 0.2, 0.1]]], dtype=torch.float64,
                       requires_grad=True)
    n_fft = 1024
    freqs_hz = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * 44100 / n_fft
    magnitude_db = sos_magnitude_db(sos, freqs_hz, 44100)
    expected_db = 20.0 * torch.log10(sos_response(sos, n_fft).abs())
    assert torch.max(torch.abs(magnitude_db - expected_db)).item() < 1e-9
    magnitude_db.sum().backward()
    assert torch.isfinite(sos.grad).all() and sos.grad.abs().sum() > 0
