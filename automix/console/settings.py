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

from automix.console.automation import Lane, clipped_lane, parse_lanes
from automix.console.schema import FINALIZE, FX, MASTER, SCHEMA_VERSION, TRACK, ParamGroup
from automix.errors import ParamsError

FORMAT_NAME = "automix-mix"

DIRECT_FORMAT_NAME = "automix-direct-mix"
"""The ``format`` of the JSON an end-to-end model writes beside its mix (:mod:`automix.direct_mix`):
it names the model and the tracks but holds no console settings, so nothing can render it."""
DECIMALS = 4
AUTOMATION_VERSION = 2
"""``mix.json`` version of files with automation or sections. A static mix is still written as
:data:`~automix.console.schema.SCHEMA_VERSION` (1) and reads and renders as before."""
READABLE_VERSIONS = (SCHEMA_VERSION, AUTOMATION_VERSION)
_TRACK_INFO_KEYS = ("name", "role", "notes", "automation")
_TOP_KEYS = ("format", "version", "sample_rate", "mixer", "tracks", "fx", "master", "sections")
_MASTER_INFO_KEYS = ("automation",)


@dataclass(frozen=True)
class Section:
    """A part of the song found by the mixer (informational): ``[start_s, end_s)`` and a label."""

    start_s: float
    end_s: float
    label: str


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
        automation: lanes per track name, ``{track: {param: Lane}}`` (:mod:`automix.console.automation`).
        master_automation: lanes of the master, ``{param: Lane}``.
        sections: the song's parts as the mixer found them (informational).
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
    automation: dict[str, dict[str, Lane]] = field(default_factory=dict)
    master_automation: dict[str, Lane] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)

    @property
    def is_automated(self) -> bool:
        """Some lane is set (a flat lane counts: it still replaces the static value)."""
        return bool(self.master_automation) or any(self.automation.values())

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
            {t: {n: clipped_lane(lane, TRACK, n) for n, lane in lanes.items()} for t, lanes in self.automation.items()},
            {n: clipped_lane(lane, MASTER, n) for n, lane in self.master_automation.items()},
            list(self.sections),
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
        if settings.automation.get(name):
            entry["automation"] = _lanes_json(settings.automation[name])
        if settings.notes.get(name):
            entry["notes"] = list(settings.notes[name])
        tracks[name] = entry
    master = _nest(MASTER, settings.master)
    master.update(_nest(FINALIZE, settings.finalize))
    if settings.master_automation:
        master["automation"] = _lanes_json(settings.master_automation)
    data: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": AUTOMATION_VERSION if settings.is_automated or settings.sections else SCHEMA_VERSION,
        "sample_rate": settings.sample_rate,
        "mixer": settings.mixer,
        "tracks": tracks,
        "fx": _nest(FX, settings.fx),
        "master": master,
    }
    if settings.sections:
        data["sections"] = [{"start_s": _round(x.start_s), "end_s": _round(x.end_s), "label": x.label}
                            for x in settings.sections]
    return data


def _lanes_json(lanes: dict[str, Lane]) -> dict[str, Any]:
    """Lanes → the ``automation`` object, times and values rounded like every setting."""
    return {name: {"shape": lane.shape, "points": [[_round(t), _round(v)] for t, v in zip(lane.times_s, lane.values)]}
            for name, lane in lanes.items()}


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
            raise ParamsError(f"{where}.{spec.name}: {spec.outside_text(value)}")
        values[i] = value
    return values


def from_json(data: Any) -> MixSettings:
    """Validate a parsed ``mix.json`` and return settings; errors name the offending field."""
    if not isinstance(data, dict):
        raise ParamsError("params: the top level must be a JSON object")
    if data.get("format") == DIRECT_FORMAT_NAME:
        raise ParamsError(f"params: written by the end-to-end model {data.get('mixer')!r}, which outputs the mix "
                          "itself: there are no console settings to render, show or edit (mix with a console "
                          "model, e.g. the default, for those)")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise ParamsError(f"params.{unknown[0]}: unknown key")
    if data.get("format") != FORMAT_NAME:
        raise ParamsError(f"params.format: expected \"{FORMAT_NAME}\", got {json.dumps(data.get('format'))}")
    version = data.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise ParamsError(f"params.version: this automix reads versions {readable}, got {json.dumps(version)}")
    if version < AUTOMATION_VERSION:
        _refuse_automation(data)
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
    automation: dict[str, dict[str, Lane]] = {}
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
        if "automation" in entry:
            automation[key] = parse_lanes(entry["automation"], TRACK, where)
        body = {k: v for k, v in entry.items() if k not in _TRACK_INFO_KEYS}
        rows.append(_read_group(TRACK, _flatten(body, where), where, required=True))
        names.append(key)

    fx = _read_group(FX, _flatten(data.get("fx", {}), "fx"), "fx", required=False)
    master_json = data.get("master", {})
    master_automation = (parse_lanes(master_json["automation"], MASTER, "master")
                         if isinstance(master_json, dict) and "automation" in master_json else {})
    if isinstance(master_json, dict):
        master_json = {k: v for k, v in master_json.items() if k not in _MASTER_INFO_KEYS}
    master_flat = _flatten(master_json, "master")
    finalize = _read_group(
        FINALIZE, {k: v for k, v in master_flat.items() if k in FINALIZE}, "master", required=False
    )
    master = _read_group(
        MASTER, {k: v for k, v in master_flat.items() if k not in FINALIZE}, "master", required=False
    )
    mixer = data.get("mixer", "manual")
    if not isinstance(mixer, str):
        raise ParamsError("params.mixer: expected a string")
    return MixSettings(names, np.stack(rows), fx, master, finalize, roles, notes, mixer, sample_rate, automation,
                       master_automation, _read_sections(data.get("sections", [])))


def _refuse_automation(data: dict[str, Any]) -> None:
    """A version-1 file is static: automation or sections in it are a mistake worth naming."""
    if "sections" in data:
        raise ParamsError(f"params.sections: needs version {AUTOMATION_VERSION}")
    tracks = data.get("tracks") if isinstance(data.get("tracks"), dict) else {}
    for key, entry in tracks.items():
        if isinstance(entry, dict) and "automation" in entry:
            raise ParamsError(f"tracks[{key!r}].automation: needs version {AUTOMATION_VERSION}")
    if isinstance(data.get("master"), dict) and "automation" in data["master"]:
        raise ParamsError(f"master.automation: needs version {AUTOMATION_VERSION}")


def _read_sections(raw: Any) -> list[Section]:
    if not isinstance(raw, list):
        raise ParamsError("params.sections: expected a list of {start_s, end_s, label}")
    sections = []
    for k, item in enumerate(raw):
        where = f"params.sections[{k}]"
        if not isinstance(item, dict) or set(item) != {"start_s", "end_s", "label"}:
            raise ParamsError(f"{where}: expected {{\"start_s\": …, \"end_s\": …, \"label\": …}}")
        start, end, label = item["start_s"], item["end_s"], item["label"]
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in (start, end)) or not (
                math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
            raise ParamsError(f"{where}: expected 0 ≤ start_s < end_s (seconds)")
        if not isinstance(label, str):
            raise ParamsError(f"{where}.label: expected a string")
        sections.append(Section(float(start), float(end), label))
    return sections


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
