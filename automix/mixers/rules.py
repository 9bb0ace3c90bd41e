"""``rules``: a knowledge-engineered mixer that needs no training.

In the spirit of De Man & Reiss's knowledge-engineered mixing systems: each stem's role is
inferred from its file name or its audio (see :mod:`automix.mixers.roles` and
:mod:`automix.mixers.descriptors`), and a small set of documented rules (the kind mixing
engineers state in interviews and textbooks) turns roles and features into console settings:

0. leave alone a stem with nothing to level: only a DC offset, near silence, or a click
               (its loudness measures almost nothing, so levelling it would boost it by tens
               of dB): unity trim and fader, neutral strip, centred;
1. balance    trim every stem to the same loudness, then set the fader by role (offsets
               tuned on real authors' balances: kick, snare, lead vocal and guitar forward;
               hats, backing vocals and effects back);
2. high-pass  remove rumble below each source's useful range, never above its lowest content;
3. resonance  cut the strongest persistent narrow peak between 200 Hz and 5 kHz a few dB;
4. dynamics   compress in proportion to the crest factor (ratio 2–4), threshold at the
               stem's own RMS level, time constants by role (slow attack keeps drum hits);
5. placement  low-frequency and lead sources centred; the rest spread alternately left and
               right, brighter sources wider; genuinely stereo stems stay as recorded;
6. space      a moderate post-fader reverb send on melodic sources, one plate-like reverb;
7. master     subsonic high-pass and gentle glue compression; loudness is the output stage's job.

Every decision is written to ``settings.notes[stem]`` and the role to ``settings.roles``,
so ``mix.json`` explains itself. All values go through the schema and are clipped to it.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from automix.console.loudness import NORMALISED_STEM_LUFS, SILENCE_LUFS
from automix.console.schema import MASTER, SEND_OFF_DB, TRACK
from automix.console.settings import MixSettings
from automix.io import Stem
from automix.mixers.descriptors import StemFeatures
from automix.mixers.roles import infer_role
from automix.mixers.stem_analysis import analyse_reader
from automix.models.inputs import stem_trim_db


@dataclass(frozen=True)
class RoleStyle:
    """How the rules treat one role.

    Attributes:
        offset_db: fader relative to the equal-loudness balance.
        highpass_hz: the high-pass cutoff the role tolerates (lowered to protect content).
        centred: keep in the middle (low-frequency anchors and the lead).
        reverb_send_db: post-fader send to the reverb (``SEND_OFF_DB`` = none).
        attack_ms, release_ms: compressor time constants.
        width: stereo width for stereo stems (0 collapses low sources to mono).
    """

    offset_db: float
    highpass_hz: float
    centred: bool
    reverb_send_db: float
    attack_ms: float
    release_ms: float
    width: float = 1.0


ROLE_OFFSET_PRIOR_TRACKS = 20
"""How many tracks of evidence the engineering rule of thumb is worth when the fader offsets are
re-tuned on real balances (below)."""

# The fader offsets are tuned on the train split of the real-balance corpus (`automix data real`:
# authors' own levels in tracker modules, MIDI and Hydrogen songs; scripts/tune_rules.py,
# docs/results/rules-tuning/): each is the median of the authors' level relative to the song's
# mean track, pulled towards the engineering rule of thumb it replaced (kick +2, snare +1,
# hats −5, drums −2, bass +1, lead vocal +3, backing vocal −3, lead +1, guitar −1.5, keys −2,
# pad −5, fx −6, melodic −2) as if that rule were ROLE_OFFSET_PRIOR_TRACKS more tracks:
# offset = (n · median + 20 · rule) / (n + 20). Roles with many tracks follow the authors (pads
# sit at −0.8, not −5; hats at −3.3 from 136 tracks); roles the corpus barely holds (lead vocal
# 11 tracks, backing vocal 17) keep most of the rule. Last tuned on 323 songs / 2,117 tracks
# (docs/results/rules-tuning/train-all.json).
ROLE_STYLES: dict[str, RoleStyle] = {
    "kick": RoleStyle(+1.7, 30.0, True, SEND_OFF_DB, 20.0, 120.0, width=0.0),
    "snare": RoleStyle(+1.1, 90.0, True, -20.0, 10.0, 150.0),
    "hats": RoleStyle(-3.3, 300.0, False, SEND_OFF_DB, 5.0, 80.0),
    "drums": RoleStyle(-0.3, 60.0, False, -24.0, 15.0, 150.0),
    "bass": RoleStyle(+1.1, 30.0, True, SEND_OFF_DB, 15.0, 200.0, width=0.0),
    "lead_vocal": RoleStyle(+1.8, 90.0, True, -14.0, 5.0, 120.0),
    "backing_vocal": RoleStyle(-2.9, 140.0, False, -12.0, 5.0, 120.0),
    "lead": RoleStyle(-0.3, 120.0, True, -16.0, 10.0, 150.0),
    "guitar": RoleStyle(+1.0, 90.0, False, -18.0, 10.0, 150.0),
    "keys": RoleStyle(-0.4, 60.0, False, -16.0, 15.0, 200.0),
    "pad": RoleStyle(-0.8, 120.0, False, -12.0, 30.0, 300.0, width=1.3),
    "fx": RoleStyle(-1.4, 150.0, False, -12.0, 10.0, 200.0),
    "melodic": RoleStyle(-0.6, 80.0, False, -16.0, 10.0, 150.0),
    "silent": RoleStyle(0.0, 10.0, True, SEND_OFF_DB, 10.0, 100.0),  # left alone (rule 0): a neutral strip
}

LOW_SOURCE_RATIO = 0.4
"""A stem with this share of its power below 150 Hz is kept centred whatever its role."""

WIDE_STEREO_CORRELATION = 0.9
"""Stereo stems less correlated than this are treated as already placed (not panned)."""

PITCHED_ROLES = frozenset({"bass", "lead", "guitar", "keys", "pad", "melodic"})
"""Roles whose spectral peaks are mostly notes: resonance cuts stay shallow."""

RESONANCE_MIN_DB = 6.0
"""A peak must stand this far above the smoothed spectrum to be called a resonance."""

COMPRESS_MIN_CREST_DB = 8.0
"""Stems with a lower crest factor are already dense (pads, sines): left uncompressed."""

THRESHOLD_ABOVE_RMS_DB = 2.0
"""Compressor threshold relative to the stem's playing RMS (after trim): catches the peaks."""

