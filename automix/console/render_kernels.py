"""Compiled sample loops of the block renderer (:mod:`automix.console.render`): the EQ cascade
passes with the compressor's detector fused in, the time-varying section of an automated EQ band,
bus summing and the reverb's multiply-accumulate."""

from __future__ import annotations

import numba
import numpy as np

from automix.console.compressor import RECURSION_FASTMATH

PASS_SECTIONS = 4
"""EQ sections per pass over a block; their filter states stay in registers for the whole pass."""

_IDENTITY_SECTION = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])  # pads a pass: y = 1·v + 0 exactly


def _pass_coefficients(sos: np.ndarray) -> list[np.ndarray]:
    """Active ``(S, 6)`` sections → passes of exactly ``PASS_SECTIONS`` (the last padded with identities)."""
    passes = []
    for start in range(0, max(sos.shape[0], 1), PASS_SECTIONS):
        chunk = sos[start:start + PASS_SECTIONS]
        pad = np.tile(_IDENTITY_SECTION, (PASS_SECTIONS - chunk.shape[0], 1))
        passes.append(np.ascontiguousarray(np.concatenate([chunk, pad])))
    return passes


# The helpers below are inlined into the kernels (numba IR inlining, before LLVM), so their tuples
# never reach memory: coefficients and filter states stay in registers for the whole loop.

@numba.njit(inline="always")
def _coefficients(sos, k):
    """Section ``k`` as a tuple ``(b0, b1, b2, a1, a2)`` (kept in registers, unlike array reads)."""
    return sos[k, 0], sos[k, 1], sos[k, 2], sos[k, 4], sos[k, 5]


@numba.njit(inline="always")
def _pass(sos):
    """A ``(4, 6)`` pass as four :func:`_coefficients` tuples."""
    return _coefficients(sos, 0), _coefficients(sos, 1), _coefficients(sos, 2), _coefficients(sos, 3)


@numba.njit(inline="always")
def _load_state(zi, c):
    """Channel ``c``'s states of a pass, ``zi[:, c, :]`` of ``(4, C, 2)``, as an 8-tuple (section-major)."""
    return (zi[0, c, 0], zi[0, c, 1], zi[1, c, 0], zi[1, c, 1],
            zi[2, c, 0], zi[2, c, 1], zi[3, c, 0], zi[3, c, 1])


@numba.njit(inline="always")
def _store_state(zi, c, z):
    """Write the 8-tuple ``z`` of :func:`_load_state` back to ``zi[:, c, :]``."""
    zi[0, c, 0], zi[0, c, 1], zi[1, c, 0], zi[1, c, 1] = z[0], z[1], z[2], z[3]
    zi[2, c, 0], zi[2, c, 1], zi[3, c, 0], zi[3, c, 1] = z[4], z[5], z[6], z[7]


@numba.njit(inline="always")
def _section(v, c, z0, z1):
    """One transposed-direct-form-II step (scipy's sosfilt recursion); ``c`` from :func:`_coefficients`.

    Returns ``(y, z0, z1)``. ``c1 v + z1`` is summed first: it does not depend on ``y``, so only two
    multiply-adds sit on the sample-to-sample dependency.
    """
    y = c[0] * v + z0
    return y, (c[1] * v + z1) - c[3] * y, c[2] * v - c[4] * y


@numba.njit(inline="always")
def _pass_samples(v, w, cv, cw, zv, zw):
    """One sample of two independent lanes through a pass → ``(y_v, y_w, z_v, z_w)``.

    ``cv``/``cw`` from :func:`_pass`, ``zv``/``zw`` from :func:`_load_state`; each lane's arithmetic is
    the mono loop's of :func:`_cascade_pass`, so pairing never changes a result.
    """
    # Interleaved by hand so one lane's step issues while the other's waits: lane after lane
    # measured ≈ 3 % slower in the stereo loop.
    v, v0, v1 = _section(v, cv[0], zv[0], zv[1])
    w, w0, w1 = _section(w, cw[0], zw[0], zw[1])
    v, v2, v3 = _section(v, cv[1], zv[2], zv[3])
    w, w2, w3 = _section(w, cw[1], zw[2], zw[3])
    v, v4, v5 = _section(v, cv[2], zv[4], zv[5])
    w, w4, w5 = _section(w, cw[2], zw[4], zw[5])
    v, v6, v7 = _section(v, cv[3], zv[6], zv[7])
    w, w6, w7 = _section(w, cw[3], zw[6], zw[7])
    return v, w, (v0, v1, v2, v3, v4, v5, v6, v7), (w0, w1, w2, w3, w4, w5, w6, w7)


