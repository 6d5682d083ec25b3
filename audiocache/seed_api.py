"""The seed design's Python API, kept for code written against it: ``AudioCache``,
``CacheWorker``, ``schedule_mixtape_caching``, ``ProgressTracker``/``ProgressCallback``/
``get_progress_tracker``.

Thin wrappers with no logic of their own: each method is a call to the services, the
selectors, the queue or the event sender. Where the seed ran a thread pool per call, the
calls here queue a batch (so duplicates join, ``MAX_WORKERS`` holds and crashes lose nothing)
and, where the seed was synchronous, run a pool in this process until the batch is finished.
Methods take a ``Track`` or a path to its file (absolute, or relative to MUSIC_ROOT).
"""

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings

from mixtapes.files import source_path
from mixtapes.models import Mixtape, Track

from . import selectors, services
from .events import sending
from .events.payload import Counts, decode_stored, payload
from .models import CacheBatch, CacheBatchItem, CachedRendition, CacheTask
from .qualities import Variant
from .queue import batches
from .queue.pool import run_batch_inline
from .renditions import cache_file_name, rendition_path
from .services.precache import mixtape_track_ids
from .services.transcoding import fresh_rendition

logger = logging.getLogger(__name__)

# The seed's progress_callback(current, total); not to be confused with ProgressCallback.
ProgressFunction = Callable[[int, int], None]


def _track(track_or_path) -> Track:
    if isinstance(track_or_path, Track):
        return track_or_path
    path = Path(track_or_path)
    if path.is_absolute():
        path = Path(os.path.relpath(path, settings.MUSIC_ROOT))
    return Track.objects.get(path=path.as_posix())


class AudioCache:
    """Transcoding and look-ups for one cache folder (default ``AUDIO_CACHE_DIR``)."""

    def __init__(self, cache_dir: Path | None = None, logger: logging.Logger | None = None):
        self.cache_dir = Path(cache_dir or settings.AUDIO_CACHE_DIR)
        self.logger = logger or globals()["logger"]

    def get_cache_path(self, original, quality: str = "medium") -> Path:
        return self.cache_dir / cache_file_name(_track(original).path, quality)

    def should_transcode(self, original) -> bool:
        """Lossless sources get renditions; lossy ones (MP3, AAC, Ogg, Opus) are never re-encoded."""
        return _track(original).is_lossless

    def fresh_rendition(self, original, quality: str = "medium", source=None) -> CachedRendition | None:
        return fresh_rendition(_track(original), quality, source, self.cache_dir)

    def is_cached(self, original, quality: str = "medium") -> bool:
        return self.fresh_rendition(original, quality) is not None

    def get_cached_or_original(self, original, quality: str = "medium") -> Path:
        """The fresh rendition if there is one, else the original. Never transcodes."""
        rendition = self.fresh_rendition(original, quality) if self.should_transcode(original) else None
        return rendition_path(rendition, self.cache_dir) if rendition else source_path(_track(original))

    def transcode_file(self, original, quality: str = "medium", overwrite: bool = False, **options) -> Path:
        """Make (or re-make with ``overwrite``) the rendition now, in this process; returns its
        path, or the original's for a lossy source (``services.make_rendition``)."""
        track = _track(original)
        if not track.is_lossless:
            return source_path(track)
        return services.make_rendition(track, quality, overwrite=overwrite, cache_dir=self.cache_dir, **options)

    def precache_file(self, original, qualities: list[str] | None = None) -> dict[str, Path]:
        """Make every missing or stale rendition of one file now; quality -> path."""
        return {q: self.transcode_file(original, q) for q in (qualities or ["medium"])}

    def get_cache_size(self) -> int:
        """Total bytes of all renditions, from the database (no directory walk)."""
        return selectors.cache_size()

    def clear_cache(self, older_than_days: int | None = None) -> int:
        """Delete renditions (file and row), all or those not played for ``older_than_days``;
        returns how many. Only files inside the cache folder are touched."""
        if older_than_days is None:
            report = services.purge(CachedRendition.objects.all(), cache_dir=self.cache_dir)
        else:
            report = services.expire(older_than_days, cache_dir=self.cache_dir)
        return report.renditions


