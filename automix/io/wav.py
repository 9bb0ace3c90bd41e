"""Plain PCM/float WAV samples converted by compiled (numba) loops, to libsndfile's float32 values.

WAV data of 16, 24 or 32-bit integers or 32-bit floats (what DAWs export) is read as raw bytes and
converted here, several times faster than libsndfile's own loops; every other format goes through
libsndfile (:mod:`automix.io.decode`), whose float32 blocks the same kernel de-interleaves. The
kernels silence damaged samples as they go, so every format is repaired by the same code.

The kernels are compiled on first use and cached on disk (``cache=True``, beside this file):
:mod:`automix.kernel_cache` must list this module for the warm-up to cover them.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import soundfile as sf

_PCM_SCALES = {16: 2.0**-15, 24: 2.0**-23, 32: 2.0**-31}
"""Integer PCM → float: the sample divided by 2^(bits−1), exactly as libsndfile reads it."""


@numba.njit(cache=True, nogil=True)
def _deinterleave(src: np.ndarray, scale: float, limit: float, out: np.ndarray
                  ) -> tuple[float, int, int]:  # pragma: no cover
    """``out[c, i] = float32(src[i·channels + c]) · scale`` for interleaved int16/int32/float32
    ``src``, with damaged samples (NaN/Inf, or magnitude above ``limit``) written as 0.

    Returns ``(peak magnitude of the kept samples, count of damaged samples, frame of the first
    damaged one or -1)``.
    """
    channels, n = out.shape
    factor = np.float32(scale)
    peak = np.float32(0.0)
    bad, first = 0, -1
    for i in range(n):
        for c in range(channels):
            v = np.float32(src[i * channels + c]) * factor
            if np.isfinite(v) and abs(v) <= limit:
                out[c, i] = v
                peak = max(peak, abs(v))
            else:
                out[c, i] = np.float32(0.0)
                if bad == 0:
                    first = i
                bad += 1
    return float(peak), bad, first


@numba.njit(cache=True, nogil=True)
def _deinterleave_24(raw: np.ndarray, out: np.ndarray) -> tuple[float, int, int]:  # pragma: no cover
    """:func:`_deinterleave` for packed little-endian 24-bit samples (``raw``: bytes as uint8);
    integers are never damaged (their magnitude is at most 1)."""
    channels, n = out.shape
    factor = np.float32(2.0**-23)
    peak = np.float32(0.0)
    for i in range(n):
        for c in range(channels):
            p = 3 * (i * channels + c)
            u = np.int32(raw[p]) | (np.int32(raw[p + 1]) << 8) | (np.int32(raw[p + 2]) << 16)
            v = np.float32(u - ((u & 0x800000) << 1)) * factor  # sign-extend from 24 bits
            out[c, i] = v
            peak = max(peak, abs(v))
    return float(peak), 0, -1


@dataclass(frozen=True)
class _WavData:
    """Where a plain little-endian PCM/float WAV file keeps its interleaved samples."""

    offset: int  # byte offset of frame 0
    bits: int  # per sample: 16, 24 or 32
    is_float: bool


_WAV_SUBTYPES = {"PCM_16": (16, False), "PCM_24": (24, False), "PCM_32": (32, False), "FLOAT": (32, True)}
_WAV_FORMAT_PCM, _WAV_FORMAT_FLOAT, _WAV_FORMAT_EXTENSIBLE = 1, 3, 0xFFFE


def _find_wav_data(path: Path, info: sf.SoundFile) -> _WavData | None:
    """The sample layout of a WAV file whose samples automix decodes itself (several times faster
    than libsndfile's conversion loops), or None to let libsndfile decode it.

    Only what can be checked is accepted: a RIFF/WAVE file whose ``fmt`` chunk agrees with what
    libsndfile reported (channels, bits, integer or float), with all of libsndfile's frames
    inside the file. The samples are then the same bits libsndfile would convert, and the
    conversion (÷ 2^(bits−1) in float32, or a float copy) gives the same values.
    """
    if info.format not in ("WAV", "WAVEX") or info.subtype not in _WAV_SUBTYPES:
        return None
    bits, is_float = _WAV_SUBTYPES[info.subtype]
    try:
        with open(path, "rb") as f:
            header = f.read(12)
            if header[:4] != b"RIFF" or header[8:] != b"WAVE":
                return None
            layout, position = None, 12
            for _ in range(64):  # chunks before the samples: fmt, fact, LIST, bext, JUNK, ...
                head = f.read(8)
                if len(head) < 8:
                    return None
                chunk, size = head[:4], int.from_bytes(head[4:], "little")
                if chunk == b"fmt ":
                    body = f.read(min(size, 40))
                    if len(body) < 16:
                        return None
                    tag, channels, _, _, align, chunk_bits = struct.unpack("<HHIIHH", body[:16])
                    if tag == _WAV_FORMAT_EXTENSIBLE and len(body) >= 26:
                        tag = int.from_bytes(body[24:26], "little")  # the sub-format GUID starts with the tag
                    layout = (tag, channels, align, chunk_bits)
                elif chunk == b"data":
                    if layout != (_WAV_FORMAT_FLOAT if is_float else _WAV_FORMAT_PCM, info.channels,
                                  info.channels * bits // 8, bits):
                        return None
                    offset = position + 8
                    end = offset + info.frames * info.channels * bits // 8
                    return _WavData(offset, bits, is_float) if end <= os.fstat(f.fileno()).st_size else None
                position += 8 + size + (size & 1)  # chunks are padded to an even size
                f.seek(position)
    except OSError:
        return None
    return None


def _prepare_decoders() -> None:
    """Compile (or load from numba's cache) the decoders for the usual layouts on this thread,
    so numba's one-time set-up never runs in two worker threads at once."""
    raw = np.zeros(12, dtype=np.uint8)
    for out in (np.empty((1, 2), np.float32), np.empty((2, 4), np.float32)[:, :2]):  # mono, stereo
        _deinterleave_24(raw[:3 * out.size], out)
        _deinterleave(raw[:4 * out.size].view(np.float32), 1.0, math.inf, out)  # any limit: one compiled type
