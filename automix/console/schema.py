"""The console's parameter schema: the single source of truth for every setting.

Every parameter has a dotted name (which is also its path in ``mix.json``), a unit, a
range, a default and a mapping between a model's normalised value in [0, 1] and the
physical value. Frequencies, times, Q and ratio map logarithmically; gains in dB, pan,
width and knee map linearly. No other module repeats a range: import the groups below.

Groups
------
``TRACK``  one channel strip (trim → HPF → 6-band EQ → compressor → fader → pan → send)
``FX``     the reverb on the FX bus (fed by the post-fader sends)
``MASTER`` master bus EQ → compressor → output gain
``FINALIZE`` loudness target and true-peak ceiling of the output stage (not predicted)

The mapping helpers accept Python floats, NumPy arrays and torch tensors alike, so the
differentiable console, the full-song renderer and the JSON loader share one definition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

SCHEMA_VERSION = 1
"""Bump when a parameter is added, removed, renamed or re-ranged; checkpoints record it."""

Scale = Literal["linear", "log"]
ArrayLike = TypeVar("ArrayLike")

EQ_BANDS: tuple[str, ...] = ("low_shelf", "band_1", "band_2", "band_3", "band_4", "high_shelf")
"""The six EQ bands in processing order (RBJ low shelf, four peaking filters, high shelf)."""

SEND_OFF_DB = -60.0
"""A send or return at this level (its range minimum) is exactly silent, not −60 dB."""


def _log(x):
    return x.log() if hasattr(x, "log") and not isinstance(x, np.ndarray) else np.log(x)


def _exp(x):
    return x.exp() if hasattr(x, "exp") and not isinstance(x, np.ndarray) else np.exp(x)


def _clip01(x):
    if hasattr(x, "clamp"):
        return x.clamp(0.0, 1.0)
    return np.clip(x, 0.0, 1.0)


@dataclass(frozen=True)
class ParamSpec:
    """One console parameter.

    Attributes:
        name: dotted path, e.g. ``"eq.band_2.freq_hz"``; the JSON nests on the dots.
        unit: human unit shown in docs ("dB", "Hz", "ms", "s", "ratio", "Q", "").
        minimum, maximum: accepted physical range (inclusive).
        default: neutral setting (what a fresh console strip shows).
        scale: ``"log"`` maps normalised values geometrically, ``"linear"`` arithmetically.
        description: one line for docs and ``--help``.
    """

    name: str
    unit: str
    minimum: float
    maximum: float
    default: float
    scale: Scale
    description: str

    def __post_init__(self) -> None:
        if not self.minimum < self.maximum:
            raise ValueError(f"{self.name}: empty range")
        if not self.minimum <= self.default <= self.maximum:
            raise ValueError(f"{self.name}: default outside range")
        if self.scale == "log" and self.minimum <= 0:
            raise ValueError(f"{self.name}: log scale needs a positive minimum")

    def from_normalised(self, x: ArrayLike) -> ArrayLike:
        """Map normalised ``x`` in [0, 1] (clipped) to physical units."""
        x = _clip01(x)
        if self.scale == "log":
            return self.minimum * _exp(x * math.log(self.maximum / self.minimum))
        return self.minimum + x * (self.maximum - self.minimum)

    def to_normalised(self, value: ArrayLike) -> ArrayLike:
        """Map a physical value to [0, 1] (clipped to the range first)."""
        if self.scale == "log":
            v = value.clamp(self.minimum, self.maximum) if hasattr(value, "clamp") else np.clip(
                value, self.minimum, self.maximum
            )
            return _log(v / self.minimum) / math.log(self.maximum / self.minimum)
        v = value.clamp(self.minimum, self.maximum) if hasattr(value, "clamp") else np.clip(
            value, self.minimum, self.maximum
        )
        return (v - self.minimum) / (self.maximum - self.minimum)

    def contains(self, value: float) -> bool:
        return math.isfinite(value) and self.minimum <= value <= self.maximum

    def outside_text(self, value: float) -> str:
        """What an error says of a value outside the range: "40 dB is outside [-40, 12]"."""
        return f"{value:g} {self.unit} is outside [{self.minimum:g}, {self.maximum:g}]".replace("  ", " ")


class ParamGroup:
    """An ordered set of :class:`ParamSpec`; a parameter vector follows this order.

    Tensors of a group's parameters have the group size as their last dimension,
    e.g. track parameters are ``(batch, tracks, len(TRACK))``.
    """

    def __init__(self, name: str, specs: list[ParamSpec]) -> None:
        self.name = name
        self.specs: tuple[ParamSpec, ...] = tuple(specs)
        self.names: tuple[str, ...] = tuple(s.name for s in specs)
        self._index = {n: i for i, n in enumerate(self.names)}
        if len(self._index) != len(self.names):
            raise ValueError(f"{name}: duplicate parameter names")

    def __len__(self) -> int:
        return len(self.specs)

    def __iter__(self):
        return iter(self.specs)

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def index(self, name: str) -> int:
        return self._index[name]

    def spec(self, name: str) -> ParamSpec:
        return self.specs[self._index[name]]

    def defaults(self) -> np.ndarray:
        """Neutral physical values, shape ``(len(self),)``, float64."""
        return np.array([s.default for s in self.specs], dtype=np.float64)

    def from_normalised(self, x):
        """Normalised ``(..., len(self))`` → physical ``(..., len(self))`` (torch or NumPy)."""
        cols = [s.from_normalised(x[..., i]) for i, s in enumerate(self.specs)]
        return _stack_last(cols, like=x)

    def to_normalised(self, v):
        """Physical ``(..., len(self))`` → normalised ``(..., len(self))`` (torch or NumPy)."""
        cols = [s.to_normalised(v[..., i]) for i, s in enumerate(self.specs)]
        return _stack_last(cols, like=v)

    def minimum(self) -> np.ndarray:
        return np.array([s.minimum for s in self.specs], dtype=np.float64)

    def maximum(self) -> np.ndarray:
        return np.array([s.maximum for s in self.specs], dtype=np.float64)


def _stack_last(cols, like):
    if hasattr(like, "clamp"):
        import torch

        return torch.stack(cols, dim=-1)
    return np.stack(cols, axis=-1)


# --------------------------------------------------------------------------------------
# Building blocks shared by track and master strips
# --------------------------------------------------------------------------------------

# Per band: (frequency range Hz, default Hz, Q range, default Q). Shelves keep Q ≤ 1 because
# RBJ shelves with a higher Q overshoot into a bump an engineer would not dial in.
_EQ_BAND_LAYOUT: dict[str, tuple[tuple[float, float], float, tuple[float, float], float]] = {
    "low_shelf": ((20.0, 1000.0), 100.0, (0.3, 1.0), 0.707),
    "band_1": ((40.0, 1000.0), 200.0, (0.3, 10.0), 0.707),
    "band_2": ((150.0, 4000.0), 700.0, (0.3, 10.0), 0.707),
    "band_3": ((500.0, 10000.0), 2500.0, (0.3, 10.0), 0.707),
    "band_4": ((1500.0, 16000.0), 7000.0, (0.3, 10.0), 0.707),
    "high_shelf": ((1000.0, 16000.0), 8000.0, (0.3, 1.0), 0.707),
}

EQ_GAIN_RANGE_DB = (-15.0, 15.0)


def _eq_specs(prefix: str) -> list[ParamSpec]:
    specs = [
        ParamSpec(
            f"{prefix}highpass.freq_hz", "Hz", 10.0, 1000.0, 10.0, "log",
            "12 dB/oct Butterworth high-pass cutoff (10 Hz ≈ DC blocker only)",
        )
    ]
    for band in EQ_BANDS:
        (f_lo, f_hi), f_def, (q_lo, q_hi), q_def = _EQ_BAND_LAYOUT[band]
        kind = "shelf" if "shelf" in band else "peaking band"
        specs += [
            ParamSpec(f"{prefix}{band}.freq_hz", "Hz", f_lo, f_hi, f_def, "log", f"{kind} frequency"),
            ParamSpec(f"{prefix}{band}.gain_db", "dB", *EQ_GAIN_RANGE_DB, 0.0, "linear", f"{kind} gain"),
            ParamSpec(f"{prefix}{band}.q", "Q", q_lo, q_hi, q_def, "log", f"{kind} Q (bandwidth/slope)"),
        ]
    return specs


def _compressor_specs(prefix: str) -> list[ParamSpec]:
    return [
        ParamSpec(f"{prefix}threshold_db", "dB", -60.0, 0.0, 0.0, "linear",
                  "threshold on the RMS detector level (dBFS RMS)"),
        ParamSpec(f"{prefix}ratio", "ratio", 1.0, 20.0, 1.0, "log", "compression ratio (1 = off)"),
        ParamSpec(f"{prefix}attack_ms", "ms", 0.1, 100.0, 10.0, "log", "gain attack time constant"),
        ParamSpec(f"{prefix}release_ms", "ms", 10.0, 1000.0, 100.0, "log", "gain release time constant"),
        ParamSpec(f"{prefix}knee_db", "dB", 0.0, 24.0, 6.0, "linear", "soft-knee width"),
        ParamSpec(f"{prefix}makeup_db", "dB", -12.0, 24.0, 0.0, "linear", "make-up gain after compression"),
    ]


TRACK = ParamGroup(
    "track",
    [
        ParamSpec("trim_db", "dB", -48.0, 48.0, 0.0, "linear",
                  "input trim before the EQ (automix uses it to loudness-normalise stems)"),
        *_eq_specs("eq."),
        *_compressor_specs("compressor."),
        ParamSpec("gain_db", "dB", -40.0, 12.0, 0.0, "linear", "fader"),
        ParamSpec("pan", "", -1.0, 1.0, 0.0, "linear",
                  "−1 hard left … +1 hard right (constant-power for mono, balance for stereo)"),
        ParamSpec("width", "", 0.0, 2.0, 1.0, "linear",
                  "stereo width of a stereo stem (0 mono, 1 as recorded, 2 extra wide); ignored for mono"),
        ParamSpec("send.reverb_db", "dB", SEND_OFF_DB, 0.0, SEND_OFF_DB, "linear",
                  "post-fader send to the reverb bus (−60 = off)"),
    ],
)

FX = ParamGroup(
    "fx",
    [
        ParamSpec("reverb.decay_s", "s", 0.2, 6.0, 1.5, "log", "RT60 decay time at mid frequencies"),
        ParamSpec("reverb.predelay_ms", "ms", 0.0, 100.0, 20.0, "linear", "pre-delay before the tail"),
        ParamSpec("reverb.damping", "", 0.0, 1.0, 0.5, "linear",
                  "how much faster highs decay than mids (0 bright … 1 dark)"),
        ParamSpec("reverb.return_db", "dB", SEND_OFF_DB, 6.0, 0.0, "linear", "reverb return level (−60 = off)"),
    ],
)

MASTER = ParamGroup(
    "master",
    [
        *_eq_specs("eq."),
        *_compressor_specs("compressor."),
        ParamSpec("gain_db", "dB", -24.0, 24.0, 0.0, "linear", "output gain before loudness normalisation"),
    ],
)

FINALIZE = ParamGroup(
    "finalize",
    [
        ParamSpec("target_lufs", "LUFS", -40.0, -5.0, -14.0, "linear",
                  "integrated loudness target (BS.1770)"),
        ParamSpec("ceiling_dbtp", "dBTP", -12.0, 0.0, -1.0, "linear", "true-peak ceiling of the limiter"),
    ],
)

DEFAULT_TARGET_LUFS: float = FINALIZE.spec("target_lufs").default
DEFAULT_CEILING_DBTP: float = FINALIZE.spec("ceiling_dbtp").default

GROUPS: dict[str, ParamGroup] = {"track": TRACK, "fx": FX, "master": MASTER, "finalize": FINALIZE}


def db_to_amplitude(db):
    """dB → linear amplitude (float, NumPy or torch)."""
    if hasattr(db, "exp") and not isinstance(db, np.ndarray):
        return (db * (math.log(10.0) / 20.0)).exp()
    return np.power(10.0, np.asarray(db) / 20.0) if not isinstance(db, float) else 10.0 ** (db / 20.0)


def send_gain(db):
    """Send/return level in dB → amplitude, with the range minimum meaning exactly silent."""
    amp = db_to_amplitude(db)
    if hasattr(db, "clamp"):
        import torch

        return torch.where(db <= SEND_OFF_DB, torch.zeros_like(amp), amp)
    if isinstance(db, float):
        return 0.0 if db <= SEND_OFF_DB else amp
    return np.where(np.asarray(db) <= SEND_OFF_DB, 0.0, amp)
