"""Catalogue of the SoundFonts used for synthetic multitracks, with licences and the test hold-out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from automix.errors import AutomixError


@dataclass(frozen=True)
class SoundFont:
    """A SoundFont file. ``kind`` is ``gm`` (full General MIDI set) or ``drumkit`` (one drum preset)."""

    name: str
    path: Path
    kind: str
    licence: str
    package: str
    drum_bank: int = 128
    drum_programs: tuple[int, ...] = (0, 8, 16, 24, 25, 32, 40)  # GM kits: standard/room/power/…/brush


CATALOGUE: tuple[SoundFont, ...] = (
    SoundFont("FluidR3_GM", Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "gm", "MIT", "fluid-soundfont-gm"),
    SoundFont("MuseScore_General_Lite", Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"), "gm",
              "MIT", "musescore-general-soundfont-small"),
    SoundFont("TimGM6mb", Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), "gm", "GPL-2", "timgm6mb-soundfont"),
    SoundFont("Black_Pearl_4_LV2", Path("/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2"), "drumkit",
              "CC-BY-SA-3.0 (avldrums samples; Debian package GPL-2+)", "avldrums.lv2-soundfont", 0, (0,)),
    SoundFont("Red_Zeppelin_4_LV2", Path("/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2"), "drumkit",
              "CC-BY-SA-3.0 (avldrums samples; Debian package GPL-2+)", "avldrums.lv2-soundfont", 0, (0,)),
)

# Never used by train/val songs, so the test split measures generalisation to unseen timbres.
TEST_ONLY_SOUNDFONTS = frozenset({"TimGM6mb", "Red_Zeppelin_4_LV2"})


def available(kind: str, split: str) -> list[SoundFont]:
    """Installed SoundFonts of ``kind`` allowed in ``split`` (train/val exclude the held-out ones)."""
    found = [sf for sf in CATALOGUE if sf.kind == kind and sf.path.is_file()]
    if split != "test":
        found = [sf for sf in found if sf.name not in TEST_ONLY_SOUNDFONTS]
    if not found:
        raise AutomixError(
            f"no {kind} SoundFont installed for split {split}; apt-get install fluid-soundfont-gm "
            "musescore-general-soundfont-small timgm6mb-soundfont avldrums.lv2-soundfont"
        )
    return found


def by_name(name: str) -> SoundFont:
    """Catalogue entry by name."""
    for sf in CATALOGUE:
        if sf.name == name:
            return sf
    raise AutomixError(f"unknown SoundFont {name!r}; known: {', '.join(sf.name for sf in CATALOGUE)}")
