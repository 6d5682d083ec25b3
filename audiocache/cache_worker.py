"""The seed design's ``CacheWorker`` API, as thin calls over the queue.

The seed ran a thread pool per call; here every call queues a batch (so duplicates join,
``MAX_WORKERS`` holds and crashes lose nothing) and, where the seed was synchronous, runs a
pool in this process until the batch is finished.
"""

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings

from mixtapes.models import Mixtape, Track

from . import queue
from .cache import AudioCache, _track
from .models import CacheBatch, CacheBatchItem, CachedRendition, CacheTask
from .progress import Counts
from .worker import WorkerPool

logger = logging.getLogger(__name__)

# The seed's progress_callback(current, total); not to be confused with progress.ProgressCallback.
ProgressFunction = Callable[[int, int], None]


def wait_for_batch(
    batch: CacheBatch,
    *,
    poll_interval: float = 0.5,
    on_update: Callable[[Counts], None] | None = None,
    timeout: float | None = None,
) -> Counts:
    """Poll the database until ``batch`` is finished; works whatever process does the work."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        summary = queue.refresh_batch(batch)
        if on_update and summary != last:
            on_update(summary)
            last = summary
        if summary.finished:
            return summary
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch.pk} not finished after {timeout:g} s ({summary})")
        time.sleep(poll_interval)


def run_batch_inline(batch: CacheBatch, workers: int, on_update: Callable[[Counts], None] | None = None) -> Counts:
    """Run a pool in this process until ``batch`` is finished (it may help with other queued work too)."""
    pool = WorkerPool(workers, name=f"inline-{batch.pk.hex[:8]}").start()
    try:
        return wait_for_batch(batch, poll_interval=0.05, on_update=on_update)
    finally:
        pool.stop()
        pool.join(timeout=30)


def _callback_adapter(progress_callback: ProgressFunction | None):
    if progress_callback is None:
        return None
    return lambda summary: progress_callback(summary.done, summary.total)


def _outcomes(batch: CacheBatch) -> dict[tuple[int, str], bool]:
    """(track id, quality) -> True when a fresh rendition exists or none is needed."""
    results = {}
    for item in batch.items.select_related("task"):
        if item.task is not None:
            ok = item.task.status in (CacheTask.Status.DONE, CacheTask.Status.SKIPPED)
        else:
            ok = item.outcome == CacheBatchItem.Outcome.SKIPPED
        results[(item.track_id, item.quality)] = ok
    return results


class CacheWorker:
    """Batch caching of files and mixtapes (the seed's API)."""

    def __init__(self, audio_cache: AudioCache | None = None, logger: logging.Logger | None = None, max_workers=None):
        self.audio_cache = audio_cache or AudioCache()
        self.logger = logger or globals()["logger"]
        self.max_workers = max_workers or max(1, settings.AUDIO_CACHE_MAX_WORKERS)

    def cache_single_file(self, file_path, qualities: list[str] | None = None) -> dict[str, bool]:
        track = _track(file_path)
        qualities = qualities or ["medium"]
        batch = queue.create_batch([track], qualities, label=f"Track {track}")
        run_batch_inline(batch, 1)
        outcomes = _outcomes(batch)
        return {q: outcomes[(track.pk, q)] for q in qualities}

    def cache_mixtape(self, track_paths, qualities=None, progress_callback: ProgressFunction | None = None) -> dict:
        return self._cache_many(track_paths, qualities, progress_callback, workers=1)

    def cache_mixtape_async(
        self, track_paths, qualities=None, progress_callback: ProgressFunction | None = None
    ) -> dict:
        return self._cache_many(track_paths, qualities, progress_callback, workers=self.max_workers)

    def _cache_many(self, track_paths, qualities, progress_callback, *, workers: int) -> dict[str, dict]:
        tracks = [_track(p) for p in track_paths]
        qualities = qualities or ["medium"]
        batch = queue.create_batch(tracks, qualities, label=f"{len(tracks)} tracks")
        run_batch_inline(batch, workers, _callback_adapter(progress_callback))
        outcomes = _outcomes(batch)
        return {t.path: {q: outcomes[(t.pk, q)] for q in qualities} for t in tracks}

    def verify_mixtape_cache(self, track_paths, quality: str = "medium") -> dict[str, bool]:
        return {(t := _track(p)).path: self.audio_cache.is_cached(t, quality) for p in track_paths}

    def regenerate_outdated_cache(self, track_paths, qualities=None) -> dict[str, dict]:
        """Re-make renditions that exist but are stale (the source changed, or the encoder settings)."""
        qualities = qualities or ["medium"]
        tracks = [_track(p) for p in track_paths]
        outdated = [
            t
            for t in tracks
            for q in qualities
            if CachedRendition.objects.filter(track=t, quality=q).exists() and not self.audio_cache.is_cached(t, q)
        ]
        if not outdated:
            return {t.path: {} for t in tracks}
        return self._cache_many(list(dict.fromkeys(outdated)), qualities, None, workers=self.max_workers)


def schedule_mixtape_caching(
    mixtape_tracks: Iterable[dict] | Mixtape,
    music_root: Path | None = None,
    audio_cache: AudioCache | None = None,
    logger: logging.Logger | None = None,
    qualities: list[str] | None = None,
    async_mode: bool = True,
    progress_callback: ProgressFunction | None = None,
    user=None,
) -> dict:
    """Queue a mixtape's tracks. ``async_mode`` returns at once (the pool does the work and
    the batch reports progress); otherwise the work runs here before returning."""
    qualities = qualities or list(settings.AUDIO_CACHE_PRECACHE_QUALITIES)
    mixtape = mixtape_tracks if isinstance(mixtape_tracks, Mixtape) else None
    if mixtape is not None:
        tracks = list(Track.objects.filter(mixtape_entries__mixtape=mixtape).distinct())
        label = f"Mixtape “{mixtape.title}”"
    else:
        tracks = [_track(entry["path"]) for entry in mixtape_tracks]
        label = f"{len(tracks)} tracks"
    batch = queue.create_batch(tracks, qualities, label=label, user=user, mixtape=mixtape)
    if not async_mode:
        workers = (CacheWorker(audio_cache)).max_workers
        run_batch_inline(batch, workers, _callback_adapter(progress_callback))
    summary = queue.refresh_batch(batch)
    return {"batch_id": str(batch.pk), "total": summary.total, "summary": str(summary), "finished": summary.finished}
