"""A REAPER project (``.rpp``, plain text) for an automix mix.

One track per stem, the "FX return" track and the master. What goes on a stem track depends on
whether the processed stems exist (``--stems-out``):

* **original stems** (default): each item is the stem file as it is in the stems folder; the
  track fader carries every static gain of the automix strip (``VOLPAN`` volume =
  10^((trim_db + gain_db + makeup_db)/20), the trim being what brings the stem to the level the
  fader works at), its pan, and its reverb send as a post-fader receive (``AUXRECV``) on the FX
  return track. A mono stem's fader also holds automix's constant-power centre (−3.01 dB):
  REAPER (pan law 0 dB) plays a centred mono item at unity on both sides, automix at
  cos 45° on each, so centred mono tracks sound at automix's level; off centre, REAPER's own
  pan curve applies. EQ, compressor and stereo width are *not* in the session: they cannot be
  written as stock plug-in state without guessing REAPER's internal formats, so the project
  notes list them. The FX return has no reverb yet either, so it starts muted (unmuted it
  would add the sends dry).
* **processed stems** (with ``--stems-out``): each item is the stem as automix processed it
  (trim, EQ, compressor, fader, pan and width applied; float WAV), with the fader at 0 dB and
  the pan centred, and the FX return plays the rendered ``reverb_return.wav``. The session
  then plays exactly automix's mix before its master stage. The sends are kept, muted, so an
  engineer who puts their own reverb on the return can unmute them (and mute the rendered one).

Stems automix left out (silent) are muted tracks, so the session lists the whole folder.
The master fader stays at 0 dB: automix's master stage (EQ, compressor, gain, loudness
normalisation and limiter) works as a whole, and its gain alone would clip the unlimited sum.

Item paths are relative to the ``.rpp``, so the project folder and the stems can move together.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from automix.console.describe import db, describe_compressor, describe_eq, describe_send, hz
from automix.console.describe import number as in_words
from automix.console.design import fader_pan_matrix
from automix.console.eq_ride import ridden_bands, without_ridden_gains
from automix.console.schema import FX, MASTER, SEND_OFF_DB, TRACK, db_to_amplitude, send_gain
from automix.console.settings import MixSettings
from automix.io import write_text_atomic

FX_RETURN_TRACK = "FX return"
"""Name of the track that receives the reverb sends."""

SOURCE_TYPES: dict[str, str] = {
    ".wav": "WAVE", ".wave": "WAVE", ".aif": "WAVE", ".aiff": "WAVE", ".aifc": "WAVE",
    ".flac": "FLAC", ".ogg": "VORBIS", ".oga": "VORBIS", ".mp3": "MP3",
}
"""REAPER's media source type per stem file ending (its WAVE source also reads AIFF)."""

_POST_FADER = 0
"""``AUXRECV`` mode: post-fader, post-pan, like automix's send (taken from the panned track)."""

_NO_FADE = "1 0 0 1 0 0 0"
"""``FADEIN``/``FADEOUT`` of length 0 s: without it REAPER may apply its default item fades,
which would change the first and last milliseconds of every stem."""


@dataclass
class _Track:
    name: str
    volume: float
    """Linear fader gain (1 = 0 dB)."""
    pan: float
    """−1 hard left … +1 hard right."""
    muted: bool
    file: str | None
    """Item source, relative to the project (None: a track without an item)."""
    receives: list[tuple[int, float, bool]] = field(default_factory=list)
    """``(source track index, linear send gain, muted)``, post-fader."""


def quote(text: str) -> str:
    """``text`` as one REAPER token: in ``"…"``, else ``'…'`` or ``\\`…\\``` when it holds the quote.

    A line break would end the token's line, so it becomes a space (names only ever need one line).
    """
    text = text.replace("\r", " ").replace("\n", " ")
    for mark in ('"', "'", "`"):
        if mark not in text:
            return f"{mark}{text}{mark}"
    return "`" + text.replace("`", "'") + "`"  # all three marks in it: REAPER's own fallback


