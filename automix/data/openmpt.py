"""The libopenmpt C API through ctypes: a tracker module loaded from memory, to solo, seek and render.

The binding is a small ctypes layer over the libopenmpt C API (Debian ``libopenmpt0``, no
headers needed at run time), loaded on first use so importing automix needs no native library.
A :class:`Module` plays once and stops at the song's end (repeat count 0, ``play.at_end=stop``)
and keeps the render parameters at libopenmpt's defaults (read back with
:meth:`Module.render_param`).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from automix.data.native import open_library
from automix.errors import AutomixError, one_line

_INTERACTIVE_FIELDS = (
    "set_current_speed", "set_current_tempo", "set_tempo_factor", "get_tempo_factor", "set_pitch_factor",
    "get_pitch_factor", "set_global_volume", "get_global_volume", "set_channel_volume",
    "get_channel_volume", "set_channel_mute_status", "get_channel_mute_status",
    "set_instrument_mute_status", "get_instrument_mute_status", "play_note", "stop_note",
)


class _Interactive(ctypes.Structure):
    """``openmpt_module_ext_interface_interactive``: 16 function pointers in header order."""

    _fields_ = [(name, ctypes.c_void_p) for name in _INTERACTIVE_FIELDS]


_SET_MUTE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int)
# Enum values of the C API (libopenmpt.h).
RENDER_STEREO_SEPARATION = 2
RENDER_INTERPOLATION_FILTER = 3
RENDER_VOLUME_RAMPING = 4
COMMAND_NOTE = 0
COMMAND_INSTRUMENT = 1
PROBE_SUCCESS = 1


@functools.cache
def library() -> ctypes.CDLL:
    """The library with its signatures, loaded on first use (importing automix needs no native library)."""
    vp, c, i32, i, d, sz = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int, ctypes.c_double,
                            ctypes.c_size_t)
    fp = ctypes.POINTER(ctypes.c_float)
    signatures = {
        "openmpt_free_string": ([vp], None),
        "openmpt_error_string": ([i], vp),
        "openmpt_probe_file_header_get_recommended_size": ([], sz),
        "openmpt_probe_file_header": ([ctypes.c_uint64, c, sz, ctypes.c_uint64, vp, vp, vp, vp, vp, vp], i),
        "openmpt_module_ext_create_from_memory": (
            [c, sz, vp, vp, vp, vp, ctypes.POINTER(i), ctypes.POINTER(vp), vp], vp),
        "openmpt_module_ext_destroy": ([vp], None),
        "openmpt_module_ext_get_module": ([vp], vp),
        "openmpt_module_ext_get_interface": ([vp, c, vp, sz], i),
        "openmpt_module_set_repeat_count": ([vp, i32], i),
        "openmpt_module_get_num_subsongs": ([vp], i32),
        "openmpt_module_get_duration_seconds": ([vp], d),
        "openmpt_module_set_position_seconds": ([vp, d], d),
        "openmpt_module_get_render_param": ([vp, i, ctypes.POINTER(i32)], i),
        "openmpt_module_read_float_stereo": ([vp, i32, sz, fp, fp], sz),
        "openmpt_module_get_metadata": ([vp, c], vp),
        "openmpt_module_get_num_channels": ([vp], i32),
        "openmpt_module_get_num_instruments": ([vp], i32),
        "openmpt_module_get_num_samples": ([vp], i32),
        "openmpt_module_get_instrument_name": ([vp, i32], vp),
        "openmpt_module_get_sample_name": ([vp, i32], vp),
        "openmpt_module_get_current_pattern": ([vp], i32),
        "openmpt_module_get_current_row": ([vp], i32),
        "openmpt_module_get_current_channel_vu_left": ([vp, i32], ctypes.c_float),
        "openmpt_module_get_current_channel_vu_right": ([vp, i32], ctypes.c_float),
        "openmpt_module_get_num_patterns": ([vp], i32),
        "openmpt_module_get_pattern_num_rows": ([vp, i32], i32),
        "openmpt_module_get_pattern_row_channel_command": ([vp, i32, i32, i32, i], ctypes.c_uint8),
        "openmpt_module_ctl_set_text": ([vp, c, c], i),
        "openmpt_module_ctl_set_boolean": ([vp, c, i], i),
    }
    return open_library("openmpt", "libopenmpt.so.0", "libopenmpt0", signatures)


def take_string(lib: ctypes.CDLL, pointer: int | None) -> str:
    """Copy a string libopenmpt allocated, then free it (every returned string must be freed)."""
    if not pointer:
        return ""
    try:
        return (ctypes.string_at(pointer) or b"").decode("utf-8", errors="replace")
    finally:
        lib.openmpt_free_string(pointer)


class Module:
    """One loaded module (an ``openmpt_module_ext``) with the calls the tracker source needs."""

    def __init__(self, data: bytes, label: str) -> None:
        lib = self.lib = library()
        error, message = ctypes.c_int(0), ctypes.c_void_p()
        silent = ctypes.cast(lib.openmpt_log_func_silent, ctypes.c_void_p)
        store = ctypes.cast(lib.openmpt_error_func_store, ctypes.c_void_p)
        self._data = data  # libopenmpt copies the file, but keep it alive for the call anyway
        self.ext = lib.openmpt_module_ext_create_from_memory(data, len(data), silent, None, store, None,
                                                             ctypes.byref(error), ctypes.byref(message), None)
        text = take_string(lib, message.value)
        if not self.ext:
            reason = text or take_string(lib, lib.openmpt_error_string(error.value)) or f"error {error.value}"
            raise AutomixError(one_line(f"libopenmpt cannot load {label}: {reason}"))
        self.mod = lib.openmpt_module_ext_get_module(self.ext)
        self.interactive = _Interactive()
        if not lib.openmpt_module_ext_get_interface(self.ext, b"interactive", ctypes.byref(self.interactive),
                                                    ctypes.sizeof(self.interactive)):
            self.close()
            raise AutomixError("this libopenmpt has no 'interactive' extension (needed to solo channels)")
        # Play once and stop at the song's end: a looping song must not restart inside the excerpt.
        lib.openmpt_module_set_repeat_count(self.mod, 0)
        lib.openmpt_module_ctl_set_text(self.mod, b"play.at_end", b"stop")
        # Notes already sounding at the seek target start at their right sample offset.
        lib.openmpt_module_ctl_set_boolean(self.mod, b"seek.sync_samples", 1)

    def close(self) -> None:
        if self.ext:
            self.lib.openmpt_module_ext_destroy(self.ext)
            self.ext = self.mod = None

    def metadata(self, key: str) -> str:
        return take_string(self.lib, self.lib.openmpt_module_get_metadata(self.mod, key.encode()))

    @property
    def n_channels(self) -> int:
        return int(self.lib.openmpt_module_get_num_channels(self.mod))

    @property
    def n_subsongs(self) -> int:
        return int(self.lib.openmpt_module_get_num_subsongs(self.mod))

    @property
    def duration_s(self) -> float:
        return float(self.lib.openmpt_module_get_duration_seconds(self.mod))

    def render_param(self, param: int) -> int:
        value = ctypes.c_int32(0)
        self.lib.openmpt_module_get_render_param(self.mod, param, ctypes.byref(value))
        return int(value.value)

    def solo(self, channel: int) -> None:
        """Mute every pattern channel but ``channel`` (NNA voices follow their channel's mute)."""
        set_mute = _SET_MUTE(self.interactive.set_channel_mute_status)
        for other in range(self.n_channels):
            set_mute(self.ext, other, int(other != channel))

    def seek(self, seconds: float) -> float:
        return float(self.lib.openmpt_module_set_position_seconds(self.mod, seconds))

    def read(self, sample_rate: int, out: np.ndarray) -> int:
        """Render into ``out`` ``(2, n)`` float32 (C-contiguous rows); returns frames written (0 at the end)."""
        fp = ctypes.POINTER(ctypes.c_float)
        return int(self.lib.openmpt_module_read_float_stereo(
            self.mod, sample_rate, out.shape[1], out[0].ctypes.data_as(fp), out[1].ctypes.data_as(fp)))

    def channel_vu(self, channel: int) -> float:
        lib = self.lib
        return max(float(lib.openmpt_module_get_current_channel_vu_left(self.mod, channel)),
                   float(lib.openmpt_module_get_current_channel_vu_right(self.mod, channel)))

    def position(self) -> tuple[int, int]:
        """Current (pattern, row)."""
        return (int(self.lib.openmpt_module_get_current_pattern(self.mod)),
                int(self.lib.openmpt_module_get_current_row(self.mod)))

    def channels_with_notes(self) -> set[int]:
        """Pattern channels that hold at least one note anywhere in the module (0-based)."""
        lib, found = self.lib, set()
        for pattern in range(lib.openmpt_module_get_num_patterns(self.mod)):
            for row in range(lib.openmpt_module_get_pattern_num_rows(self.mod, pattern)):
                for channel in set(range(self.n_channels)) - found:
                    if lib.openmpt_module_get_pattern_row_channel_command(self.mod, pattern, row, channel,
                                                                          COMMAND_NOTE):
                        found.add(channel)
        return found

    def instrument_at(self, pattern: int, row: int, channel: int) -> int:
        """The instrument (or sample, for formats without instruments) number in a cell; 0 for none."""
        return int(self.lib.openmpt_module_get_pattern_row_channel_command(self.mod, pattern, row, channel,
                                                                          COMMAND_INSTRUMENT))

    def instrument_name(self, number: int) -> str:
        """Name of instrument ``number`` (1-based), or of the sample when the module has no instruments."""
        lib = self.lib
        if lib.openmpt_module_get_num_instruments(self.mod) > 0:
            return take_string(lib, lib.openmpt_module_get_instrument_name(self.mod, number - 1))
        return take_string(lib, lib.openmpt_module_get_sample_name(self.mod, number - 1))

    def names(self) -> list[str]:
        """Every instrument name, then every sample name, in the module's order."""
        lib, mod = self.lib, self.mod
        names = [take_string(lib, lib.openmpt_module_get_instrument_name(mod, i))
                 for i in range(lib.openmpt_module_get_num_instruments(mod))]
        return names + [take_string(lib, lib.openmpt_module_get_sample_name(mod, i))
                        for i in range(lib.openmpt_module_get_num_samples(mod))]


@contextmanager
def opened(data: bytes, label: str) -> Iterator[Module]:
    """A :class:`Module` of the file bytes ``data`` (``label`` names it in errors), closed after use."""
    module = Module(data, label)
    try:
        yield module
    finally:
        module.close()


def probe(head: bytes, file_size: int) -> bool:
    """Whether libopenmpt recognises a module (or module container) header in ``head``."""
    lib = library()
    result = lib.openmpt_probe_file_header(3, head, len(head), file_size, None, None, None, None, None, None)
    return result == PROBE_SUCCESS


def probe_file(path: Path, file_size: int) -> bool:
    """:func:`probe` on the first bytes of ``path`` (as many as libopenmpt asks for)."""
    with open(path, "rb") as handle:
        head = handle.read(library().openmpt_probe_file_header_get_recommended_size())
    return probe(head, file_size)
