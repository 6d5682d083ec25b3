"""The transcode queue on ``CacheTask`` rows: enqueue, claim, lease, finish, retry, cancel.

Correctness comes from the database, so any number of workers on any number of hosts can
share one queue:

- one active task per (track, format, quality) is a partial unique index; an enqueue that loses
  the race simply joins the winner's task;
- a claim takes a row with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL and with a
  conditional ``UPDATE`` that must change exactly one row on SQLite (``claim/``);
- every state change a worker makes is conditional on it still holding the task
  (``status=running`` and its ``worker_id``), so a worker whose lease was taken over can
  never overwrite the new owner's work.
"""

import logging
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from mixtapes.files import SourceState, SourceUnavailable, source_state
from mixtapes.models import Track
from mixtapes.probe import last_line

from ..models import CachedRendition, CacheTask
from ..qualities import Variant
from ..renditions import is_fresh
from ..transcode.ffmpeg import TEMP_PREFIX
from . import doorbell
from .claim import claim as _claim

logger = logging.getLogger(__name__)

Status = CacheTask.Status
CHUNK = 500  # rows per bulk query: well under SQLite's bound-parameter limit
ALREADY_CACHED = "already cached"  # an enqueue result: a fresh rendition exists

# --- Enqueue ----------------------------------------------------------------------------


def enqueue(
    tracks: Iterable[Track] | Iterable[int],
    variants: Iterable[Variant | str],
    *,
    priority: int = CacheTask.PRIORITY_PRECACHE,
    force: bool = False,
) -> dict[tuple[int, Variant], CacheTask | str]:
    """Queue renditions of ``tracks`` in ``variants`` (``Variant`` or ``"opus:medium"``; a bare
    quality is MP3); returns (track id, variant) -> task or skip reason.

    Idempotent: an active task for the same track and variant is joined (and its priority
    raised if ours is higher). Already fresh renditions, lossy and missing sources, and
    sources whose last attempt failed (quarantined until the file changes) are skipped
    unless ``force``. Works in chunks with bulk queries, so 10,000 tracks cost a few dozen
    queries. Idle workers are woken once the transaction commits.
    """
    variants = list(dict.fromkeys(Variant.of(v) for v in variants))
    ids = [t.pk if isinstance(t, Track) else int(t) for t in tracks]
    ids = list(dict.fromkeys(ids))
    results: dict[tuple[int, Variant], CacheTask | str] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        track_rows = {
            t.id: t
            for t in Track.objects.filter(id__in=chunk).order_by().only("id", "path", "is_lossless", "missing_since")
        }
        for variant in variants:
            results.update(_enqueue_chunk(chunk, track_rows, variant, priority, force))
    if any(isinstance(v, CacheTask) for v in results.values()):
        transaction.on_commit(doorbell.ring)
    return results


def active_task(track_id: int, variant: Variant | str) -> CacheTask | None:
    """The pending or running task of this rendition (the one ``enqueue`` would join), if any."""
    active = CacheTask.objects.filter(track_id=track_id, status__in=CacheTask.ACTIVE_STATUSES)
    return active.filter(**Variant.of(variant).lookup).first()


