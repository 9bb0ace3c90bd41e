"""Audio input/output: stems folders in, mixes and params files out (atomically)."""

from automix.io.audio import (
    AUDIO_EXTENSIONS,
    BIT_DEPTHS,
    Stem,
    check_output,
    load_audio,
    load_stems,
    resample,
    scan_folder,
    write_audio,
    write_text_atomic,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "BIT_DEPTHS",
    "Stem",
    "check_output",
    "load_audio",
    "load_stems",
    "resample",
    "scan_folder",
    "write_audio",
    "write_text_atomic",
]