IMPULSIVE_PLR_DB = 30.0
"""A stem whose sample peak stands more than this above its loudness is a click or a lone tick,
not a source whose loudness says how loud it sounds. Measured on generated stems: a kick loop
~17 dB, a single snare hit ~19 dB, an 8 ms rimshot ~26 dB; a 1 ms metronome click ~32 dB, a
one-sample click ~39 dB."""

REVERB = {"reverb.decay_s": 1.6, "reverb.predelay_ms": 25.0, "reverb.damping": 0.6, "reverb.return_db": 0.0}
"""A medium plate-like room: long enough to glue, pre-delay keeps vocals intelligible."""


# --------------------------------------------------------------------------------------
# The rules (one small function each; each returns values and the note it leaves)
# --------------------------------------------------------------------------------------

def left_alone(f: StemFeatures) -> str | None:
    """Rule 0: why a stem is left at unity with a neutral strip, or None to apply the rules.

    Levelling trims every stem to the same loudness; for a stem whose loudness measures almost
    nothing that would be a boost of tens of dB (a one-sample click +22 dB): an engineer
    leaves such a stem as it is.
    """
    if f.only_dc:
        return "only a DC offset, which the console's high-pass (DC blocker) removes"
    if f.lufs <= SILENCE_LUFS:
        return f"near silence (loudness below {SILENCE_LUFS:g} LUFS)"
    if f.peak_dbfs - f.lufs > IMPULSIVE_PLR_DB:
        return (f"impulsive: its peak stands {f.peak_dbfs - f.lufs:.0f} dB above its loudness "
                f"({f.lufs:.1f} LUFS), a click rather than a source to level")
    return None


def balance(role: str, lufs: float) -> tuple[float, float, str]:
    """Rule 1: ``(trim_db, gain_db, note)``: equal loudness, then the role's fader offset."""
    trim_db = stem_trim_db(lufs)
    gain_db = ROLE_STYLES[role].offset_db
    return trim_db, gain_db, (
        f"balance: trim {trim_db:+.1f} dB ({lufs:.1f} → {NORMALISED_STEM_LUFS:g} LUFS), "
        f"fader {gain_db:+.1f} dB for {role}"
    )


def highpass(role: str, f: StemFeatures) -> tuple[float, str]:
    """Rule 2: ``(cutoff_hz, note)``: the role's cutoff, but at most 0.7 × the stem's low edge."""
    wanted = ROLE_STYLES[role].highpass_hz
    protect = max(20.0, 0.7 * f.low_edge_hz)
    cutoff = min(wanted, protect)
    why = "" if cutoff == wanted else f", lowered from {wanted:g} Hz to keep content from {f.low_edge_hz:.0f} Hz"
    return cutoff, f"high-pass {cutoff:.0f} Hz{why}"


