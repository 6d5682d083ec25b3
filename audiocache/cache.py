"""``AudioCache``: the seed design's API over ``CachedRendition`` rows and the cache folder.

A rendition is *fresh* when its file exists and it was made from the source as it is now
(same size and mtime) with today's encoder profile. Only fresh renditions are ever
returned; everything else falls back to the original.
"""

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Q, Sum
from django.utils import timezone

from mixtapes.models import Track

from . import mp3
from .models import CachedRendition
from .qualities import BITRATES, QUALITY_NAMES
from .transcoder import ENCODER_PROFILE, SourceFacts, TranscodeError, output_sample_rate, transcode

logger = logging.getLogger(__name__)


class SourceUnavailable(Exception):
    """The track's file is missing, unreadable or outside MUSIC_ROOT."""


class SourceChanged(SourceUnavailable):
    """The file changed during the transcode: worth another attempt, unlike a missing file."""


@dataclass(frozen=True)
class SourceState:
    path: Path
    size: int
    mtime_ns: int


def cache_file_name(relative_path: str, quality: str) -> str:
    """``<hash>_<quality>_<bitrate>k.mp3``; the hash is over the path relative to MUSIC_ROOT,
    so moving the whole library to another root keeps the cache."""
    digest = hashlib.sha256(relative_path.encode("utf-8")).hexdigest()[:32]
    return f"{digest}_{quality}_{BITRATES[quality]}k.mp3"


def source_path(track: Track) -> Path:
    """The track's file, resolved; raises ``SourceUnavailable`` if it leaves MUSIC_ROOT."""
    root = os.path.realpath(settings.MUSIC_ROOT)
    resolved = os.path.realpath(os.path.join(root, track.path))
    if os.path.commonpath([root, resolved]) != root or resolved == root:
        raise SourceUnavailable(f"track {track.pk} points outside MUSIC_ROOT")
    return Path(resolved)


def source_state(track: Track) -> SourceState:
    path = source_path(track)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SourceUnavailable("source file not found (moved or deleted since the last scan?)") from None
    except OSError as exc:
        raise SourceUnavailable(f"source file cannot be read: {exc.strerror}") from None
    if not path.is_file():
        raise SourceUnavailable("source is not a regular file")
    return SourceState(path, st.st_size, st.st_mtime_ns)


def rendition_path(rendition: CachedRendition, cache_dir: Path | None = None) -> Path | None:
    """The rendition's file, or None when the stored name could lead out of the cache folder
    (not a plain file name, or a link elsewhere): a damaged or hostile row is never followed."""
    cache_dir = os.path.realpath(cache_dir or settings.AUDIO_CACHE_DIR)
    name = rendition.file_name
    if not name or name in (".", "..") or name != os.path.basename(name):
        return None
    path = os.path.join(cache_dir, name)
    if os.path.dirname(os.path.realpath(path)) != cache_dir:
        return None
    return Path(path)


def is_fresh(rendition: CachedRendition, source: SourceState, cache_dir: Path) -> bool:
    if (
        rendition.source_size != source.size
        or rendition.source_mtime_ns != source.mtime_ns
        or rendition.encoder_profile != ENCODER_PROFILE
    ):
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


def _check_planned_size(path: Path, size: int, frames: int, track: Track) -> None:
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


def _track(track_or_path) -> Track:
    if isinstance(track_or_path, Track):
        return track_or_path
    path = Path(track_or_path)
    if path.is_absolute():
        path = Path(os.path.relpath(path, settings.MUSIC_ROOT))
    return Track.objects.get(path=path.as_posix())


