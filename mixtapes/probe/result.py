"""What a probe reports about an audio file, and which codecs count as lossless.

Whether a track is lossless is decided from the codec, never from the file name: an ``.m4a``
may hold ALAC (lossless) or AAC (lossy), a ``.wav`` may hold MP3 data.
"""

import math
from dataclasses import dataclass, field

from mixtapes.tags import Tags

# Codecs whose renditions are worth making: decoding them loses nothing, and they are big.
LOSSLESS_CODECS = frozenset({"flac", "alac", "ape", "wavpack", "tta", "tak", "mlp", "truehd", "wmalossless"})


def is_lossless_codec(codec: str) -> bool:
    # Every raw PCM flavour (pcm_s16le, pcm_s24be, pcm_f32le...) is lossless; WAV and AIFF hold these.
    return codec in LOSSLESS_CODECS or codec.startswith("pcm_")


class ProbeError(Exception):
    """The file could not be probed; ``str()`` is a short reason fit for a report."""


class ToolMissing(ProbeError):
    """ffprobe/ffmpeg is not installed or not where the settings say."""


@dataclass(frozen=True)
class ProbeResult:
    """Stream facts in ffprobe's terms (its codec and format names), whoever read them."""

    codec: str
    container: str
    duration: float | None
    sample_rate: int | None
    bit_depth: int | None
    channels: int | None
    bitrate: int | None
    has_cover: bool
    # ffprobe's container and stream tags, lower-cased: the fallback for what mutagen cannot read.
    tags: dict[str, str] = field(default_factory=dict)
    # The tags, when the reader had the file open with mutagen anyway (saves opening it again).
    read_tags: Tags | None = None
    lossy_variant: bool = False  # a lossless codec used lossily (a hybrid WavPack without its .wvc)

    @property
    def is_lossless(self) -> bool:
        return is_lossless_codec(self.codec) and not self.lossy_variant


# Values past a 32-bit column come from damaged headers; report them as unknown rather than fail.
INT_LIMIT = 2**31 - 1


def positive_int(value) -> int | None:
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 < number <= INT_LIMIT else None


def positive_float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and 0 < number < 1e9 else None
