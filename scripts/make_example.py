"""Generate the bundled example multitrack in ``examples/stems/`` (reproducible, licence-clean).

An MMA "8BeatSus" groove on a I–V–vi–IV chart in G plus a generated sax melody, rendered dry with
MuseScore General Lite / FluidR3 (MIT) and the avldrums Black Pearl kit (CC-BY-SA-3.0). Stems get
recording-like, deliberately unbalanced peak levels; some are mono, some stereo, two are at 48 kHz.

    python scripts/make_example.py [--out examples]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from automix.data import arrange, soundfonts
from automix.data.fluid import ChannelSpec, render_channels
from automix.data.parts import Part, split_drums

SEED = 2024
DURATION_S = 20.0
RATE_HZ = 44100
GROOVE, TEMPO_BPM, KEY_ROOT = "8BeatSus", 96, 7  # G major
LEAD_PROGRAM = 65  # alto sax
# role -> (channels, sample rate Hz, peak dBFS): what a careless recording session might leave us
STEM_PLAN = {
    "kick": (1, 44100, -6.0),
    "snare": (1, 44100, -3.0),
    "hihat": (1, 44100, -21.0),
    "cymbals": (2, 44100, -25.0),
    "toms": (1, 44100, -12.0),
    "strings": (2, 48000, -23.0),
    "guitar": (1, 44100, -5.0),
    "piano": (2, 44100, -15.0),
    "bass": (1, 44100, -9.0),
    "sax": (1, 48000, -8.0),
}
MUSESCORE, FLUID, KIT = "MuseScore_General_Lite", "FluidR3_GM", "Black_Pearl_4_LV2"


def build_parts() -> list[Part]:
    rng = np.random.default_rng(SEED)
    progression = ((0, ""), (7, ""), (9, "m"), (5, ""))  # I V vi IV
    chart = [((KEY_ROOT + off) % 12, q) for off, q in progression] * 6
    parts, bar_quarters = arrange.run_mma(GROOVE, TEMPO_BPM, KEY_ROOT, False, chart, DURATION_S, SEED)
    bar_s = bar_quarters * 60.0 / TEMPO_BPM
    melody = arrange.melody_part(rng, chart, KEY_ROOT, False, bar_s, TEMPO_BPM, DURATION_S)
    parts.append(replace(melody, program=LEAD_PROGRAM, role="sax"))
    return [piece for part in parts for piece in split_drums(part)]


def render(out: Path) -> list[dict]:
    parts = [p for p in build_parts() if p.role in STEM_PLAN]
    specs = []
    for part in parts:
        if part.is_drum:
            font, bank = soundfonts.by_name(KIT), 0
        else:
            font, bank = soundfonts.by_name(FLUID if part.role in ("piano", "guitar") else MUSESCORE), 0
        specs.append(ChannelSpec(font.path, bank, 0 if part.is_drum else part.program, part.is_drum, part.events))
    raw = render_channels(specs, DURATION_S, RATE_HZ)
    fade = np.minimum(1.0, np.linspace(DURATION_S / 0.5, 0.0, raw.shape[-1])).astype(np.float32)  # 0.5 s out
    stem_dir = out / "stems"
    stem_dir.mkdir(parents=True, exist_ok=True)
    for old in stem_dir.glob("*.flac"):
        old.unlink()
    described = []
    for i, (part, spec, audio) in enumerate(zip(parts, specs, raw, strict=True), 1):
        channels, rate_hz, peak_dbfs = STEM_PLAN[part.role]
        audio = (audio.mean(axis=0, keepdims=True) if channels == 1 else audio) * fade
        if rate_hz != RATE_HZ:
            g = gcd(rate_hz, RATE_HZ)
            audio = resample_poly(audio, rate_hz // g, RATE_HZ // g, axis=-1).astype(np.float32)
        audio = audio * np.float32(10 ** (peak_dbfs / 20) / np.abs(audio).max())
        name = f"{i:02d}_{part.role}{'_drums' if part.drum_part else ''}.flac"
        sf.write(stem_dir / name, audio.T, rate_hz, subtype="PCM_16", format="FLAC")
        described.append({"file": f"stems/{name}", "role": part.role, "channels": channels,
                          "sample_rate_hz": rate_hz, "peak_dbfs": peak_dbfs, "gm_program": part.program,
                          "soundfont": Path(spec.soundfont).name})
    (out / "stems.json").write_text(json.dumps(
        {"groove": GROOVE, "tempo_bpm": TEMPO_BPM, "key": "G", "duration_s": DURATION_S, "seed": SEED,
         "stems": described}, indent=1) + "\n")
    return described


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples"))
    args = parser.parse_args()
    stems = render(args.out)
    total = sum((args.out / s["file"]).stat().st_size for s in stems)
    print(f"wrote {len(stems)} stems to {args.out / 'stems'}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
