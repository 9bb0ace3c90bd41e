"""mix.json: round trip of MixSettings through JSON, and one-line validation errors naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from automix.console.schema import FINALIZE, FX, MASTER, SCHEMA_VERSION, TRACK
from automix.console.settings import (
    DECIMALS,
    FORMAT_NAME,
    MixSettings,
    dumps,
    from_json,
    load_params,
    to_json,
)
from automix.errors import AutomixError, ParamsError

NAMES = ["kick.wav", "bass.flac", "lead vocal.wav"]


def random_settings(seed: int, names: list[str] = NAMES) -> MixSettings:
    """Every value drawn uniformly in the schema's normalised space, mapped to physical units."""
    rng = np.random.default_rng(seed)
    return MixSettings(
        track_names=list(names),
        track=TRACK.from_normalised(rng.random((len(names), len(TRACK)))),
        fx=FX.from_normalised(rng.random(len(FX))),
        master=MASTER.from_normalised(rng.random(len(MASTER))),
        finalize=FINALIZE.from_normalised(rng.random(len(FINALIZE))),
        roles={names[0]: "kick", names[-1]: "vocal"},
        notes={names[0]: ["high-pass at 30 Hz", "ducked under the bass"]},
        mixer="rules",
        sample_rate=48000,
    )


def valid_json() -> dict:
    return to_json(MixSettings.neutral(NAMES))


def expect_error(data, *fragments: str) -> str:
    with pytest.raises(ParamsError) as info:
        from_json(data)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def _rounded(values: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda v: round(float(v), DECIMALS))(values)


# --------------------------------------------------------------------------------------
# Round trip
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(20))
def test_round_trip_of_random_settings(seed: int) -> None:
    settings = random_settings(seed)
    text = dumps(settings)
    back = from_json(json.loads(text))
    for group in ("track", "fx", "master", "finalize"):
        original, restored = getattr(settings, group), getattr(back, group)
        assert restored.shape == original.shape
        assert np.array_equal(restored, _rounded(original)), group
        assert np.abs(restored - original).max() <= 0.5 * 10.0**-DECIMALS + 1e-12
    assert back.track_names == settings.track_names
    assert back.roles == settings.roles and back.notes == settings.notes
    assert back.mixer == "rules" and back.sample_rate == 48000
    # The rounded settings are a fixed point: writing them again gives the same text.
    assert dumps(back) == text
    assert dumps(settings.rounded()) == text


def test_range_edges_round_trip() -> None:
    settings = MixSettings.neutral(NAMES)
    settings.track[0] = TRACK.minimum()
    settings.track[1] = TRACK.maximum()
    settings.master = MASTER.maximum()
    settings.fx = FX.minimum()
    settings.finalize = FINALIZE.minimum()
    back = from_json(json.loads(dumps(settings)))
    assert np.array_equal(back.track, settings.track)
    assert np.array_equal(back.master, settings.master)
    assert np.array_equal(back.fx, settings.fx)
    assert np.array_equal(back.finalize, settings.finalize)


def test_json_layout_is_nested_and_readable() -> None:
    settings = random_settings(1)
    data = to_json(settings)
    assert data["format"] == FORMAT_NAME and data["version"] == SCHEMA_VERSION
    kick = data["tracks"]["kick.wav"]
    assert kick["name"] == "kick.wav" and kick["role"] == "kick"
    assert kick["eq"]["band_2"]["freq_hz"] == round(settings.get("kick.wav", "eq.band_2.freq_hz"), DECIMALS)
    assert kick["send"]["reverb_db"] == round(settings.get(0, "send.reverb_db"), DECIMALS)
    assert data["master"]["target_lufs"] == round(settings.target_lufs, DECIMALS)
    assert data["master"]["compressor"]["ratio"] == round(settings.master[MASTER.index("compressor.ratio")], 4)
    assert "-0.0" not in dumps(MixSettings.neutral(NAMES))