def resonance_cut(role: str, f: StemFeatures) -> tuple[str, float, float, float, str] | None:
    """Rule 3: ``(band, freq_hz, gain_db, q, note)`` cutting the strongest resonance, or None.

    The cut is half the peak's prominence, at least 2 dB and at most 5 dB — or 3 dB for
    pitched sources, whose persistent peak may be a held chord tone rather than a ringing
    drum or room mode. A narrow Q of 4 keeps the tone of the source. The band is the first
    peaking band whose range holds the frequency.
    """
    if f.resonance_db < RESONANCE_MIN_DB:
        return None
    band = next((b for b in ("band_2", "band_3") if TRACK.spec(f"eq.{b}.freq_hz").contains(f.resonance_hz)), None)
    if band is None:
        return None
    deepest_db = 3.0 if role in PITCHED_ROLES else 5.0
    gain_db = -float(np.clip(f.resonance_db / 2.0, 2.0, deepest_db))
    q = 4.0
    return band, f.resonance_hz, gain_db, q, (
        f"resonance at {f.resonance_hz:.0f} Hz stands {f.resonance_db:.0f} dB out: cut {gain_db:.1f} dB (Q {q:g})"
    )


def compression(role: str, f: StemFeatures, trim_db: float) -> tuple[dict[str, float], str]:
    """Rule 4: compressor settings from the crest factor; ``({param: value}, note)``.

    Ratio rises linearly from 2 at 8 dB crest to 4 at 20 dB. The threshold sits
    :data:`THRESHOLD_ABOVE_RMS_DB` above the stem's playing RMS *after the trim*, so only the
    louder moments are reduced; make-up returns roughly the average reduction.
    """
    if f.crest_db < COMPRESS_MIN_CREST_DB:
        return {}, f"no compression: already dense (crest {f.crest_db:.0f} dB)"
    ratio = float(np.interp(f.crest_db, [8.0, 20.0], [2.0, 4.0]))
    threshold_db = f.active_rms_dbfs + trim_db + THRESHOLD_ABOVE_RMS_DB
    makeup_db = (1.0 - 1.0 / ratio) * 2.0
    style = ROLE_STYLES[role]
    values = {
        "compressor.threshold_db": threshold_db,
        "compressor.ratio": ratio,
        "compressor.attack_ms": style.attack_ms,
        "compressor.release_ms": style.release_ms,
        "compressor.knee_db": TRACK.spec("compressor.knee_db").default,
        "compressor.makeup_db": makeup_db,
    }
    return values, (
        f"compress {ratio:.1f}:1 from {threshold_db:.1f} dB (crest {f.crest_db:.0f} dB), "
        f"attack {style.attack_ms:g} ms, release {style.release_ms:g} ms, make-up {makeup_db:+.1f} dB"
    )


def placement(
    names: list[str], roles: dict[str, str], features: dict[str, StemFeatures], stereo: dict[str, bool]
) -> dict[str, tuple[float, float, str]]:
    """Rule 5: ``{name: (pan, width, note)}`` for all stems at once.

    Centred: roles marked ``centred`` and any stem with ≥ :data:`LOW_SOURCE_RATIO` of its power
    below 150 Hz. Stereo stems with L/R correlation below :data:`WIDE_STEREO_CORRELATION`
    keep their own image. The rest, ordered by spectral centroid, are paired; each pair is
    placed left and right (which side gets the darker one alternates), and brighter pairs sit
    wider (0.3 → 0.75). With an odd count the darkest stays centred; a lone one sits at +0.3.
    """
    out: dict[str, tuple[float, float, str]] = {}
    spread: list[str] = []
    for name in names:
        style, f = ROLE_STYLES[roles[name]], features[name]
        width = style.width if stereo[name] else 1.0
        if style.centred or f.low_ratio >= LOW_SOURCE_RATIO:
            reason = f"{roles[name]}" if style.centred else f"{f.low_ratio:.0%} low-frequency power"
            out[name] = (0.0, width, f"centred ({reason})")
        elif stereo[name] and f.stereo_correlation < WIDE_STEREO_CORRELATION:
            out[name] = (0.0, width, f"stereo image kept (correlation {f.stereo_correlation:.2f}), width {width:g}")
        else:
            spread.append(name)
    spread.sort(key=lambda n: features[n].centroid_hz)
    if len(spread) == 1:
        out[spread[0]] = (0.3, 1.0, "pan +0.30 (the only source to spread: gently off-centre)")
        spread = []
    elif len(spread) % 2:
        darkest = spread.pop(0)
        out[darkest] = (0.0, 1.0, "centred (odd one out of the spread sources, the darkest)")
    pairs = len(spread) // 2
    for k in range(pairs):
        amount = 0.3 + 0.45 * (k / (pairs - 1) if pairs > 1 else 0.0)
        darker, brighter = spread[2 * k], spread[2 * k + 1]
        side = -1.0 if k % 2 == 0 else 1.0
        for name, pan in ((darker, side * amount), (brighter, -side * amount)):
            where = "left" if pan < 0 else "right"
            centroid = features[name].centroid_hz
            out[name] = (pan, 1.0, f"pan {pan:+.2f} ({where}; spread by brightness, centroid {centroid:.0f} Hz)")
    return out


