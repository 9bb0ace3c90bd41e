"""Console settings for one song, and their human-readable JSON form (``mix.json``).

:class:`MixSettings` holds physical values as arrays ordered like the schema groups.
``to_json`` / ``from_json`` convert to and from the nested JSON a person edits; values are
rounded to :data:`DECIMALS` places, and the engine always renders the *rounded* settings,
so rendering a written ``mix.json`` reproduces the mix bit-exactly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automix.console.schema import FINALIZE, FX, MASTER, SCHEMA_VERSION, TRACK, ParamGroup
from automix.errors import ParamsError

FORMAT_NAME = "automix-mix"
DECIMALS = 4
_TRACK_INFO_KEYS = ("name", "role", "notes")
_TOP_KEYS = ("format", "version", "sample_rate", "mixer", "tracks", "fx", "master")


@dataclass(eq=False)  # ndarray fields: compare with ``to_json`` instead
class MixSettings:
    """Every console setting for one song, in physical units.

    Attributes:
        track_names: stem file names, in track order.
        track: ``(tracks, len(TRACK))`` float64.
        fx: ``(len(FX),)`` float64.
        master: ``(len(MASTER),)`` float64.
        finalize: ``(len(FINALIZE),)`` float64 (loudness target, true-peak ceiling).
        roles: optional inferred role per stem name (informational).
        notes: optional list of human-readable decisions per stem name (informational).
        mixer: which mixer or model produced the settings (informational).
        sample_rate: render rate in Hz, or None for "the most common stem rate".
    """

    track_names: list[str]
    track: np.ndarray
    fx: np.ndarray = field(default_factory=FX.defaults)
    master: np.ndarray = field(default_factory=MASTER.defaults)
    finalize: np.ndarray = field(default_factory=FINALIZE.defaults)
    roles: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    mixer: str = "manual"
    sample_rate: int | None = None

    @classmethod
    def neutral(cls, track_names: list[str], **kwargs: Any) -> MixSettings:
        """All faders at 0 dB, EQ flat, compressors off, sends off."""
        track = np.tile(TRACK.defaults(), (len(track_names), 1))
        return cls(list(track_names), track, **kwargs)

    def get(self, track: int | str, name: str) -> float:
        i = self.track_names.index(track) if isinstance(track, str) else track
        return float(self.track[i, TRACK.index(name)])

    def set(self, track: int | str, name: str, value: float) -> None:
        i = self.track_names.index(track) if isinstance(track, str) else track
        self.track[i, TRACK.index(name)] = value

    def set_master(self, name: str, value: float) -> None:
        self.master[MASTER.index(name)] = value

    def set_fx(self, name: str, value: float) -> None:
        self.fx[FX.index(name)] = value

    @property
    def target_lufs(self) -> float:
        return float(self.finalize[FINALIZE.index("target_lufs")])

    @property
    def ceiling_dbtp(self) -> float:
        return float(self.finalize[FINALIZE.index("ceiling_dbtp")])

    def clipped(self) -> MixSettings:
        """A copy with every value clipped into its schema range."""
        def clip(group: ParamGroup, values: np.ndarray) -> np.ndarray:
            return np.clip(values, group.minimum(), group.maximum())

        return MixSettings(
            list(self.track_names), clip(TRACK, self.track), clip(FX, self.fx), clip(MASTER, self.master),
            clip(FINALIZE, self.finalize), dict(self.roles), {k: list(v) for k, v in self.notes.items()},
            self.mixer, self.sample_rate,
        )

    def rounded(self) -> MixSettings:
        """The settings exactly as ``mix.json`` stores them (the engine renders these)."""
        return from_json(to_json(self))


# --------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------

def _round(value: float) -> float:
    r = round(float(value), DECIMALS)
    return 0.0 if r == 0 else r  # no "-0.0" in files people read


def _nest(group: ParamGroup, values: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec, value in zip(group.specs, values):
        node = out
        *parents, leaf = spec.name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = _round(value)
    return out


def to_json(settings: MixSettings) -> dict[str, Any]:
    """Settings → a JSON-serialisable dict in human units (tracks keyed by stem file name)."""
    tracks: dict[str, Any] = {}
    for i, name in enumerate(settings.track_names):
        entry: dict[str, Any] = {"name": name}
        if name in settings.roles:
            entry["role"] = settings.roles[name]
        entry.update(_nest(TRACK, settings.track[i]))
        if settings.notes.get(name):
            entry["notes"] = list(settings.notes[name])
        tracks[name] = entry
    master = _nest(MASTER, settings.master)
    master.update(_nest(FINALIZE, settings.finalize))
    return {
        "format": FORMAT_NAME,
        "version": SCHEMA_VERSION,
        "sample_rate": settings.sample_rate,
        "mixer": settings.mixer,
        "tracks": tracks,
        "fx": _nest(FX, settings.fx),
        "master": master,
    }


def _flatten(obj: Any, where: str, prefix: str = "") -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ParamsError(f"{where}: expected an object, got {_json_type(obj)}")
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, where, path + "."))
        else:
            flat[path] = value
    return flat


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _read_group(group: ParamGroup, flat: dict[str, Any], where: str, *, required: bool) -> np.ndarray:
    """Validate and read one group from flattened JSON. Missing values take defaults unless required."""
    unknown = sorted(set(flat) - set(group.names))
    if unknown:
        if any(name.startswith(unknown[0] + ".") for name in group.names):  # e.g. "eq": 5
            raise ParamsError(f"{where}.{unknown[0]}: expected an object, got {_json_type(flat[unknown[0]])}")
        raise ParamsError(f"{where}.{unknown[0]}: unknown setting")
    values = group.defaults()
    for i, spec in enumerate(group.specs):
        if spec.name not in flat:
            if required and spec.name in ("gain_db", "pan"):
                raise ParamsError(f"{where}.{spec.name}: missing")
            continue
        raw = flat[spec.name]
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ParamsError(f"{where}.{spec.name}: expected a number, got {json.dumps(raw)}")
        try:
            value = float(raw)
        except OverflowError:  # an integer with hundreds of digits
            raise ParamsError(f"{where}.{spec.name}: number too large") from None
        if not math.isfinite(value):
            raise ParamsError(f"{where}.{spec.name}: value is not finite")
        if not spec.contains(value):
            raise ParamsError(
                f"{where}.{spec.name}: {value:g} {spec.unit} is outside "
                f"[{spec.minimum:g}, {spec.maximum:g}]".replace("  ", " ")
            )
        values[i] = value
    return values


def from_json(data: Any) -> MixSettings:
    """Validate a parsed ``mix.json`` and return settings; errors name the offending field."""
    if not isinstance(data, dict):
        raise ParamsError("params: the top level must be a JSON object")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise ParamsError(f"params.{unknown[0]}: unknown key")
    if data.get("format") != FORMAT_NAME:
        raise ParamsError(f"params.format: expected \"{FORMAT_NAME}\", got {json.dumps(data.get('format'))}")
    version = data.get("version")
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise ParamsError(
            f"params.version: this automix reads version {SCHEMA_VERSION}, got {json.dumps(data.get('version'))}"
        )
    sample_rate = data.get("sample_rate")
    if sample_rate is not None and (isinstance(sample_rate, bool) or not isinstance(sample_rate, int)
                                    or not 8000 <= sample_rate <= 384000):
        raise ParamsError(f"params.sample_rate: expected an integer rate in Hz or null, got {sample_rate!r}")
    tracks_json = data.get("tracks")
    if not isinstance(tracks_json, dict) or not tracks_json:
        raise ParamsError("params.tracks: expected a non-empty object keyed by stem file name")

    names: list[str] = []
    rows: list[np.ndarray] = []
    roles: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    for key, entry in tracks_json.items():
        where = f"tracks[{key!r}]"
        if not isinstance(entry, dict):
            raise ParamsError(f"{where}: expected an object")
        name = entry.get("name", key)
        if name != key:
            raise ParamsError(f"{where}.name: {name!r} does not match its key")
        if "role" in entry:
            if not isinstance(entry["role"], str):
                raise ParamsError(f"{where}.role: expected a string")
            roles[key] = entry["role"]
        if "notes" in entry:
            if not isinstance(entry["notes"], list) or not all(isinstance(n, str) for n in entry["notes"]):
                raise ParamsError(f"{where}.notes: expected a list of strings")
            notes[key] = list(entry["notes"])
        body = {k: v for k, v in entry.items() if k not in _TRACK_INFO_KEYS}
        rows.append(_read_group(TRACK, _flatten(body, where), where, required=True))
        names.append(key)

    fx = _read_group(FX, _flatten(data.get("fx", {}), "fx"), "fx", required=False)
    master_flat = _flatten(data.get("master", {}), "master")
    finalize = _read_group(
        FINALIZE, {k: v for k, v in master_flat.items() if k in FINALIZE}, "master", required=False
    )
    master = _read_group(
        MASTER, {k: v for k, v in master_flat.items() if k not in FINALIZE}, "master", required=False
    )
    mixer = data.get("mixer", "manual")
    if not isinstance(mixer, str):
        raise ParamsError("params.mixer: expected a string")
    return MixSettings(names, np.stack(rows), fx, master, finalize, roles, notes, mixer, sample_rate)


def load_params(path: Path) -> MixSettings:
    """Read and validate a params JSON file."""
    path = Path(path)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError as e:  # e.g. a name longer than the file system allows
        raise ParamsError(f"{path}: cannot read ({e.strerror or e})") from None
    if is_dir:
        raise ParamsError(f"{path}: is a folder; give the params file (a mix.json)")
    if not is_file:
        raise ParamsError(f"{path}: params file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # -sig: editors on Windows add a BOM
    except json.JSONDecodeError as e:
        raise ParamsError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not a UTF-8 text file") from None
    except RecursionError:
        raise ParamsError(f"{path}: not a params file (nested too deeply)") from None
    except OSError as e:
        raise ParamsError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return from_json(data)
    except RecursionError:  # settings nested hundreds deep
        raise ParamsError(f"{path}: not a params file (nested too deeply)") from None


def dumps(settings: MixSettings) -> str:
    """The text of ``mix.json`` (indented, UTF-8, trailing newline)."""
    try:
        return json.dumps(to_json(settings), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError:
        raise ParamsError("params: a setting is not a finite number") from None
