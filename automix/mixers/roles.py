"""Which instrument role a stem plays, inferred from its file name, else from its :class:`StemFeatures`."""

from __future__ import annotations

import re

from automix.mixers.descriptors import LOW_FREQ_HZ, StemFeatures

PERCUSSIVE_TRANSIENT_DB = 9.0
"""Envelope spikiness (:func:`~automix.mixers.descriptors.transient_db`, dB) from which a source
counts as percussive."""

SUSTAINED_TRANSIENT_DB = 5.0
"""Envelope spikiness (dB) below which a source counts as sustained (pads, drones)."""

ROLES: tuple[str, ...] = (
    "kick", "snare", "hats", "drums", "bass", "lead_vocal", "backing_vocal",
    "lead", "guitar", "keys", "pad", "fx", "melodic", "silent",
)
"""Every role a stem can get. ``melodic`` is a pitched source the rules could not name;
``silent`` a stem with nothing audible in it (only a DC offset)."""

# Checked in this order, so "bass drum" is a kick and "lead vocal" a vocal, not a lead.
# Keywords of 4+ letters match anywhere in the name; shorter ones only as a whole word.
_NAME_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("backing_vocal", ("backing", "bgv", "bv", "bvs", "bvox", "harmony", "harmonies", "choir", "adlib", "dbl")),
    ("lead_vocal", ("vocal", "vox", "voc", "voice", "singer", "lv", "leadvox")),
    ("kick", ("kick", "kik", "bd", "bassdrum")),
    ("snare", ("snare", "snr", "sd", "clap", "rimshot", "rim")),
    ("hats", ("hihat", "hat", "hats", "hh", "cymbal", "ride", "crash", "shaker", "tamb", "tambourine",
              "overhead", "oh")),
    ("drums", ("drum", "drums", "tom", "toms", "perc", "room", "kit", "conga", "bongo", "cowbell")),
    ("bass", ("bass", "sub", "808", "bs")),
    ("fx", ("fx", "sfx", "riser", "sweep", "impact", "noise", "efx")),
    ("pad", ("pad", "pads", "strings", "string", "str", "atmos", "ambient", "drone")),
    ("lead", ("lead", "solo", "melody", "mel", "sax", "trumpet", "flute", "violin", "whistle")),
    ("guitar", ("guitar", "gtr", "gtrs", "git", "acoustic", "strum")),
    ("keys", ("keys", "key", "piano", "pno", "organ", "rhodes", "epiano", "synth", "arp", "pluck", "bell")),
)


def _name_tokens(name: str) -> tuple[list[str], str]:
    """``(words, words joined)`` of a file name: extension dropped, casefolded, trailing digits cut."""
    base = name.rsplit(".", 1)[0] if "." in name else name
    base = re.sub(r"([a-z])([A-Z])", r"\1 \2", base).casefold()  # "LeadVox" → "lead vox"
    tokens = [t for t in re.split(r"[^a-z0-9]+", base) if t]
    words = [re.sub(r"\d+$", "", t) or t for t in tokens]  # "kick01" → "kick", "808" stays
    return words, "".join(words)


def role_from_name(name: str) -> tuple[str | None, str | None]:
    """The role a file name announces, and the keyword that decided it (or ``(None, None)``)."""
    words, joined = _name_tokens(name)
    for role, keywords in _NAME_KEYWORDS:
        for keyword in keywords:
            if keyword in words or (len(keyword) >= 4 and keyword in joined):
                return role, keyword
    return None, None