def reverb_send(role: str) -> tuple[float, str]:
    """Rule 6: ``(send_db, note)``: melodic and vocal sources get a moderate send."""
    send_db = ROLE_STYLES[role].reverb_send_db
    if send_db <= SEND_OFF_DB:
        return SEND_OFF_DB, "no reverb (keeps the low end and transients dry)"
    return send_db, f"reverb send {send_db:g} dB"


def master_chain(fader_db: list[float]) -> dict[str, float]:
    """Rule 7: master settings: 25 Hz subsonic filter and 1.5:1 glue compression.

    The mix level is estimated by power-summing the stems at their post-fader loudness; the
    threshold sits 2 dB above it, so the compressor only touches the loudest passages.
    """
    estimate_db = 10.0 * math.log10(sum(10 ** ((NORMALISED_STEM_LUFS + g) / 10.0) for g in fader_db))
    return {
        "eq.highpass.freq_hz": 25.0,
        "compressor.threshold_db": estimate_db + 2.0,
        "compressor.ratio": 1.5,
        "compressor.attack_ms": 30.0,
        "compressor.release_ms": 250.0,
        "compressor.knee_db": MASTER.spec("compressor.knee_db").default,
    }


# --------------------------------------------------------------------------------------
# The mixer
# --------------------------------------------------------------------------------------

ANALYSIS_WORKERS = 2
"""Stems analysed in parallel (the compiled kernels and FFTs release the GIL)."""


def analyse_stems(stems: list[Stem]) -> dict[str, StemFeatures]:
    """Features of every stem (in memory or streamed from disk: anything with ``read``/``frames``)."""
    analyse_reader(lambda a, b: np.zeros((1, b - a), np.float32), 1, 1, 44100)  # compile on this thread first
    with ThreadPoolExecutor(max_workers=ANALYSIS_WORKERS) as pool:
        # Longest first, so the workers finish together (a stereo stem last would run alone).
        jobs = {s.name: pool.submit(analyse_reader, s.read, s.channels, s.frames, s.sample_rate)
                for s in sorted(stems, key=lambda s: -s.channels * s.frames)}
        return {s.name: jobs[s.name].result() for s in stems}


class RulesMixer:
    """The default mixer: analyse every stem, infer its role, apply the rules above."""

    accepts_references = False

    name = "rules"

    def predict(self, stems: list[Stem], sample_rate: int, *, seed: int = 0) -> MixSettings:
        names = [s.name for s in stems]
        settings = MixSettings.neutral(names, mixer=self.name, sample_rate=sample_rate)
        features = analyse_stems(stems)
        stereo = {s.name: s.is_stereo for s in stems}
        for name in names:
            settings.roles[name], why = infer_role(name, features[name])
            settings.notes[name] = [why]

        alone = {name: why for name in names if (why := left_alone(features[name])) is not None}
        for name, why in alone.items():
            settings.notes[name].append(f"left alone: {why}; unity trim and fader, no processing, centred")
        active = [name for name in names if name not in alone]

        for name in active:
            role, f, notes = settings.roles[name], features[name], settings.notes[name]
            trim_db, gain_db, note = balance(role, f.lufs)
            settings.set(name, "trim_db", trim_db)
            settings.set(name, "gain_db", gain_db)
            notes.append(note)

            cutoff_hz, note = highpass(role, f)
            settings.set(name, "eq.highpass.freq_hz", cutoff_hz)
            notes.append(note)

            cut = resonance_cut(role, f)
            if cut is not None:
                band, freq_hz, cut_db, q, note = cut
                settings.set(name, f"eq.{band}.freq_hz", freq_hz)
                settings.set(name, f"eq.{band}.gain_db", cut_db)
                settings.set(name, f"eq.{band}.q", q)
                notes.append(note)

            values, note = compression(role, f, trim_db)
            for param, value in values.items():
                settings.set(name, param, value)
            notes.append(note)

            send_db, note = reverb_send(role)
            settings.set(name, "send.reverb_db", send_db)
            notes.append(note)

        for name, (pan, width, note) in placement(active, settings.roles, features, stereo).items():
            settings.set(name, "pan", pan)
            settings.set(name, "width", width)
            settings.notes[name].append(note)

        sends_on = any(settings.get(n, "send.reverb_db") > SEND_OFF_DB for n in names)
        for param, value in REVERB.items():
            settings.set_fx(param, value if sends_on or param != "reverb.return_db" else SEND_OFF_DB)
        # Stems left alone add nothing to the mix level (when every stem is, the estimate uses them all).
        for param, value in master_chain([settings.get(n, "gain_db") for n in active or names]).items():
            settings.set_master(param, value)
        return settings.clipped()
