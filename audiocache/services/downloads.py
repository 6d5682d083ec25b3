"""Which file of each track goes into a download of a mixtape (a share link's zip).

For an MP3 quality: the fresh rendition; a lossless track without one is queued at play
priority (joining a task already queued) and the download waits until it is made; a lossy
source, or one whose transcode failed (quarantined), goes in as its original. For
``original``: the originals. A track whose file is gone is left out and counted.

Nothing is opened here: the plan names files, and the caller streams them.
"""

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from mixtapes.files import SourceUnavailable, source_state
from mixtapes.models import Track

from ..models import CachedRendition, CacheTask
from ..qualities import DEFAULT_FORMAT, ORIGINAL, Variant
from ..queue import tasks
from ..renditions import rendition_path


@dataclass(frozen=True)
class DownloadFile:
    track_id: int
    path: Path
    is_rendition: bool  # made by the cache (MP3); otherwise the library's own file, as it is


@dataclass(frozen=True)
class DownloadPlan:
    files: list[DownloadFile] = field(default_factory=list)  # in the order asked, when ready
    preparing: int = 0  # renditions still being made: the download waits until none is left
    missing: int = 0  # tracks whose file is gone from the library

    @property
    def ready(self) -> bool:
        return self.preparing == 0


def plan_download(track_ids: list[int], quality: str) -> DownloadPlan:
    """The files of ``track_ids`` (in that order, each once) at ``quality`` ("original" or a
    quality name), queueing the renditions that are not made yet."""
    track_ids = list(dict.fromkeys(track_ids))
    tracks = Track.objects.in_bulk(track_ids)
    use_cache = settings.AUDIO_CACHE_ENABLED and quality != ORIGINAL
    variant = Variant(DEFAULT_FORMAT, quality) if use_cache else None  # MP3s: every player plays them
    queued = tasks.enqueue(track_ids, [variant], priority=CacheTask.PRIORITY_PLAY) if use_cache else {}
    made = [track_id for track_id in track_ids if queued.get((track_id, variant)) == tasks.ALREADY_CACHED]
    renditions = (
        {r.track_id: r for r in CachedRendition.objects.filter(track_id__in=made, **variant.lookup)} if variant else {}
    )

    files, preparing, missing = [], 0, 0
    for track_id in track_ids:
        outcome = queued.get((track_id, variant))
        if isinstance(outcome, CacheTask):
            preparing += 1
            continue
        rendition = renditions.get(track_id)
        path = rendition_path(rendition) if rendition is not None else None
        if path is not None and path.is_file():
            files.append(DownloadFile(track_id, path, is_rendition=True))
            continue
        track = tracks.get(track_id)
        try:
            original = source_state(track).path if track is not None and track.missing_since is None else None
        except SourceUnavailable:
            original = None
        if original is None:
            missing += 1
        else:
            files.append(DownloadFile(track_id, original, is_rendition=False))
    return DownloadPlan(files if preparing == 0 else [], preparing, missing)