def rpp_number(value: float) -> str:
    """A float as REAPER reads it: 12 significant digits (far below a fader step), no ``-0``."""
    text = f"{float(value):.12g}"
    return "0" if text == "-0" else text


def relative_path(file: Path, project: Path) -> str:
    """``file`` relative to the folder of ``project`` (absolute when there is no relative path,
    e.g. on another Windows drive)."""
    target, folder = Path(file).resolve(), Path(project).resolve().parent
    try:
        return os.path.relpath(target, folder)
    except ValueError:
        return str(target)


def track_names(files: Iterable[str]) -> list[str]:
    """Track names: the stem file name without its ending (``kick.wav`` → ``kick``), or the whole
    file name where two stems would share a name (``kick.wav`` beside ``kick.flac``)."""
    files = list(files)
    bare = [Path(f).stem or f for f in files]
    return [b if bare.count(b) == 1 else f for b, f in zip(bare, files)]


def _guid(project: Path, index: int, name: str) -> str:
    """A stable ``{GUID}`` per track: writing the same session twice gives the same file."""
    value = uuid.uuid5(uuid.NAMESPACE_URL, f"automix:{Path(project).name}:{index}:{name}")
    return "{" + str(value).upper() + "}"


MONO_CENTRE_GAIN = float(fader_pan_matrix(np.asarray(0.0), np.asarray(0.0), 1.0, np.array(False))[0, 0])
"""automix's gain on each side for a centred mono track (its constant-power pan law), ≈ −3.01 dB."""


def original_stem_volume(settings: MixSettings, i: int, mono: bool) -> float:
    """Linear fader of track ``i`` in the original-stem session: trim + fader + make-up (dB), and
    for a mono stem :data:`MONO_CENTRE_GAIN` (see the module docstring)."""
    strip = settings.track[i]
    total_db = sum(float(strip[TRACK.index(name)]) for name in ("trim_db", "gain_db", "compressor.makeup_db"))
    return float(db_to_amplitude(total_db)) * (MONO_CENTRE_GAIN if mono else 1.0)


def processing_summary(settings: MixSettings, i: int) -> str:
    """In words, what track ``i``'s strip does that the original-stem session leaves out (EQ,
    compressor, width), e.g. ``"high-pass 90 Hz; -5 dB at 646 Hz, Q 4; compressor 4:1 at -20 dB"``;
    ``"nothing"`` for a strip with none of them. (Trim and make-up are on the fader.)

    An EQ band with a gain lane (ridden, issue 15) is not described by its static gain, which the
    render does not use: it is named as ridden with its range, e.g. ``"band_2 ridden -4 dB…+3 dB
    at 646 Hz (automated; its lane is in mix.json, not in this session)"``; a ridden fader, pan or
    reverb send likewise, e.g. ``"fader ridden -6 dB…+2 dB (automated; …)"``: in the mix a lane
    replaces the static setting, while the session's fader, pan and send hold the static ones.
    The session writes no envelopes (for no lane), so this is where the ride is told;
    ``--stems-out`` sessions play every ride (it is rendered into the processed stems)."""
    strip = settings.track[i]
    width = float(strip[TRACK.index("width")])
    lanes = settings.automation.get(settings.track_names[i], {})
    eq = describe_eq(without_ridden_gains(strip, lanes, TRACK), TRACK)
    parts = [eq] if eq != "flat" else []
    for band, lane in ridden_bands(lanes):
        low, high = min(lane.values), max(lane.values)
        span = db(low) if low == high else f"{db(low)}…{db(high)}"
        parts.append(f"{band} ridden {span} at {hz(float(strip[TRACK.index(f'eq.{band}.freq_hz')]))} "
                     "(automated; its lane is in mix.json, not in this session)")
    compressor = describe_compressor(strip, TRACK, detail=False)
    parts += [f"compressor {compressor}"] if compressor != "off" else []
    parts += [f"width {in_words(width, 2)}"] if width != 1.0 else []
    for name, label in _RIDES:
        if name in lanes:
            low, high = (_ride_value(name, f(lanes[name].values)) for f in (min, max))
            span = low if low == high else f"{low}…{high}"
            parts.append(f"{label} ridden {span} (automated; its lane is in mix.json, not in this session)")
    return "; ".join(parts) or "nothing"