def test_omitted_optional_values_take_defaults() -> None:
    data = {
        "format": FORMAT_NAME,
        "version": SCHEMA_VERSION,
        "tracks": {"a.wav": {"gain_db": -3.5, "pan": 0.25}},
    }
    settings = from_json(data)
    expected = TRACK.defaults()
    expected[TRACK.index("gain_db")] = -3.5
    expected[TRACK.index("pan")] = 0.25
    assert np.array_equal(settings.track[0], expected)
    assert np.array_equal(settings.master, MASTER.defaults())
    assert np.array_equal(settings.fx, FX.defaults())
    assert settings.target_lufs == FINALIZE.spec("target_lufs").default
    assert settings.sample_rate is None and settings.mixer == "manual"


# --------------------------------------------------------------------------------------
# Validation errors
# --------------------------------------------------------------------------------------

def test_unknown_keys_are_named() -> None:
    data = valid_json()
    data["loudness"] = -14
    expect_error(data, "params.loudness", "unknown")

    data = valid_json()
    data["tracks"]["kick.wav"]["volume"] = 1.0
    expect_error(data, "tracks['kick.wav'].volume", "unknown")

    data = valid_json()
    data["tracks"]["bass.flac"]["eq"]["band_3"]["slope"] = 2.0
    expect_error(data, "tracks['bass.flac'].eq.band_3.slope", "unknown")

    data = valid_json()
    data["tracks"]["bass.flac"]["eq"]["band_7"] = {"gain_db": 1.0}
    expect_error(data, "eq.band_7.gain_db", "unknown")

    data = valid_json()
    data["master"]["eq"]["tilt_db"] = 1.0
    expect_error(data, "master.eq.tilt_db", "unknown")

    data = valid_json()
    data["fx"]["reverb"]["size"] = 0.5
    expect_error(data, "fx.reverb.size", "unknown")


def test_format_and_version() -> None:
    data = valid_json()
    data["format"] = "mixbox"
    expect_error(data, "params.format", FORMAT_NAME, "mixbox")

    data = valid_json()
    del data["format"]
    expect_error(data, "params.format")

    data = valid_json()
    data["version"] = 99  # a later automix's file
    expect_error(data, "params.version", "99")

    data = valid_json()
    data["version"] = str(SCHEMA_VERSION)
    expect_error(data, "params.version")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("tracks", "kick.wav", "gain_db"), 12.5),  # fader max is +12
        (("tracks", "kick.wav", "pan"), -1.01),
        (("tracks", "bass.flac", "eq", "band_1", "q"), 0.0),
        (("tracks", "bass.flac", "eq", "highpass", "freq_hz"), 5.0),
        (("tracks", "bass.flac", "compressor", "ratio"), 0.5),
        (("fx", "reverb", "decay_s"), 60.0),
        (("master", "gain_db"), -100.0),
        (("master", "target_lufs"), 0.0),
        (("master", "ceiling_dbtp"), 0.5),
    ],
)
def test_out_of_range_values_name_the_field_and_range(path: tuple[str, ...], value: float) -> None:
    data = valid_json()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    if path[0] == "tracks":
        field = f"tracks[{path[1]!r}]." + ".".join(path[2:])
        spec = TRACK.spec(".".join(path[2:]))
    else:
        field = ".".join(path)
        group = {"fx": FX, "master": FINALIZE if path[-1] in FINALIZE else MASTER}[path[0]]
        spec = group.spec(".".join(path[1:]))
    message = expect_error(data, field, "outside", f"{spec.minimum:g}", f"{spec.maximum:g}")
    assert "  " not in message


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_from_json_text(literal: str) -> None:
    data = valid_json()
    data["tracks"]["kick.wav"]["gain_db"] = -1.2345  # a marker to replace in the text
    text = json.dumps(data).replace('"gain_db": -1.2345', f'"gain_db": {literal}')
    data = json.loads(text)  # Python's parser accepts these non-standard literals
    expect_error(data, "tracks['kick.wav'].gain_db", "not finite")


