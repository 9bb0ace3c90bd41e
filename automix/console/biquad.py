"""RBJ biquad design for the console EQ, shared by both render paths.

Every design function takes NumPy arrays or torch tensors and returns the same kind (see
:mod:`automix.console.design`): the differentiable console designs in torch float64 (and takes
gradients through the coefficients), the full-song renderer designs the same numbers in NumPy
for its IIR kernel without importing torch.

A section is a row ``[b0, b1, b2, 1, a1, a2]`` (scipy's ``sos`` layout, ``a0`` normalised
to 1). An EQ strip is 7 sections in processing order: the 12 dB/oct Butterworth
high-pass, then the bands of :data:`automix.console.schema.EQ_BANDS` (low shelf, four
peaking bands, high shelf). Formulas follow R. Bristow-Johnson's "Audio EQ Cookbook"
(shelves use its Q form of ``alpha``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from automix.console.design import ArrayOps, is_tensor, namespace
from automix.console.schema import EQ_BANDS, ParamGroup

if TYPE_CHECKING:
    from torch import Tensor

Array = Any
"""A float NumPy array or torch tensor (the design functions return the kind they are given)."""

SECTIONS: tuple[str, ...] = ("highpass", *EQ_BANDS)
"""The EQ's second-order sections in processing order."""

HIGHPASS_Q = 1.0 / math.sqrt(2.0)
"""Q of the high-pass: a 2nd-order Butterworth (−3 dB at the cutoff, 12 dB/oct)."""

MAX_FREQ_RATIO = 0.45
"""Filter frequencies are clamped below this fraction of the sample rate, so a band set to
16 kHz still designs a stable filter at a 22.05 kHz (or lower) render rate."""


def _prepare(xp: ArrayOps, freq_hz: Array, sample_rate: float) -> tuple[Array, Array]:
    """Clamped frequency → (cos w0, sin w0), float64."""
    freq = xp.clip(xp.asarray(freq_hz), 1e-3, MAX_FREQ_RATIO * sample_rate)
    w0 = freq * (2.0 * math.pi / sample_rate)
    return xp.cos(w0), xp.sin(w0)


def _normalise(xp: ArrayOps, b0, b1, b2, a0, a1, a2) -> Array:
    return xp.stack([b0 / a0, b1 / a0, b2 / a0, xp.ones_like(a0), a1 / a0, a2 / a0], -1)


def highpass(freq_hz: Array, sample_rate: float, q: float = HIGHPASS_Q) -> Array:
    """2nd-order high-pass; ``freq_hz`` (...) → sections (..., 6)."""
    xp = namespace(freq_hz)
    cos_w, sin_w = _prepare(xp, freq_hz, sample_rate)
    alpha = sin_w / (2.0 * q)
    b0 = (1.0 + cos_w) / 2.0
    return _normalise(xp, b0, -(1.0 + cos_w), b0, 1.0 + alpha, -2.0 * cos_w, 1.0 - alpha)


def peaking(freq_hz: Array, gain_db: Array, q: Array, sample_rate: float) -> Array:
    """Peaking (bell) band; gain at ``freq_hz`` equals ``gain_db``. Shapes (...) → (..., 6)."""
    xp = namespace(freq_hz, gain_db, q)
    cos_w, sin_w = _prepare(xp, freq_hz, sample_rate)
    amp = xp.power(10.0, xp.asarray(gain_db) / 40.0)
    alpha = sin_w / (2.0 * xp.asarray(q))
    return _normalise(
        xp, 1.0 + alpha * amp, -2.0 * cos_w, 1.0 - alpha * amp, 1.0 + alpha / amp, -2.0 * cos_w, 1.0 - alpha / amp
    )


def _shelf(freq_hz: Array, gain_db: Array, q: Array, sample_rate: float, high: bool) -> Array:
    xp = namespace(freq_hz, gain_db, q)
    cos_w, sin_w = _prepare(xp, freq_hz, sample_rate)
    amp = xp.power(10.0, xp.asarray(gain_db) / 40.0)
    alpha = sin_w / (2.0 * xp.asarray(q))
    two_sqrt_a_alpha = 2.0 * xp.sqrt(amp) * alpha
    ap1, am1 = amp + 1.0, amp - 1.0
    # The high shelf is the low shelf with cos w0 negated in the "±(A−1)cos" terms and b1/a1 flipped.
    sign = -1.0 if high else 1.0
    b0 = amp * (ap1 - sign * am1 * cos_w + two_sqrt_a_alpha)
    b1 = sign * 2.0 * amp * (am1 - sign * ap1 * cos_w)
    b2 = amp * (ap1 - sign * am1 * cos_w - two_sqrt_a_alpha)
    a0 = ap1 + sign * am1 * cos_w + two_sqrt_a_alpha
    a1 = -sign * 2.0 * (am1 + sign * ap1 * cos_w)
    a2 = ap1 + sign * am1 * cos_w - two_sqrt_a_alpha
    return _normalise(xp, b0, b1, b2, a0, a1, a2)