def _ride_value(name: str, value: float) -> str:
    if name == "pan":
        return in_words(value, 2, sign=True)
    return describe_send(value) if name == "send.reverb_db" else db(value)


_RIDES = (("gain_db", "fader"), ("pan", "pan"), ("send.reverb_db", "reverb send"))
"""Lanes after the compressor (:data:`automix.console.automation.RIDE_LANES`) and what an engineer calls them."""


def _notes(settings: MixSettings, names: list[str], processed: bool, skipped: list[str]) -> list[str]:
    """The project notes (REAPER: File > Project settings > Notes): what the session holds and
    what it leaves out, so nobody mistakes the original-stem session for the full mix."""
    fx = {spec.name: float(v) for spec, v in zip(FX, settings.fx)}
    master = {spec.name: float(v) for spec, v in zip(MASTER, settings.master)}
    lines = [f"automix session (mixer {settings.mixer}, {settings.sample_rate} Hz)."]
    if processed:
        lines += ["Items: the processed stems (trim, EQ, compressor, fader, pan and width applied), faders at",
                  "0 dB: the tracks sum to the automix mix before its master stage.",
                  "FX return plays the rendered reverb; its receives are muted. To use your own reverb, put it",
                  f"on FX return, unmute the receives and mute the item (return level {db(fx['reverb.return_db'])})."]
    else:
        lines += ["Items: the original stems; each fader holds the automix trim, fader and compressor make-up",
                  "(mono stems also -3 dB, automix's centre pan law); pans and reverb sends as in the mix.",
                  "Not in this session (see mix.json, or mix with --stems-out for processed stems):"]
        lines += [f"  {name}: {processing_summary(settings, i)}" for i, name in enumerate(names)]
        lines += ["FX return is muted: insert a reverb on it first, then unmute it."]
    lines.append(f"Reverb: decay {fx['reverb.decay_s']:.2f} s, pre-delay {fx['reverb.predelay_ms']:.0f} ms, "
                 f"damping {fx['reverb.damping']:.2f}.")
    lines.append(f"Master stage not applied (the master fader is at 0 dB): gain {db(master['gain_db'])}, "
                 f"compressor {master['compressor.ratio']:.1f}:1, then loudness {settings.target_lufs:.1f} LUFS "
                 f"and a true-peak limit at {settings.ceiling_dbtp:.1f} dBTP.")
    if skipped:
        lines.append(f"Muted: {', '.join(skipped)} (silent, left out of the mix).")
    return lines


def _item_lines(file: str, length_s: float) -> list[str]:
    kind = SOURCE_TYPES.get(Path(file).suffix.lower(), "WAVE")
    return ["<ITEM", "  POSITION 0", f"  LENGTH {rpp_number(length_s)}", "  LOOP 0", f"  FADEIN {_NO_FADE}",
            f"  FADEOUT {_NO_FADE}", "  MUTE 0 0", f"  NAME {quote(Path(file).name)}", "  SOFFS 0",
            f"  <SOURCE {kind}", f"    FILE {quote(file)}", "  >", ">"]


def _track_lines(track: _Track, guid: str, length_s: float) -> list[str]:
    lines = [f"<TRACK {guid}", f"  NAME {quote(track.name)}", f"  TRACKID {guid}",
             f"  VOLPAN {rpp_number(track.volume)} {rpp_number(track.pan)} -1 -1 1",
             f"  MUTESOLO {int(track.muted)} 0 0", "  NCHAN 2", "  MAINSEND 1 0"]
    for source, gain, muted in track.receives:
        lines.append(f"  AUXRECV {source} {_POST_FADER} {rpp_number(gain)} 0 {int(muted)} 0 0 0 0 -1 0 -1")
    if track.file is not None:
        lines += ["  " + line for line in _item_lines(track.file, length_s)]
    return lines + [">"]


