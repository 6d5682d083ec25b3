"""What an audio file holds: its codec, stream facts and tags, read in-process from its headers
(headers.py, mutagen) where they say everything, else asked of ffprobe (ffprobe.py).

``probe(path)`` is the one way in; the scan calls it for every new or changed file.
"""

from pathlib import Path

from .ffprobe import ffmpeg_input, last_line, parse_probe, run_ffprobe, stderr_tail
from .headers import read_headers
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
]


def probe(path: Path) -> ProbeResult:
    """Facts about ``path`` (an absolute path to a regular file). Raises ``ProbeError`` with a reason."""
    return read_headers(path) or run_ffprobe(path)
