"""What a rendition is on disk: its file name, its path in the cache folder, whether it may
be served (fresh), and how many audio frames a transcode of a track will have.

A rendition is *fresh* when its file exists and it was made from the source as it is now
(same size and mtime) with today's encoder profile. Only fresh renditions are ever served;
everything else falls back to the original.
"""

import hashlib
import logging
import os
from pathlib import Path

from django.conf import settings

from config.paths import resolve_inside
from mixtapes.files import SourceState
from mixtapes.models import Track

from .models import CachedRendition
from .qualities import Variant
from .transcode import mp3
from .transcode.ffmpeg import ENCODER_PROFILES, output_sample_rate

logger = logging.getLogger(__name__)


def cache_file_name(relative_path: str, variant: Variant | str) -> str:
    """``<hash>_<format>_<quality>_<bitrate>k.<ext>`` (``…_opus_medium_128k.opus``); the hash is
    over the path relative to MUSIC_ROOT, so moving the whole library to another root keeps the
    cache. MP3s made before Opus and AAC keep their ``<hash>_<quality>_<bitrate>k.mp3`` names
    (their rows hold them) until they are made again."""
    variant = Variant.of(variant)
    digest = hashlib.sha256(relative_path.encode("utf-8")).hexdigest()[:32]
    return f"{digest}_{variant.format}_{variant.quality}_{variant.bitrate}k.{variant.spec.extension}"


def is_plain_name(name: str) -> bool:
    """A bare file name: the only kind of stored name ever joined to the cache folder."""
    return bool(name) and name not in (".", "..") and name == os.path.basename(name) and "\0" not in name


def rendition_path(rendition: CachedRendition, cache_dir: Path | None = None) -> Path | None:
    """The rendition's file, or None when the stored name could lead out of the cache folder
    (not a plain file name, or a link elsewhere): a damaged or hostile row is never followed."""
    cache_dir = os.path.realpath(cache_dir or settings.AUDIO_CACHE_DIR)
    name = rendition.file_name
    if not is_plain_name(name):
        return None
    resolved = resolve_inside(cache_dir, name)
    if resolved is None or os.path.dirname(resolved) != cache_dir:
        return None
    return Path(cache_dir) / name


def made_from(rendition: CachedRendition, source: SourceState) -> bool:
    """The row says the rendition was made from the source as it is now, with today's settings
    for its format (the file itself is not looked at)."""
    return (rendition.source_size, rendition.source_mtime_ns) == (
        source.size,
        source.mtime_ns,
    ) and rendition.encoder_profile == ENCODER_PROFILES.get(rendition.format)


def is_fresh(rendition: CachedRendition, source: SourceState, cache_dir: Path | None = None) -> bool:
    if not made_from(rendition, source):
        return False
    path = rendition_path(rendition, cache_dir)
    return path is not None and path.is_file()


def planned_frames(track: Track, source: SourceState) -> int | None:
    """The exact number of audio frames the rendition will have, or None when the source's
    length is not known exactly: no duration in the scan (a FLAC that does not state its
    length), or a file changed since the scan (its length may have changed too)."""
    if not track.duration or not track.sample_rate:
        return None
    if (track.file_size, track.file_mtime_ns) != (source.size, source.mtime_ns):
        return None
    rate = output_sample_rate(track.sample_rate) or track.sample_rate
    if rate not in mp3.SAMPLE_RATES:
        return None  # another rate (37.8 kHz...) is resampled by ffmpeg to one of its choosing
    # ffprobe states durations to the microsecond: exact to the sample at any rate up to 500 kHz.
    samples = round(track.duration * rate)
    return mp3.audio_frames(samples, mp3.samples_per_frame_at(rate))


def check_planned_size(path: Path, size: int, frames: int, track: Track) -> None:
    """Listeners who followed the transcode were told a size planned from the scanned length.
    The rendition is right whatever its length (it is what the audio decodes to); a length other
    than planned means the scan's duration does not match the audio, which a rescan fixes."""
    try:
        with open(path, "rb") as fh:
            layout = mp3.read_layout_of(fh.fileno())
        expected = mp3.final_size(layout, frames)
    except (OSError, mp3.NotYet, mp3.NotMP3):
        return  # evicted already, or not ours to judge
    if size != expected:
        logger.warning(
            "track %s: the rendition has %d bytes where %d were planned from the scanned duration (%s s); "
            "listeners who followed its transcode got a response of the wrong length. Rescan the file.",
            track.pk, size, expected, track.duration,
        )  # fmt: skip
