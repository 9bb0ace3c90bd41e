"""Synthetic multitracks: arrangement → dry per-instrument stems (fluidsynth) → unbalanced levels.

Each song folder holds ``stems/NN_<role>.flac`` (44.1 kHz, 24-bit), ``arranger_mix.flac`` (the
arranger's own balance) and ``song.json``. The relation between them is exact and recorded:
``arranger_mix = mix_gain * Σ pan_i(stem_i * 10^(stem_to_mix_gain_db_i / 20))`` where ``pan_i``
is constant-power for mono stems and a balance (unity at centre) for stereo stems.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.data import arrange, soundfonts
from automix.data.fluid import MAX_CHANNELS, ChannelSpec, MidiEvent, render_channels
from automix.data.parts import Part, role_for_program, split_drums
from automix.errors import AutomixError

SAMPLE_RATE_HZ = 44100
GENERATOR_VERSION = 1
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
MIN_STEMS, MAX_STEMS = 2, 20
LEVEL_OFFSET_DB = 12.0  # recording-like level offsets are uniform in ±this
SILENT_PEAK_DBFS = -60.0
FADE_OUT_S = 0.02  # notes are cut at the end; a short fade avoids a click
# How far from centre the arranger pans an instrument role (mma songs carry no pan of their own).
_PAN_WIDTH = {"bass": 0.05, "kick": 0.0, "snare": 0.1, "vocals": 0.2, "lead": 0.2, "drums": 0.0}


@dataclass(frozen=True)
class SongPlan:
    """Everything decided before rendering; a pure function of (seed, index)."""

    song_id: str
    split: str
    parts: list[Part]
    specs: list[ChannelSpec]
    soundfont_names: list[str]
    source: dict


def song_split(seed: int, index: int) -> str:
    """Deterministic train/val/test assignment of song ``index`` (about 80/10/10)."""
    u = np.random.default_rng([seed, index, 1]).random()
    return "train" if u < SPLIT_FRACTIONS["train"] else ("val" if u < 0.9 else "test")


def _humanise(rng: np.random.Generator, part: Part, timing_sd_s: float) -> Part:
    """Scale/jitter velocities and nudge note times (a note's on and off move together)."""
    scale = rng.uniform(0.8, 1.1)
    shift: dict[int, float] = {}
    events = []
    for ev in part.events:
        if ev.kind == "on":
            shift[ev.a] = float(rng.normal(0.0, timing_sd_s)) if timing_sd_s > 0 else 0.0
            vel = int(np.clip(round(ev.b * scale + rng.normal(0.0, 5.0)), 1, 127))
            events.append(MidiEvent(max(ev.time_s + shift[ev.a], 0.0), "on", ev.a, vel))
        elif ev.kind == "off":
            events.append(MidiEvent(max(ev.time_s + shift.get(ev.a, 0.0), 0.0), "off", ev.a))
        else:
            events.append(ev)
    events.sort(key=lambda e: e.time_s)
    return replace(part, events=events)


def _arrangement(rng: np.random.Generator, split: str, seconds: float) -> arrange.Arrangement:
    last_error: AutomixError | None = None
    for _ in range(6):  # a few MMA grooves fail on some charts: draw again, deterministically
        try:
            if rng.random() < 0.2:
                arr = arrange.openmsx_arrangement(rng, split, seconds)
            else:
                arr = arrange.mma_arrangement(rng, split, seconds)
        except AutomixError as exc:
            last_error = exc
            continue
        if len(arr.parts) >= 2:
            return arr
    raise AutomixError(f"could not make an arrangement with ≥2 parts: {last_error}")


def plan_song(seed: int, index: int, seconds: float) -> SongPlan:
    """Choose arrangement, stem split, programs, SoundFonts and humanisation for one song."""
    split = song_split(seed, index)
    rng = np.random.default_rng([seed, index])
    arr = _arrangement(rng, split, seconds)
    parts: list[Part] = []
    split_kit = rng.random() < 0.65
    timing_sd_s = 0.004 if arr.source["kind"] == "mma" else 0.0
    for part in arr.parts:
        if not part.is_drum and rng.random() < 0.25:  # another instrument of the same GM family
            program = int(part.program // 8 * 8 + rng.integers(8))
            part = replace(part, program=program, role=role_for_program(program))
        part = _humanise(rng, part, timing_sd_s)
        parts.extend(split_drums(part) if split_kit else [part])
    n_drop = int(rng.binomial(len(parts), 0.12))
    n_keep = int(np.clip(len(parts) - n_drop, MIN_STEMS, min(MAX_STEMS, MAX_CHANNELS)))
    keep = sorted(rng.choice(len(parts), size=min(n_keep, len(parts)), replace=False))
    parts = [parts[i] for i in keep]

    gm_fonts = soundfonts.available("gm", split)
    kits = soundfonts.available("drumkit", split)
    main_font = gm_fonts[rng.integers(len(gm_fonts))]
    if rng.random() < 0.6:
        kit, kit_bank, kit_program = kits[rng.integers(len(kits))], 0, 0
    else:
        kit = gm_fonts[rng.integers(len(gm_fonts))]
        kit_bank, kit_program = kit.drum_bank, int(kit.drum_programs[rng.integers(len(kit.drum_programs))])
    specs, names = [], []
    for part in parts:
        if part.is_drum:
            font, bank, program = kit, kit_bank, kit_program
        else:
            font = main_font if rng.random() < 0.7 else gm_fonts[rng.integers(len(gm_fonts))]
            bank, program = 0, part.program
        specs.append(ChannelSpec(font.path, bank, program, part.is_drum, part.events))
        names.append(font.name)
    return SongPlan(f"song_{index:05d}", split, parts, specs, names, arr.source)


def _arranger_pan(rng: np.random.Generator, part: Part, kind: str) -> float:
    if kind != "mma" or part.pan_cc != 64:
        return float(np.clip((part.pan_cc - 64) / 63.0, -1.0, 1.0))
    width = _PAN_WIDTH.get(part.role, 0.6)
    return float(rng.uniform(-width, width))


def pan_stem(audio: np.ndarray, pan: float) -> np.ndarray:
    """Place a ``(channels, samples)`` stem in stereo: constant-power pan for mono (−3 dB at
    centre), balance with unity gain at centre for stereo. ``pan`` is −1 (left) … +1 (right)."""
    if audio.shape[0] == 1:
        theta = (pan + 1.0) * np.pi / 4.0
        return np.stack([audio[0] * np.cos(theta), audio[0] * np.sin(theta)])
    gains = np.array([min(1.0, 1.0 - pan), min(1.0, 1.0 + pan)], dtype=np.float32)[:, None]
    return audio * gains


def _db(x: float) -> float:
    return float(20.0 * np.log10(max(x, 1e-12)))


def render_song(seed: int, index: int, seconds: float, out_root: Path) -> dict:
    """Render song ``index`` into ``out_root/<split>/<song_id>/`` and return its song.json dict.

    The folder is written under a temporary name and renamed, so an interrupted run never
    leaves half a song; an existing song folder is kept and its song.json returned.
    """
    split = song_split(seed, index)
    final = Path(out_root) / split / f"song_{index:05d}"
    if (final / "song.json").is_file():
        return json.loads((final / "song.json").read_text())
    plan = plan_song(seed, index, seconds)
    rng = np.random.default_rng([seed, index, 2])  # level/pan draws, independent of the plan
    raw = render_channels(plan.specs, seconds, SAMPLE_RATE_HZ)
    n = raw.shape[-1]
    fade = np.ones(n, dtype=np.float32)
    n_fade = int(FADE_OUT_S * SAMPLE_RATE_HZ)
    fade[-n_fade:] = np.linspace(1.0, 0.0, n_fade, dtype=np.float32)

    stems, meta = [], []
    for part, spec, font_name, audio in zip(plan.parts, plan.specs, plan.soundfont_names, raw, strict=True):
        mono_prob = 0.85 if part.role in ("bass", "kick", "snare") else 0.45
        audio = audio.mean(axis=0, keepdims=True) if rng.random() < mono_prob else audio
        audio = audio * fade
        if _db(float(np.abs(audio).max())) < SILENT_PEAK_DBFS:
            continue
        arranger_gain_db = 40.0 * np.log10(max(part.volume_cc, 1) / 127.0)  # GM volume curve
        stems.append(audio * np.float32(10 ** (arranger_gain_db / 20)))
        meta.append({
            "name": part.name, "role": part.role, "drum_part": part.drum_part, "gm_program": part.program,
            "is_drum": part.is_drum, "bank": spec.bank, "soundfont": font_name,
            "soundfont_licence": soundfonts.by_name(font_name).licence, "channels": int(audio.shape[0]),
            "n_notes": part.n_notes, "arranger_gain_db": round(float(arranger_gain_db), 4),
            "arranger_pan": round(_arranger_pan(rng, part, plan.source["kind"]), 4),
            "level_offset_db": round(float(rng.uniform(-LEVEL_OFFSET_DB, LEVEL_OFFSET_DB)), 4),
        })
    if len(stems) < MIN_STEMS:
        raise AutomixError(f"song {index}: only {len(stems)} non-silent stems")

    # Arranger mix: the balanced stems panned and summed, then scaled to peak at -1 dBFS.
    mix = sum(pan_stem(s, m["arranger_pan"]) for s, m in zip(stems, meta, strict=True))
    mix_gain_db = -1.0 - _db(float(np.abs(mix).max()))
    mix = mix * np.float32(10 ** (mix_gain_db / 20))
    # Recording levels: per-stem offsets, then one song gain so the loudest stem peaks at -6..-1 dBFS.
    offset = [np.float32(10 ** (m["level_offset_db"] / 20)) for m in meta]
    loudest = max(_db(float(np.abs(s).max() * g)) for s, g in zip(stems, offset, strict=True))
    song_gain_db = float(rng.uniform(-6.0, -1.0)) - loudest
    tmp = final.parent / f".tmp_{final.name}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "stems").mkdir(parents=True)
    for i, (stem, g, m) in enumerate(zip(stems, offset, meta, strict=True)):
        stem = stem * g * np.float32(10 ** (song_gain_db / 20))
        m["file"] = f"stems/{i + 1:02d}_{m['role']}{'_drums' if m['drum_part'] else ''}.flac"
        m["stem_gain_db"] = round(m["level_offset_db"] + song_gain_db, 4)
        m["stem_to_mix_gain_db"] = round(-m["level_offset_db"] - song_gain_db, 4)
        m["peak_dbfs"] = round(_db(float(np.abs(stem).max())), 2)
        m["rms_dbfs"] = round(_db(float(np.sqrt(np.mean(stem.astype(np.float64) ** 2)))), 2)
        sf.write(tmp / m["file"], stem.T, SAMPLE_RATE_HZ, subtype="PCM_24", format="FLAC")
    sf.write(tmp / "arranger_mix.flac", mix.T, SAMPLE_RATE_HZ, subtype="PCM_24", format="FLAC")
    song = {
        "song_id": plan.song_id, "index": index, "seed": seed, "split": split,
        "generator_version": GENERATOR_VERSION, "duration_s": seconds, "sample_rate_hz": SAMPLE_RATE_HZ,
        "source": plan.source,
        "mix": {"file": "arranger_mix.flac", "mix_gain_db": round(mix_gain_db, 4),
                "pan_law": "mono: constant power (-3 dB centre); stereo: balance, unity at centre"},
        "stems": meta,
        "held_out_for_test": {"soundfonts": sorted(soundfonts.TEST_ONLY_SOUNDFONTS),
                              "groove_families": sorted(arrange.TEST_GROOVE_FAMILIES),
                              "openmsx_files": [p.name for p in arrange.openmsx_files_for_split("test")]},
        "licences": {"soundfonts": {n: soundfonts.by_name(n).licence for n in sorted(set(plan.soundfont_names))},
                     "arrangement": plan.source["licence"], "renderer": "fluidsynth (LGPL-2.1+)"},
    }
    (tmp / "song.json").write_text(json.dumps(song, indent=1) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return song


def _render_one(args: tuple[int, int, float, str]) -> tuple[int, dict | None, str]:
    seed, index, seconds, out = args
    try:
        return index, render_song(seed, index, seconds, Path(out)), ""
    except AutomixError as exc:  # one bad song must not stop a long run
        return index, None, str(exc)


def _print_now(message: str) -> None:
    print(message, flush=True)  # flushed so a log file of a background run shows progress


def synth_dataset(out: Path, songs: int, seconds: float, seed: int, jobs: int = 1,
                  log=_print_now) -> dict:
    """Render ``songs`` songs of ``seconds`` each into ``out`` with ``jobs`` processes; return a summary."""
    if songs < 1 or seconds <= 0 or jobs < 1:
        raise AutomixError("--songs and --jobs must be ≥ 1 and --seconds > 0")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    counts = {"train": 0, "val": 0, "test": 0}
    stem_s, failed = 0.0, []
    tasks = [(seed, i, seconds, str(out)) for i in range(songs)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for done, (index, song, error) in enumerate(pool.map(_render_one, tasks, chunksize=1), 1):
            if song is None:
                failed.append(index)
                log(f"[{done}/{songs}] song {index} FAILED: {error}")
                continue
            counts[song["split"]] += 1
            stem_s += seconds * len(song["stems"])
            if done % 10 == 0 or done == songs:
                log(f"[{done}/{songs}] {time.time() - start:.0f} s elapsed")
    n_ok = sum(counts.values())
    summary = {"songs": n_ok, "per_split": counts, "failed": failed, "mix_hours": n_ok * seconds / 3600,
               "stem_hours": stem_s / 3600, "seconds_taken": round(time.time() - start, 1),
               "seed": seed, "seconds_per_song": seconds}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(f"songs {n_ok} (train {counts['train']}, val {counts['val']}, test {counts['test']}), "
        f"failed {len(failed)}; audio {summary['mix_hours']:.2f} h of mixes, {summary['stem_hours']:.2f} h "
        f"of stems; took {summary['seconds_taken']:.0f} s")
    return summary
