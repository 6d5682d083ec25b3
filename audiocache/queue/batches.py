"""Batches: one precache request (a mixtape save, a CLI run, an admin action) and its counts.

A batch has one item per (track, variant) it asked for. An item either points at the task
that makes the rendition (a task may serve several batches: two overlapping batches that
share tracks both see it finish) or records why nothing was needed. A batch's counts come
from its items and their tasks' live status, so a task cancelled in the admin counts at once;
the first caller that sees every item settled marks the batch finished and announces it.
"""

import threading
import time
from collections.abc import Callable

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from mixtapes.models import Track

from ..events import sending
from ..events.payload import Counts, counts_of
from ..events.sending import BatchEvents
from ..models import CacheBatch, CacheBatchItem, CacheTask
from . import tasks

Status = CacheTask.Status
ITEMS_PER_INSERT = 500


def create_batch(
    tracks,
    variants,
    *,
    label: str,
    user=None,
    mixtape=None,
    force: bool = False,
    priority: int = CacheTask.PRIORITY_PRECACHE,
) -> CacheBatch:
    """Queue ``tracks`` x ``variants`` (``Variant`` or ``"opus:medium"``, a bare quality being
    MP3) as one batch and announce it; a batch with nothing to do is finished (and says so)
    before this returns."""
    with transaction.atomic():
        batch = CacheBatch.objects.create(label=label[:200], created_by=user, mixtape=mixtape)
        results = tasks.enqueue(tracks, variants, priority=priority, force=force)
        CacheBatchItem.objects.bulk_create(
            (
                CacheBatchItem(
                    batch=batch,
                    track_id=track_id,
                    format=variant.format,
                    quality=variant.quality,
                    task=result if isinstance(result, CacheTask) else None,
                    outcome="" if isinstance(result, CacheTask) else _outcome_for_reason(result),
                    note="" if isinstance(result, CacheTask) else result,
                    announced=not isinstance(result, CacheTask),
                )
                for (track_id, variant), result in results.items()
            ),
            batch_size=ITEMS_PER_INSERT,
        )
    counts, just_finished = check_finished(batch)
    events = BatchEvents(batch.pk)
    events.queued(counts)
    _announce_settled(events, results, counts)
    if just_finished:  # nothing to do: it ends here, with its final event
        events.finished(counts)
    return batch


SETTLED_LINES = 500  # as many as a page's log shows (selectors.batch_log)


def _announce_settled(events: BatchEvents, results: dict, counts: Counts) -> None:
    """The items settled without a task (a lossy source, a fresh rendition, a quarantined
    failure) get their log line now, as a page opened later reads them: the same lines live."""
    settled = [(key, reason) for key, reason in results.items() if not isinstance(reason, CacheTask)][:SETTLED_LINES]
    if not settled:
        return
    tracks = Track.objects.only("id", "title", "artist", "path").in_bulk({track_id for (track_id, _), _ in settled})
    for (track_id, variant), reason in settled:
        track = tracks.get(track_id)
        if track is None:
            continue
        if _outcome_for_reason(reason) == CacheBatchItem.Outcome.FAILED:
            events.track_failed(track, str(variant), counts, reason)
        else:
            events.track_skipped(track, str(variant), counts, reason)


def _outcome_for_reason(reason: str) -> str:
    if reason.startswith(("failed", "source")):
        return CacheBatchItem.Outcome.FAILED
    return CacheBatchItem.Outcome.SKIPPED


def batch_counts(batch: CacheBatch) -> Counts:
    """Counts from the items and their tasks' live status (one aggregate query)."""
    return Counts(**_aggregate(batch))


def _aggregate(batch: CacheBatch, **extra) -> dict[str, int]:
    no_task = Q(task__isnull=True)
    return batch.items.aggregate(
        total=Count("id"),
        cached=Count("id", filter=~no_task & Q(task__status=Status.DONE)),
        skipped=Count(
            "id",
            filter=(no_task & Q(outcome=CacheBatchItem.Outcome.SKIPPED))
            | Q(task__status__in=[Status.SKIPPED, Status.CANCELLED]),
        ),
        failed=Count(
            "id", filter=(no_task & ~Q(outcome=CacheBatchItem.Outcome.SKIPPED)) | Q(task__status=Status.FAILED)
        ),
        **extra,
    )


def check_finished(batch: CacheBatch, *, all_announced: bool = False) -> tuple[Counts, bool]:
    """The batch's counts, and True for exactly one caller: the one that saw it finish (and
    marked it finished). ``all_announced``: finished only once every item's outcome event was
    sent (the workers' way: the final event then always comes last); readers of a batch whose
    worker died before announcing leave it out."""
    if all_announced:  # the items not yet announced, counted in the same query
        found = _aggregate(batch, unannounced=Count("id", filter=Q(announced=False)))
        unannounced = found.pop("unannounced")
        counts = Counts(**found)
        if counts.finished and unannounced:
            return counts, False
    else:
        counts = batch_counts(batch)
    just_finished = False
    if counts.finished and batch.finished_at is None:
        just_finished = bool(
            CacheBatch.objects.filter(pk=batch.pk, finished_at__isnull=True).update(finished_at=timezone.now())
        )
        batch.refresh_from_db(fields=["finished_at"])
    return counts, just_finished


def announce_if_finished(batch: CacheBatch) -> Counts:
    """``check_finished``, and the batch's final event from whoever saw it finish."""
    counts, just_finished = check_finished(batch)
    if just_finished:
        BatchEvents(batch.pk).finished(counts)
    return counts


def open_batches_of(task: CacheTask) -> list[CacheBatch]:
    """The unfinished batches waiting for ``task``."""
    return list(CacheBatch.objects.filter(items__task=task, finished_at__isnull=True).distinct())


def follow(
    batch: CacheBatch,
    on_progress: Callable[[Counts], None] | None = None,
    *,
    poll_interval: float = 1.0,
    timeout: float | None = None,
) -> Counts:
    """Wait until ``batch`` is finished, whatever process does the work; returns its counts.

    Progress comes from the batch's events: those this process sends (its own pool's) arrive at
    once, without a query. Every ``poll_interval`` the batch is also looked at in the database,
    which is how the work of other processes shows, and how a batch whose last task was
    cancelled (no worker announces it) gets finished.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    latest: list[Counts] = []
    lock = threading.Lock()
    arrived = threading.Event()

    def heard(data: dict) -> None:  # in the sending thread
        with lock:
            latest.append(counts_of(data))
        arrived.set()

    shown = None
    with sending.listen(batch.pk, heard):
        counts = announce_if_finished(batch)
        while True:
            if counts != shown and on_progress is not None:
                on_progress(counts)
                shown = counts
            if counts.finished:
                return counts
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch.pk} not finished after {timeout:g} s ({counts})")
            if arrived.wait(poll_interval):
                arrived.clear()
                with lock:
                    counts = max(latest, key=lambda c: c.done, default=counts)  # events of several workers may cross
                    latest.clear()
                if counts.finished:
                    counts = announce_if_finished(batch)  # the final count, as the database has it
            else:
                counts = announce_if_finished(batch)