@numba.njit(inline="always")
def _detector_sample(p, mean_square, keep, det_c, power, i, power_floor):
    """The compressor detector's one-pole on one sample: sets ``power[i]``, returns the new state ``p``."""
    p = keep * p + det_c * mean_square
    power[i] = max(p, power_floor)
    return p


@numba.njit(nogil=True, cache=True, fastmath=RECURSION_FASTMATH)
def _cascade_pass(src, gain, sos, zi, dst, det_c, det_state, power, power_floor):
    """``dst = sosfilt(sos, gain · src)`` for exactly ``PASS_SECTIONS`` sections, per channel.

    ``src`` ``(C, n)`` float32/64 (may be ``dst``), ``sos`` ``(4, 6)``, ``zi`` ``(4, C, 2)`` updated
    in place, ``dst`` ``(C, n)`` float64, C 1 or 2. A stereo block runs both channels in the same
    loop, so the CPU overlaps their recursions. If ``power`` is not empty, the compressor's
    detector runs on the output too: ``power[i] = max(p, power_floor)`` with the one-pole
    ``p = (1 − det_c) p + det_c · mean_c dst[c, i]²`` carried in ``det_state[0]`` (the arithmetic of
    :func:`automix.console.compressor._detector_block`).
    """
    n = src.shape[1]
    cs = _pass(sos)
    detect = power.shape[0] > 0
    p = det_state[0]
    keep = 1.0 - det_c
    if src.shape[0] == 1:
        # Scalars, not a one-lane helper on an 8-tuple: that compiled to more spills here (≈ 30 %
        # slower, measured), though the arithmetic is the same.
        a00, a01, a10, a11, a20, a21, a30, a31 = _load_state(zi, 0)
        for i in range(n):
            v = gain * src[0, i]
            v, a00, a01 = _section(v, cs[0], a00, a01)
            v, a10, a11 = _section(v, cs[1], a10, a11)
            v, a20, a21 = _section(v, cs[2], a20, a21)
            v, a30, a31 = _section(v, cs[3], a30, a31)
            dst[0, i] = v
            if detect:
                p = _detector_sample(p, v * v * 1.0, keep, det_c, power, i, power_floor)
        _store_state(zi, 0, (a00, a01, a10, a11, a20, a21, a30, a31))
    else:
        za, zb = _load_state(zi, 0), _load_state(zi, 1)
        for i in range(n):
            v, w, za, zb = _pass_samples(gain * src[0, i], gain * src[1, i], cs, cs, za, zb)
            dst[0, i] = v
            dst[1, i] = w
            if detect:
                p = _detector_sample(p, (v * v + w * w) * 0.5, keep, det_c, power, i, power_floor)
        _store_state(zi, 0, za)
        _store_state(zi, 1, zb)
    det_state[0] = p


@numba.njit(nogil=True, cache=True, fastmath=RECURSION_FASTMATH)
def _cascade_pair(src_a, src_b, gain_a, gain_b, sos_a, sos_b, zi_a, zi_b, dst_a, dst_b, det_c, det_a, det_b,
                  power_a, power_b, power_floor):
    """:func:`_cascade_pass` for two mono strips at once (``a`` and ``b``, each with its own
    arguments), in one loop so the CPU overlaps their recursions. Each lane's arithmetic is
    exactly the mono kernel's, so pairing never changes a result."""
    n = src_a.shape[1]
    ca, cb = _pass(sos_a), _pass(sos_b)
    detect_a, detect_b = power_a.shape[0] > 0, power_b.shape[0] > 0
    p, q = det_a[0], det_b[0]
    keep = 1.0 - det_c
    za, zb = _load_state(zi_a, 0), _load_state(zi_b, 0)
    for i in range(n):
        v, w, za, zb = _pass_samples(gain_a * src_a[0, i], gain_b * src_b[0, i], ca, cb, za, zb)
        dst_a[0, i] = v
        dst_b[0, i] = w
        if detect_a:
            p = _detector_sample(p, v * v * 1.0, keep, det_c, power_a, i, power_floor)
        if detect_b:
            q = _detector_sample(q, w * w * 1.0, keep, det_c, power_b, i, power_floor)
    _store_state(zi_a, 0, za)
    _store_state(zi_b, 0, zb)
    det_a[0], det_b[0] = p, q


