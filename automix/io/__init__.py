"""Audio input/output: stems folders in, mixes and params files out (atomically).

Import from here; each idea has its own module, each importing only those listed before it:

* :mod:`~automix.io.paths`: where a path leads, names too long for the file system;
* :mod:`~automix.io.scan`: which files of a stems folder are stems;
* :mod:`~automix.io.wav`: the compiled (numba) decoder for plain PCM/float WAV data;
* :mod:`~automix.io.decode`: one file decoded block by block, damaged samples silenced;
* :mod:`~automix.io.resampling`: sample-rate conversion, the rate a session uses;
* :mod:`~automix.io.scratch`: float32 audio in a temporary file;
* :mod:`~automix.io.stems`: a folder of stems loaded in memory (:class:`Stem`, :func:`load_stems`);
* :mod:`~automix.io.stream`: the same stems streamed from disk (:class:`StemFile`, :func:`open_stems`);
* :mod:`~automix.io.write`: outputs checked up front and written atomically.
"""

from automix.io.decode import (
    DAMAGED_SAMPLE_LIMIT,
    DECODE_BLOCK_FRAMES,
    MAX_DAMAGED_FRACTION,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    Damage,
    load_audio,
)
from automix.io.paths import NAME_MAX_FALLBACK, name_too_long, short_name
from automix.io.resampling import (
    RESAMPLER_KAISER_BETA,
    STREAM_BLOCK_SAMPLES,
    choose_sample_rate,
    resample,
    resample_blocks,
)
from automix.io.scan import AUDIO_EXTENSIONS, is_audio_file, scan_folder
from automix.io.scratch import ScratchAudio
from automix.io.stems import LOAD_WORKERS, SILENCE_PEAK_DBFS, Log, Stem, load_stems, peak_dbfs
from automix.io.stream import StemFile, open_stems
from automix.io.wav import _find_wav_data as _find_wav_data  # tests check the WAV layout finder
from automix.io.write import (
    BIT_DEPTHS,
    QUANTISATION_STEPS,
    WRITE_BLOCK_SAMPLES,
    AudioWriter,
    check_bit_depth,
    check_output,
    output_format,
    write_atomic,
    write_audio,
    write_text_atomic,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "BIT_DEPTHS",
    "DAMAGED_SAMPLE_LIMIT",
    "DECODE_BLOCK_FRAMES",
    "LOAD_WORKERS",
    "MAX_DAMAGED_FRACTION",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "NAME_MAX_FALLBACK",
    "QUANTISATION_STEPS",
    "RESAMPLER_KAISER_BETA",
    "SILENCE_PEAK_DBFS",
    "STREAM_BLOCK_SAMPLES",
    "WRITE_BLOCK_SAMPLES",
    "AudioWriter",
    "Damage",
    "Log",
    "ScratchAudio",
    "Stem",
    "StemFile",
    "check_bit_depth",
    "check_output",
    "choose_sample_rate",
    "is_audio_file",
    "load_audio",
    "load_stems",
    "name_too_long",
    "open_stems",
    "output_format",
    "peak_dbfs",
    "resample",
    "resample_blocks",
    "scan_folder",
    "short_name",
    "write_atomic",
    "write_audio",
    "write_text_atomic",
]
