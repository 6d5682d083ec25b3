"""What an audio file holds: its codec, stream facts and tags, read in-process from its headers
(headers.py, mutagen) where they say everything, else asked of ffprobe (ffprobe.py).

``probe(path)`` is the one way in; the scan calls it for every new or changed file.
"""

import dataclasses
from pathlib import Path

from .ffprobe import ffmpeg_input, last_line, parse_probe, run_ffprobe, stderr_tail
from .headers import read_headers, wavpack_is_hybrid
from .result import LOSSLESS_CODECS, ProbeError, ProbeResult, ToolMissing, is_lossless_codec

__all__ = [
    "LOSSLESS_CODECS",
    "ProbeError",
    "ProbeResult",
    "ToolMissing",
    "ffmpeg_input",
    "is_lossless_codec",
    "last_line",
    "parse_probe",
    "probe",
    "read_headers",
    "run_ffprobe",
    "stderr_tail",
    "wavpack_is_hybrid",
]


def probe(path: Path) -> ProbeResult:
    """Facts about ``path`` (an absolute path to a regular file). Raises ``ProbeError`` with a reason."""
    result = read_headers(path) or run_ffprobe(path)
    if result.codec == "wavpack" and wavpack_is_hybrid(path):
        # Both probes say "wavpack"; a hybrid file is lossy without its .wvc, which ffmpeg never reads.
        result = dataclasses.replace(result, lossy_variant=True)
    return result