@numba.njit(nogil=True, cache=True, fastmath=RECURSION_FASTMATH)
def _varying_section(y, coeffs, offset, step, zi, det_c, det_state, power, power_floor):
    """``y`` ``(C, n)`` float64 (C 1 or 2) through one section whose coefficients change every
    ``step`` samples, in place: the TDF-II recursion of :func:`_section`, state ``zi`` ``(C, 2)``.

    ``coeffs`` ``(K, 6)`` holds one section per sub-block covering the block; sample ``i`` of ``y``
    is sample ``offset + i`` of the first sub-block (``0 ≤ offset < step``), so the sub-blocks stay
    on the song's grid whatever the block size. ``power``/``det_c``/``det_state``: the compressor's
    detector fused in, as in :func:`_cascade_pass` (skipped when ``power`` is empty).
    """
    n = y.shape[1]
    stereo = y.shape[0] == 2
    detect = power.shape[0] > 0
    p = det_state[0]
    keep = 1.0 - det_c
    v0, v1 = zi[0, 0], zi[0, 1]
    w0, w1 = zi[y.shape[0] - 1, 0], zi[y.shape[0] - 1, 1]
    start = 0
    k = 0
    while start < n:
        stop = min(n, (k + 1) * step - offset)
        c = _coefficients(coeffs, k)
        for i in range(start, stop):
            v, v0, v1 = _section(y[0, i], c, v0, v1)
            y[0, i] = v
            if stereo:
                w, w0, w1 = _section(y[1, i], c, w0, w1)
                y[1, i] = w
                if detect:
                    p = _detector_sample(p, (v * v + w * w) * 0.5, keep, det_c, power, i, power_floor)
            elif detect:
                p = _detector_sample(p, v * v * 1.0, keep, det_c, power, i, power_floor)
        start = stop
        k += 1
    zi[0, 0], zi[0, 1] = v0, v1
    if stereo:
        zi[1, 0], zi[1, 1] = w0, w1
    det_state[0] = p


@numba.njit(nogil=True, cache=True)
def _accumulate(bus, send, track, send_amp, first):
    """``bus += track`` and ``send += send_amp · track`` over ``(2, n)`` arrays.

    ``first``: the bus and send hold garbage and are set instead (the same values as adding to
    zeros). ``send`` may be empty (no reverb). Branch-free inner loops, so they vectorise.
    """
    for c in range(track.shape[0]):
        if first:
            for i in range(track.shape[1]):
                bus[c, i] = track[c, i]
        else:
            for i in range(track.shape[1]):
                bus[c, i] += track[c, i]
        if send.size == 0:
            continue
        if first:
            for i in range(track.shape[1]):
                send[c, i] = send_amp * track[c, i]
        else:
            for i in range(track.shape[1]):
                send[c, i] += send_amp * track[c, i]


@numba.njit(nogil=True, cache=True)
def _multiply_accumulate(history, head, ir_spectra, acc):
    """``acc = Σ_j history[(head − j) mod K] · ir_spectra[j]`` over ``(K, 2, F)`` complex64 arrays."""
    k = history.shape[0]
    for j in range(k):
        h = history[(head - j) % k]
        ir = ir_spectra[j]
        for c in range(acc.shape[0]):
            for f in range(acc.shape[1]):
                if j == 0:
                    acc[c, f] = h[c, f] * ir[c, f]
                else:
                    acc[c, f] += h[c, f] * ir[c, f]