@pytest.mark.parametrize(
    ("value", "shown"), [("3", '"3"'), (True, "true"), (False, "false"), (None, "null"), ([1.0], "[1.0]")]
)
def test_non_numbers_are_rejected(value, shown: str) -> None:
    data = valid_json()
    data["tracks"]["lead vocal.wav"]["eq"]["band_4"]["gain_db"] = value
    expect_error(data, "tracks['lead vocal.wav'].eq.band_4.gain_db", "expected a number", shown)


def test_missing_fader_and_pan() -> None:
    for required in ("gain_db", "pan"):
        data = valid_json()
        del data["tracks"]["bass.flac"][required]
        expect_error(data, f"tracks['bass.flac'].{required}", "missing")


def test_track_name_must_match_its_key() -> None:
    data = valid_json()
    data["tracks"]["kick.wav"]["name"] = "snare.wav"
    expect_error(data, "tracks['kick.wav'].name", "snare.wav", "does not match")


@pytest.mark.parametrize("tracks", [{}, [], None, "kick.wav"])
def test_tracks_must_be_a_non_empty_object(tracks) -> None:
    data = valid_json()
    data["tracks"] = tracks
    expect_error(data, "params.tracks", "non-empty")


def test_wrong_shapes_and_types() -> None:
    expect_error([valid_json()], "top level")

    data = valid_json()
    data["tracks"]["kick.wav"] = 0.0
    expect_error(data, "tracks['kick.wav']", "expected an object")

    data = valid_json()
    data["fx"] = [1, 2]
    expect_error(data, "fx", "expected an object")

    data = valid_json()
    data["tracks"]["kick.wav"]["role"] = 7
    expect_error(data, "tracks['kick.wav'].role", "string")

    data = valid_json()
    data["tracks"]["kick.wav"]["notes"] = "too loud"
    expect_error(data, "tracks['kick.wav'].notes", "list of strings")

    data = valid_json()
    data["mixer"] = 3
    expect_error(data, "params.mixer")

    for rate in (44100.0, 100, True, "48000"):
        data = valid_json()
        data["sample_rate"] = rate
        expect_error(data, "params.sample_rate")


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------

def test_load_params_reads_what_dumps_wrote(tmp_path: Path) -> None:
    settings = random_settings(7)
    path = tmp_path / "mix.json"
    path.write_text(dumps(settings), encoding="utf-8")
    back = load_params(path)
    assert np.array_equal(back.track, _rounded(settings.track))
    assert back.track_names == NAMES


def test_malformed_json_file(tmp_path: Path) -> None:
    path = tmp_path / "mix.json"
    text = dumps(MixSettings.neutral(NAMES))
    path.write_text(text.replace('"pan": 0.0,', '"pan": 0.0', 1), encoding="utf-8")  # drop a comma
    with pytest.raises(ParamsError) as info:
        load_params(path)
    message = str(info.value)
    assert str(path) in message and "not valid JSON" in message and "line" in message
    assert "\n" not in message

    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ParamsError, match="UTF-8"):
        load_params(binary)


def test_missing_params_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ParamsError, match="not found") as info:
        load_params(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, AutomixError)


def test_validation_does_not_modify_input() -> None:
    data = valid_json()
    before = copy.deepcopy(data)
    from_json(data)
    assert data == before


# --------------------------------------------------------------------------------------
# Edge cases that once slipped through settings.py
# --------------------------------------------------------------------------------------

def test_boolean_version_is_rejected() -> None:
    data = valid_json()
    data["version"] = True
    expect_error(data, "params.version")


def test_dumps_refuses_non_finite_settings() -> None:
    settings = MixSettings.neutral(NAMES)
    settings.track[0, TRACK.index("gain_db")] = float("nan")
    with pytest.raises((ParamsError, ValueError)):
        dumps(settings)