def _enqueue_chunk(chunk, track_rows, variant: Variant, priority, force):
    results: dict[tuple[int, Variant], CacheTask | str] = {}
    # The file as it is now, not as the last scan saw it: a rendition made before the file
    # changed must not count as cached, and a changed file leaves quarantine.
    candidates: dict[int, tuple[Track, SourceState]] = {}
    for track_id in chunk:
        track = track_rows.get(track_id)
        key = (track_id, variant)
        if track is None or track.missing_since is not None:
            results[key] = "source missing (rescan the library?)"
        elif not track.is_lossless:
            results[key] = "lossy source, streamed as is"
        else:
            try:
                candidates[track_id] = (track, source_state(track))
            except SourceUnavailable as exc:
                results[key] = f"source unavailable: {exc}"
    renditions, quarantined = {}, {}
    if candidates and not force:
        renditions = {r.track_id: r for r in CachedRendition.objects.filter(track_id__in=candidates, **variant.lookup)}
        for track_id, size, mtime_ns, error in (
            CacheTask.objects.filter(track_id__in=candidates, status=Status.FAILED, **variant.lookup)
            .order_by("id")
            .values_list("track_id", "source_size", "source_mtime_ns", "error")
        ):
            quarantined[track_id] = (size, mtime_ns, error)
    cache_dir = Path(settings.AUDIO_CACHE_DIR)
    wanted = []
    for track_id, (track, state) in candidates.items():
        rendition = renditions.get(track_id)
        failed_before = quarantined.get(track_id)
        if rendition is not None and is_fresh(rendition, state, cache_dir):
            results[(track_id, variant)] = ALREADY_CACHED
        elif failed_before is not None and failed_before[:2] == (state.size, state.mtime_ns):
            reason = last_line(failed_before[2] or "", "see the task's error")
            results[(track_id, variant)] = f"failed before (fix the file or force a retry): {reason[:200]}"
        else:
            wanted.append((track, state))

    if wanted:
        with transaction.atomic():
            CacheTask.objects.bulk_create(
                [
                    CacheTask(
                        track_id=t.id,
                        **variant.lookup,
                        priority=priority,
                        force=force,
                        source_size=state.size,
                        source_mtime_ns=state.mtime_ns,
                    )
                    for t, state in wanted
                ],
                ignore_conflicts=True,  # an active task already exists: we join it below
            )
            wanted_ids = [t.id for t, _state in wanted]
            active = CacheTask.objects.filter(
                track_id__in=wanted_ids, status__in=CacheTask.ACTIVE_STATUSES, **variant.lookup
            )
            active.filter(status=Status.PENDING, priority__lt=priority).update(priority=priority)
            if force:
                active.filter(status=Status.PENDING, force=False).update(force=True)
            for task in active:
                results[(task.track_id, variant)] = task
        for t, _state in wanted:
            # Finished between our insert and our read (rare): nothing left to do for it.
            results.setdefault((t.id, variant), ALREADY_CACHED)
    return results


# --- Claim, lease, finish ----------------------------------------------------------------------


def lease_until():
    return timezone.now() + timedelta(seconds=settings.AUDIO_CACHE_LEASE_SECONDS)


def claim(worker_id: str) -> CacheTask | None:
    """Take the best pending task (highest priority, then oldest) for ``worker_id``."""
    return _claim(worker_id, lease_until())


def _held_by(task: CacheTask, worker_id: str):
    """The task's row, only while ``worker_id`` still holds it: every write of a worker goes through this."""
    return CacheTask.objects.filter(pk=task.pk, status=Status.RUNNING, worker_id=worker_id)


def heartbeat(holders: dict[int, str]) -> set[int]:
    """Extend the leases of tasks (task id -> worker id holding it); returns the ids that
    are no longer held by that exact worker (cancelled, or taken over after a lost lease)."""
    if not holders:
        return set()
    mine = Q()
    for pk, worker_id in holders.items():
        mine |= Q(pk=pk, worker_id=worker_id)
    held = CacheTask.objects.filter(mine, status=Status.RUNNING)
    held.update(lease_expires_at=lease_until())
    return set(holders) - set(held.values_list("pk", flat=True))


def still_held(task: CacheTask, worker_id: str) -> bool:
    return _held_by(task, worker_id).exists()


def set_output(task: CacheTask, worker_id: str, temp_name: str, planned_frames: int | None) -> bool:
    """Publish where the running attempt writes, so stream requests can follow the file."""
    return bool(_held_by(task, worker_id).update(temp_name=temp_name, planned_frames=planned_frames))


def set_progress(task: CacheTask, worker_id: str, progress: float) -> bool:
    return bool(_held_by(task, worker_id).update(progress=min(1.0, max(0.0, progress))))


def finish(task: CacheTask, worker_id: str, status: str, error: str = "") -> bool:
    """Mark a task done, skipped or failed for good; False if the worker had lost it."""
    values = {"status": status, "finished_at": timezone.now(), "lease_expires_at": None, "error": error}
    if status == Status.DONE:
        values["progress"] = 1.0
    return bool(_held_by(task, worker_id).update(**values))


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=settings.AUDIO_CACHE_RETRY_DELAY * (2 ** max(0, attempts - 1)))