# General MIDI's instrument families (plus the drum kit), the finer grain a balance model reads:
# programmes of one family sit at similar levels in a mix whatever role the rules give them.
# Same matching as the roles; checked in this order, so "bass drum" is drums and "organ bass" bass.
_FAMILY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("drums", ("drum", "drums", "kick", "bd", "snare", "sd", "hihat", "hat", "hats", "hh", "cymbal", "crash",
               "tom", "toms", "perc", "timpani", "clap", "conga", "bongo", "shaker", "tamb", "cowbell")),
    ("bass", ("bass", "sub", "808")),
    ("piano", ("piano", "pno", "clav", "clavinet", "harpsichord", "rhodes", "epiano", "keys")),
    ("chromatic", ("celesta", "glock", "glockenspiel", "musicbox", "vibraphone", "vibes", "marimba", "xylophone",
                   "bell", "bells", "dulcimer")),
    ("organ", ("organ", "accordion", "harmonica", "bandoneon")),
    ("guitar", ("guitar", "gtr", "nylon", "overdrive", "distortion", "banjo", "sitar", "koto", "shamisen")),
    ("strings", ("violin", "viola", "cello", "contrabass", "string", "strings", "harp", "pizzicato", "tremolo")),
    ("choir", ("choir", "voice", "voc", "vox", "vocal", "aahs", "oohs")),
    ("brass", ("trumpet", "trombone", "tuba", "horn", "brass")),
    ("reed", ("sax", "oboe", "bassoon", "clarinet")),
    ("pipe", ("flute", "piccolo", "recorder", "whistle", "ocarina", "pan")),
    ("lead", ("lead", "square", "saw", "sawtooth", "calliope", "chiff", "solo")),
    ("pad", ("pad", "pads", "warm", "polysynth", "halo", "sweep", "atmos", "ambient", "drone")),
    ("fx", ("fx", "sfx", "rain", "soundtrack", "crystal", "atmosphere", "goblin", "echo", "effect", "noise")),
)

FAMILIES: tuple[str, ...] = tuple(family for family, _ in _FAMILY_KEYWORDS)
"""Every family :func:`family_from_name` can announce."""


def family_from_name(name: str) -> str | None:
    """The instrument family (:data:`FAMILIES`) a file or track name announces, else ``None``."""
    words, joined = _name_tokens(name)
    for family, keywords in _FAMILY_KEYWORDS:
        if any(k in words or (len(k) >= 4 and k in joined) for k in keywords):
            return family
    return None


def role_from_audio(f: StemFeatures) -> tuple[str, str]:
    """Guess a role from features alone; returns ``(role, reason)``.

    The tree follows how engineers listen: low-frequency weight first (kick vs bass:
    percussive vs sustained envelope), then brightness (cymbals), then transients (other
    drums), then stereo-ness with a steady envelope (pads), else melodic. A stem that is only
    a DC offset is ``silent`` (its power is all below 20 Hz, but it is no bass).
    """
    if f.only_dc:
        return "silent", f"nothing audible ({f.dc_share:.2%} of its power is a DC offset)"
    percussive = f.transient_db >= PERCUSSIVE_TRANSIENT_DB
    if f.low_ratio >= 0.5:
        low = f"{f.low_ratio:.0%} of power below {LOW_FREQ_HZ:g} Hz"
        if percussive:
            return "kick", f"{low}, percussive (transients {f.transient_db:.0f} dB)"
        return "bass", f"{low}, sustained (transients {f.transient_db:.0f} dB)"
    if f.centroid_hz >= 4000.0:
        return "hats", f"bright (centroid {f.centroid_hz:.0f} Hz)"
    if percussive:
        return "drums", f"percussive (transients {f.transient_db:.0f} dB)"
    if f.stereo_correlation < 0.7 and f.transient_db < SUSTAINED_TRANSIENT_DB:
        wide = f"L/R correlation {f.stereo_correlation:.2f}"
        return "pad", f"wide ({wide}) and sustained (transients {f.transient_db:.0f} dB)"
    return "melodic", f"pitched, centroid {f.centroid_hz:.0f} Hz"


def infer_role(name: str, features: StemFeatures) -> tuple[str, str]:
    """Role of a stem from its file name, else from its audio; returns ``(role, why)``.

    A stem with nothing audible is ``silent`` whatever its name says."""
    role, keyword = role_from_name(name) if not features.only_dc else (None, None)
    if role is not None:
        return role, f"role {role} from name ({keyword!r})"
    role, reason = role_from_audio(features)
    return role, f"role {role} from audio: {reason}"
