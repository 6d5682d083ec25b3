"""Queueing renditions ahead of plays: a saved mixtape's tracks, or any tracks, as one batch.

The editor's save, the Subsonic API, ``manage.py precache``, the admin's precache actions and
the seed's ``schedule_mixtape_caching`` all come here, so a mixtape's tracks are gathered by
one query and a batch is made one way. Work runs in whatever pool takes the tasks (the web
process's, ``cacheworker`` processes, or one started for the occasion: ``queue.pool.run_batch_inline``).
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError

from mixtapes.models import Mixtape, MixtapeTrack

from ..models import CacheBatch, CacheTask
from ..queue import batches

logger = logging.getLogger(__name__)


def mixtape_track_ids(mixtapes: Iterable[Mixtape] | Mixtape) -> list[int]:
    """The tracks of one or more mixtapes, each once, in mixtape then track-list order."""
    if isinstance(mixtapes, Mixtape):
        mixtapes = [mixtapes]
    entries = MixtapeTrack.objects.filter(mixtape__in=list(mixtapes)).order_by("mixtape_id", "position")
    return list(dict.fromkeys(entries.values_list("track_id", flat=True)))


def precache_tracks(
    tracks,
    qualities: Iterable[str] | None = None,
    *,
    label: str,
    user=None,
    mixtape: Mixtape | None = None,
    force: bool = False,
    priority: int = CacheTask.PRIORITY_PRECACHE,
) -> CacheBatch:
    """Queue ``tracks`` (rows or ids) at ``qualities`` (default AUDIO_CACHE_PRECACHE_QUALITIES)
    as one batch; already fresh renditions, lossy and missing sources and quarantined failures
    are settled at once (``force`` makes them again)."""
    qualities = list(qualities or settings.AUDIO_CACHE_PRECACHE_QUALITIES)
    return batches.create_batch(
        tracks, qualities, label=label, user=user, mixtape=mixtape, force=force, priority=priority
    )


@dataclass(frozen=True)
class PrecacheResult:
    batch: CacheBatch | None = None  # the batch, while it has work left to do
    note: str = ""  # what to tell the user about caching, if anything


def precache_mixtape(mixtape: Mixtape, user) -> PrecacheResult:
    """After a mixtape is saved: queue its tracks when ``AUDIO_CACHE_PRECACHE_ON_UPLOAD`` says
    so. The mixtape is already committed: no queue trouble can lose it."""
    if not (settings.AUDIO_CACHE_ENABLED and settings.AUDIO_CACHE_PRECACHE_ON_UPLOAD):
        return PrecacheResult()
    track_ids = mixtape_track_ids(mixtape)
    if not track_ids:
        return PrecacheResult()
    try:
        batch = precache_tracks(track_ids, label=f"Mixtape “{mixtape.title}”", user=user, mixtape=mixtape)
    except DatabaseError:
        logger.exception("could not queue the precache batch of mixtape %s", mixtape.pk)
        return PrecacheResult(note="Saved, but caching could not be queued; tracks will be transcoded when played.")
    counts = batches.batch_counts(batch)
    if counts.finished:
        return PrecacheResult(note=f"Every track is ready to stream ({counts}).")
    return PrecacheResult(batch=batch)


def requeue_changed_tracks(sender=None, *, track_ids: list[int], **kwargs) -> CacheBatch | None:
    """Tracks whose file changed (``mixtapes.signals.tracks_changed``): those on a mixtape are
    queued again at the precache qualities, as one batch, so a listener gets the new audio
    cached. Their old renditions are stale already (a play compares the file with the one the
    rendition was made from), and tracks on no mixtape wait for their next play."""
    if not (settings.AUDIO_CACHE_ENABLED and settings.AUDIO_CACHE_PRECACHE_ON_UPLOAD):
        return None
    on_mixtapes: set[int] = set()
    for start in range(0, len(track_ids), 1000):  # a retagged library can send 100,000 ids
        chunk = track_ids[start : start + 1000]
        on_mixtapes.update(MixtapeTrack.objects.filter(track_id__in=chunk).values_list("track_id", flat=True))
    if not on_mixtapes:
        return None
    label = f"Changed files ({len(on_mixtapes)} track{'s' if len(on_mixtapes) != 1 else ''} on mixtapes)"
    try:
        return precache_tracks(sorted(on_mixtapes), label=label)
    except DatabaseError:
        logger.exception("could not queue the renditions of %d changed tracks", len(on_mixtapes))
        return None