def reaper_project(
    settings: MixSettings,
    stems: Mapping[str, Path],
    project: Path,
    *,
    duration_s: float,
    processed: Mapping[str, Path] | None = None,
    reverb_return: Path | None = None,
    skipped: Sequence[Path] = (),
    mono: Collection[str] = (),
) -> str:
    """The ``.rpp`` text of a session for ``settings`` (the rounded settings ``mix.json`` holds).

    Args:
        settings: the mix, with ``sample_rate`` set (the render rate, Hz).
        stems: each track's original stem file, by track name (``settings.track_names``).
        project: where the ``.rpp`` will be written (item paths are made relative to its folder).
        duration_s: length of the mix in seconds (every item is this long).
        processed: each track's processed stem (``--stems-out``); given, the items are these
            with faders at 0 dB (see the module docstring), and ``reverb_return`` is the FX
            return's item.
        reverb_return: the rendered reverb return (``--stems-out``), or None.
        skipped: stems in the folder that are not in the mix (silent); muted tracks.
        mono: names of the tracks whose stem is mono (their fader holds the pan-law difference).

    Raises:
        KeyError: ``stems`` or ``processed`` lacks a track of ``settings``.
    """
    names = list(settings.track_names)
    labels = track_names(names + [Path(p).name for p in skipped])
    send_db = settings.track[:, TRACK.index("send.reverb_db")]
    return_db = float(settings.fx[FX.index("reverb.return_db")])
    tracks: list[_Track] = []
    for i, name in enumerate(names):
        if processed is not None:  # the strip is in the file: unity fader, centred pan
            tracks.append(_Track(labels[i], 1.0, 0.0, False, relative_path(processed[name], project)))
        else:
            volume = original_stem_volume(settings, i, mono=name in mono)
            pan = float(settings.track[i, TRACK.index("pan")])
            tracks.append(_Track(labels[i], volume, pan, False, relative_path(stems[name], project)))
    for label, file in zip(labels[len(names):], skipped):
        tracks.append(_Track(label, 1.0, 0.0, True, relative_path(Path(file), project)))

    rendered = processed is not None
    receives = [(i, float(send_gain(float(db))), rendered) for i, db in enumerate(send_db) if db > SEND_OFF_DB]
    fx_file = relative_path(reverb_return, project) if rendered and reverb_return is not None else None
    # The rendered return already holds its return level; a live reverb gets it on the fader.
    fx_volume = 1.0 if rendered else float(send_gain(return_db))
    tracks.append(_Track(FX_RETURN_TRACK, fx_volume, 0.0, not rendered, fx_file, receives))

    notes = _notes(settings, [labels[i] for i in range(len(names))], rendered,
                   [Path(p).name for p in skipped])
    lines = ['<REAPER_PROJECT 0.1 "6.0/automix" 0', "  RIPPLE 0",
             f"  SAMPLERATE {int(settings.sample_rate or 44100)} 0 0",
             # Pan law 0 dB and "stereo balance / mono pan": a centred stereo item plays unchanged.
             "  PANLAW 1", "  PANMODE 3",
             "  <NOTES 0 2", *[f"    |{line}" for line in notes], "  >",
             "  MASTER_NCH 2 2", "  MASTER_VOLUME 1 0 -1 -1 1", "  MASTER_PANMODE 3", "  MASTER_SEL 0"]
    for index, track in enumerate(tracks):
        lines += ["  " + line for line in _track_lines(track, _guid(project, index, track.name), duration_s)]
    return "\n".join(lines + [">"]) + "\n"


def write_reaper_project(path: str | Path, text: str, *, force: bool = False, protect: Iterable[Path] = ()) -> Path:
    """Write the ``.rpp`` atomically (refused if it exists without ``force`` or is a ``protect``-ed input)."""
    return write_text_atomic(path, text, force=force, protect=protect)