def fail(task: CacheTask, worker_id: str, error: str, *, permanent: bool = False) -> str:
    """Record a failed attempt: back to pending after a backoff, or failed for good.

    Returns the status the task ends in ("" if the worker had lost it).
    """
    task.refresh_from_db(fields=["attempts"])
    if permanent or task.attempts >= settings.AUDIO_CACHE_MAX_ATTEMPTS:
        return Status.FAILED if finish(task, worker_id, Status.FAILED, error) else ""
    updated = _held_by(task, worker_id).update(
        status=Status.PENDING,
        worker_id="",
        lease_expires_at=None,
        available_at=timezone.now() + retry_delay(task.attempts),
        error=error,
        progress=0.0,
    )
    return Status.PENDING if updated else ""


# A pending task's error starts with this while it waits for the machine to be fixed (a full
# or unwritable cache folder): the dashboard shows it, and ``cacheworker --burst`` does not wait.
WAITING_PREFIX = "waiting for the machine: "


def machine_retry_delay(times: int = 1) -> timedelta:
    """How long a task waits after the machine failed it the ``times``-th time in a row:
    AUDIO_CACHE_RETRY_DELAY (at least a second), doubling, at most five minutes."""
    base = max(1, settings.AUDIO_CACHE_RETRY_DELAY)
    return timedelta(seconds=min(300, base * 2 ** max(0, times - 1)))


def postpone(task: CacheTask, worker_id: str, error: str, delay: timedelta) -> str:
    """The machine failed the attempt, not the source: back to pending after ``delay``, and the
    attempt does not count. Returns the status ("" if the worker had lost the task)."""
    updated = _held_by(task, worker_id).update(
        status=Status.PENDING,
        worker_id="",
        lease_expires_at=None,
        attempts=F("attempts") - 1,
        available_at=timezone.now() + delay,
        error=WAITING_PREFIX + error,
        progress=0.0,
    )
    return Status.PENDING if updated else ""


def hand_back(task: CacheTask, worker_id: str) -> bool:
    """Return a task untouched (worker shutting down): the attempt does not count."""
    return bool(
        _held_by(task, worker_id).update(
            status=Status.PENDING, worker_id="", lease_expires_at=None, attempts=F("attempts") - 1, progress=0.0
        )
    )


def cancel(tasks) -> int:
    """Cancel active tasks; a running one is stopped by its worker at the next heartbeat."""
    ids = [t.pk if isinstance(t, CacheTask) else int(t) for t in tasks]
    return CacheTask.objects.filter(pk__in=ids, status__in=CacheTask.ACTIVE_STATUSES).update(
        status=Status.CANCELLED, finished_at=timezone.now(), lease_expires_at=None
    )


def reclaim_expired(cache_dir: Path | None = None) -> list[int]:
    """Put tasks whose worker stopped renewing its lease back in the queue (or fail them
    after the last attempt) and delete the partial files their ffmpeg left behind."""
    cache_dir = Path(cache_dir or settings.AUDIO_CACHE_DIR)
    now = timezone.now()
    reclaimed = []
    expired = CacheTask.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now).values_list(
        "pk", "attempts", "worker_id"
    )
    for pk, attempts, worker_id in expired[:100]:
        same = CacheTask.objects.filter(pk=pk, status=Status.RUNNING, worker_id=worker_id, lease_expires_at__lt=now)
        message = f"worker {worker_id} stopped responding (lease expired)"
        if attempts >= settings.AUDIO_CACHE_MAX_ATTEMPTS:
            changed = same.update(
                status=Status.FAILED, error=message, finished_at=now, lease_expires_at=None, worker_id=""
            )
        else:
            changed = same.update(
                status=Status.PENDING,
                error=message,
                lease_expires_at=None,
                worker_id="",
                available_at=now,
                progress=0.0,
            )
        if changed:
            reclaimed.append(pk)
            remove_temp_files(pk, attempts, cache_dir)  # only the dead attempt's files
            logger.warning("reclaimed task %s from %s", pk, worker_id)
    return reclaimed


def temp_tag(task_id: int, attempt: int) -> str:
    """Part of an attempt's temporary file names, so whoever reclaims the task can find (only)
    that attempt's partial files: the next attempt may already be writing its own."""
    return f"t{task_id}a{attempt}-"


def remove_temp_files(task_id: int, attempt: int, cache_dir: Path) -> int:
    removed = 0
    for path in cache_dir.glob(f"{TEMP_PREFIX}{temp_tag(task_id, attempt)}*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