def low_shelf(freq_hz: Array, gain_db: Array, q: Array, sample_rate: float) -> Array:
    """Low shelf: ``gain_db`` below ``freq_hz`` (half the gain in dB at ``freq_hz``)."""
    return _shelf(freq_hz, gain_db, q, sample_rate, high=False)


def high_shelf(freq_hz: Array, gain_db: Array, q: Array, sample_rate: float) -> Array:
    """High shelf: ``gain_db`` above ``freq_hz`` (half the gain in dB at ``freq_hz``)."""
    return _shelf(freq_hz, gain_db, q, sample_rate, high=True)


def band_section(band: str, freq_hz: Array, gain_db: Array, q: Array, sample_rate: float) -> Array:
    """The section of EQ band ``band`` (one of :data:`~automix.console.schema.EQ_BANDS`): a low
    shelf, a peaking band or a high shelf. Shapes ``(...)`` (equal) → ``(..., 6)``."""
    if band == "low_shelf":
        return low_shelf(freq_hz, gain_db, q, sample_rate)
    if band == "high_shelf":
        return high_shelf(freq_hz, gain_db, q, sample_rate)
    return peaking(freq_hz, gain_db, q, sample_rate)


def eq_sos(params: Array, group: ParamGroup, sample_rate: float) -> Array:
    """Design a strip's whole EQ.

    Args:
        params: physical parameters ``(..., len(group))`` of a group with ``eq.*`` entries
            (``TRACK`` or ``MASTER``); any float dtype; a NumPy array or a torch tensor.
        group: the schema group ``params`` follows.
        sample_rate: render rate in Hz.

    Returns:
        ``(..., 7, 6)`` float64 sections in :data:`SECTIONS` order, of the kind of ``params``
        (differentiable for a tensor).
    """
    xp = namespace(params)
    p = xp.asarray(params)

    def col(name: str) -> Array:
        return p[..., group.index(name)]

    sections = [highpass(col("eq.highpass.freq_hz"), sample_rate)]
    for band in EQ_BANDS:
        f, g, q = col(f"eq.{band}.freq_hz"), col(f"eq.{band}.gain_db"), col(f"eq.{band}.q")
        sections.append(band_section(band, f, g, q, sample_rate))
    return xp.stack(sections, -2)


def _section_polynomials(sos: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Each section's numerator and denominator polynomial in z^-1 at angular frequencies ``w``
    (rad/sample, ``(K,)``): complex ``(..., S, K)`` each, for all sections at once as matmuls
    with [1, cos w, cos 2w] and [0, −sin w, −sin 2w]."""
    import torch

    basis_re = torch.stack([torch.ones_like(w), torch.cos(w), torch.cos(2.0 * w)])
    basis_im = torch.stack([torch.zeros_like(w), -torch.sin(w), -torch.sin(2.0 * w)])
    b, a = sos[..., 0:3], sos[..., 3:6]
    return torch.complex(b @ basis_re, b @ basis_im), torch.complex(a @ basis_re, a @ basis_im)


def sos_response(sos: Tensor, n_fft: int) -> Tensor:
    """Complex frequency response of a cascade on the ``rfft`` grid of length ``n_fft`` (torch).

    Args:
        sos: ``(..., S, 6)`` float64 sections (a tensor).
        n_fft: FFT length; the grid has ``n_fft // 2 + 1`` bins from DC to Nyquist.

    Returns:
        ``(..., n_fft // 2 + 1)`` complex128 response ``Π B_s(e^{jw}) / A_s(e^{jw})``.
    """
    import torch  # only the torch console and plots call this, with tensors

    w = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * (2.0 * math.pi / n_fft)
    num, den = _section_polynomials(sos, w)
    return num.prod(dim=-2) / den.prod(dim=-2)


def sos_magnitude_db(sos: Tensor, freqs_hz: Tensor, sample_rate: int) -> Tensor:
    """Magnitude response in dB of cascades ``(..., S, 6)`` at ``freqs_hz`` ``(F,)`` → ``(..., F)``
    (torch, differentiable; a sum of per-section dB, so a deep notch cannot underflow a product)."""
    num, den = _section_polynomials(sos, freqs_hz.to(sos.dtype) * (2.0 * math.pi / sample_rate))
    # |z|² from real and imaginary parts: the gradient of abs() is undefined at 0.
    power_num, power_den = num.real**2 + num.imag**2, den.real**2 + den.imag**2
    return (10.0 * (power_num.clamp_min(1e-30) / power_den.clamp_min(1e-30)).log10()).sum(dim=-2)


def sos_to_numpy(sos: Array) -> np.ndarray:
    """Sections as a float64 NumPy array (a detached copy), ready for :func:`scipy.signal.sosfilt`."""
    if is_tensor(sos):
        return sos.detach().cpu().double().numpy().copy()
    return np.array(sos, dtype=np.float64)


def active_sections(sos: np.ndarray) -> np.ndarray:
    """Drop sections that are exactly the identity (a band at 0 dB designs b == a bit-for-bit)."""
    keep = ~np.all(sos[:, 0:3] == sos[:, 3:6], axis=1)
    return sos[keep]