def wait_for_batch(batch: CacheBatch, *, poll_interval: float = 0.5, on_update=None, timeout=None) -> Counts:
    """Wait until ``batch`` is finished, whatever process does the work (``queue.batches.follow``)."""
    return batches.follow(batch, on_update, poll_interval=poll_interval, timeout=timeout)


def _progress_adapter(progress_callback: ProgressFunction | None):
    return None if progress_callback is None else lambda counts: progress_callback(counts.done, counts.total)


def _outcomes(batch: CacheBatch) -> dict[tuple[int, str], bool]:
    """(track id, variant written out: ``medium``, ``opus:low``) -> True when a fresh rendition
    exists or none is needed."""
    results = {}
    for item in batch.items.select_related("task"):
        if item.task is not None:
            ok = item.task.status in (CacheTask.Status.DONE, CacheTask.Status.SKIPPED)
        else:
            ok = item.outcome == CacheBatchItem.Outcome.SKIPPED
        results[(item.track_id, str(item.variant))] = ok
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
        batch = services.precache_tracks([track], qualities, label=f"Track {track}")
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
        batch = services.precache_tracks(tracks, qualities, label=f"{len(tracks)} tracks")
        run_batch_inline(batch, workers, _progress_adapter(progress_callback))
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
            if CachedRendition.objects.filter(track=t, **Variant.of(q).lookup).exists()
            and not self.audio_cache.is_cached(t, q)
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
    mixtape = mixtape_tracks if isinstance(mixtape_tracks, Mixtape) else None
    if mixtape is not None:
        tracks, label = mixtape_track_ids(mixtape), f"Mixtape “{mixtape.title}”"
    else:
        tracks = [_track(entry["path"]) for entry in mixtape_tracks]
        label = f"{len(tracks)} tracks"
    batch = services.precache_tracks(tracks, qualities, label=label, user=user, mixtape=mixtape)
    if not async_mode:
        run_batch_inline(batch, CacheWorker(audio_cache).max_workers, _progress_adapter(progress_callback))
    counts = batches.announce_if_finished(batch)
    return {"batch_id": str(batch.pk), "total": counts.total, "summary": str(counts), "finished": counts.finished}


class ProgressTracker:
    """The seed's tracker: ``create_task``, ``emit``, ``listen``, ``cleanup_task``. ``task_id``
    is a batch id; ``emit`` is safe from any thread or process (``events.sending``)."""

    def __init__(self, logger_: logging.Logger | None = None):
        self.logger = logger_ or logger

    def create_task(self, task_id, total: int, counts: Counts | None = None) -> None:
        """Announce a new batch; ``counts`` says how many renditions needed no work."""
        sending.BatchEvents(task_id).queued(counts or Counts(total=total))

    def emit(self, task_id, step: str, status: str, message: str, counts: Counts, *, force: bool = False, **extra):
        """Send one event; an ``in_progress`` tick within MIN_TICK_INTERVAL of the last is dropped
        unless ``force``. Returns the payload sent, or None when throttled or undeliverable."""
        if status == "in_progress" and not force and not sending.tick_due(task_id):
            return None
        data = payload(task_id, step, status, message, counts, **extra)
        return data if sending.send(task_id, data) else None

    def listen(self, task_id, last_id: int = 0):
        """Yield the stored events of a batch after ``last_id`` as (id, payload)."""
        from django_eventstream.models import Event

        from .events.payload import channel_for

        events = Event.objects.filter(channel=channel_for(task_id), eid__gt=last_id).order_by("eid")
        for event in events.iterator():
            yield event.eid, decode_stored(event.data)

    def cleanup_task(self, task_id) -> None:
        sending.forget(task_id)


_tracker = ProgressTracker()


def get_progress_tracker(logger_: logging.Logger | None = None) -> ProgressTracker:
    """The process-wide tracker (the seed's ``get_progress_tracker``)."""
    return _tracker


class ProgressCallback(sending.BatchEvents):
    """The seed's per-batch callbacks: ``track_started``, ``track_cached``, ``track_skipped``,
    ``track_failed``, then ``finished`` exactly once (``events.sending.BatchEvents``)."""

    def __init__(self, batch_id, tracker: ProgressTracker | None = None):
        super().__init__(batch_id)