class AudioCache:
    """Transcoding and look-ups for one cache folder (default ``AUDIO_CACHE_DIR``).

    Methods take a ``Track`` or a path to its file (absolute, or relative to MUSIC_ROOT).
    """

    def __init__(self, cache_dir: Path | None = None, logger: logging.Logger | None = None):
        self.cache_dir = Path(cache_dir or settings.AUDIO_CACHE_DIR)
        self.logger = logger or globals()["logger"]

    def get_cache_path(self, original, quality: str = "medium") -> Path:
        track = _track(original)
        return self.cache_dir / cache_file_name(track.path, quality)

    def should_transcode(self, original) -> bool:
        """Lossless sources get renditions; lossy ones (MP3, AAC, Ogg, Opus) are never re-encoded."""
        return _track(original).is_lossless

    def fresh_rendition(
        self, original, quality: str = "medium", source: SourceState | None = None
    ) -> CachedRendition | None:
        """The rendition at ``quality`` if it is fresh; ``source`` spares a second stat when known."""
        track = _track(original)
        rendition = CachedRendition.objects.filter(track=track, quality=quality).first()
        if rendition is None:
            return None
        try:
            source = source or source_state(track)
        except SourceUnavailable:
            return None
        return rendition if is_fresh(rendition, source, self.cache_dir) else None

    def is_cached(self, original, quality: str = "medium") -> bool:
        return self.fresh_rendition(original, quality) is not None

    def get_cached_or_original(self, original, quality: str = "medium") -> Path:
        """The fresh rendition if there is one, else the original. Never transcodes."""
        track = _track(original)
        if track.is_lossless:
            rendition = self.fresh_rendition(track, quality)
            if rendition is not None:
                return rendition_path(rendition, self.cache_dir)
        return source_path(track)

    def transcode_file(
        self,
        original,
        quality: str = "medium",
        overwrite: bool = False,
        still_allowed: Callable[[], bool] | None = None,
        on_output: Callable[[Path, int | None], None] | None = None,
        **transcode_options,
    ) -> Path:
        """Make (or re-make with ``overwrite``) the rendition now, in this process.

        Returns the rendition's path, or the original's for a lossy source. Raises
        ``SourceUnavailable`` or ``TranscodeError``; a failure never removes a good rendition.
        ``still_allowed`` (a worker's "do I still hold this task?") is asked just before the
        new file would replace the old one. ``on_output(temporary path, planned frames or None)``
        is called before ffmpeg starts writing (progressive streaming follows that file).
        """
        if quality not in QUALITY_NAMES:
            raise ValueError(f"unknown quality {quality!r}")
        track = _track(original)
        if not track.is_lossless:
            return source_path(track)
        if not overwrite:
            rendition = self.fresh_rendition(track, quality)
            if rendition is not None:
                return rendition_path(rendition, self.cache_dir)
        before = source_state(track)
        destination = self.get_cache_path(track, quality)
        # Planned only for listeners who may follow the file (progressive streaming).
        frames = planned_frames(track, before) if settings.AUDIO_CACHE_PROGRESSIVE else None
        facts = SourceFacts(track.sample_rate, track.channels, track.has_cover, track.duration)

        def check_before_publish() -> None:
            # Checked before the rename, so a stale result never replaces a newer rendition.
            if source_state(track) != before:
                raise SourceChanged("the source file changed while it was being transcoded")
            if still_allowed is not None and not still_allowed():
                raise TranscodeError("stopped: the task was taken over by another worker")

        size = transcode(
            before.path,
            destination,
            quality,
            facts,
            before_publish=check_before_publish,
            on_output=None if on_output is None else lambda temp: on_output(temp, frames),
            **transcode_options,
        )
        CachedRendition.objects.update_or_create(
            track=track,
            quality=quality,
            defaults={
                "bitrate": BITRATES[quality],
                "file_name": destination.name,
                "size": size,
                "source_size": before.size,
                "source_mtime_ns": before.mtime_ns,
                "encoder_profile": ENCODER_PROFILE,
                "created_at": timezone.now(),
            },
        )
        self.logger.info("rendition track=%s quality=%s bytes=%s", track.pk, quality, size)
        if frames is not None:
            _check_planned_size(destination, size, frames, track)
        return destination

    def precache_file(self, original, qualities: list[str] | None = None) -> dict[str, Path]:
        """Make every missing or stale rendition of one file now; quality -> path."""
        return {q: self.transcode_file(original, q) for q in (qualities or ["medium"])}

    def get_cache_size(self) -> int:
        """Total bytes of all renditions, from the database (no directory walk)."""
        return CachedRendition.objects.aggregate(total=Sum("size"))["total"] or 0

    def clear_cache(self, older_than_days: int | None = None) -> int:
        """Delete renditions (file and row), all or those not played for ``older_than_days``.

        Returns the number deleted. Only files inside the cache folder are touched.
        """
        renditions = CachedRendition.objects.all()
        if older_than_days is not None:
            cutoff = timezone.now() - timedelta(days=older_than_days)
            renditions = renditions.filter(
                Q(last_accessed_at__lt=cutoff) | Q(last_accessed_at__isnull=True, created_at__lt=cutoff)
            )
        deleted = 0
        for rendition in renditions.iterator(chunk_size=500):
            delete_rendition(rendition, self.cache_dir)
            deleted += 1
        return deleted


def delete_rendition(rendition: CachedRendition, cache_dir: Path | None = None) -> None:
    """Remove the row, then the file (a reader that still has it open keeps reading: POSIX)."""
    path = rendition_path(rendition, cache_dir)
    rendition.delete()
    if path is not None:
        path.unlink(missing_ok=True)
