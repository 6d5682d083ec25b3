"""Read-only queries about the cache that pages use (the stream view checks files itself)."""

import uuid
from urllib.parse import urlencode

from django.db.models import F, Q
from django.urls import reverse

from . import queue
from .models import CacheBatch, CacheBatchItem, CachedRendition, CacheTask
from .progress import channel_for, payload
from .transcoder import ENCODER_PROFILE


def fresh_q() -> Q:
    """Rendition rows that match their track as last scanned and today's encoder settings."""
    return Q(
        encoder_profile=ENCODER_PROFILE,
        source_size=F("track__file_size"),
        source_mtime_ns=F("track__file_mtime_ns"),
    )


def fresh_renditions(quality: str | None = None):
    """Renditions whose row says they are fresh (``fresh_q``). The file on disk is not looked
    at: good for listing, not for serving."""
    renditions = CachedRendition.objects.filter(fresh_q())
    return renditions if quality is None else renditions.filter(quality=quality)


def batch_to_follow(user, mixtape, batch_id=None) -> CacheBatch | None:
    """The batch the editor should show: the one named in the URL (if it is this user's batch
    for this mixtape, finished or not), else this user's newest unfinished one for it."""
    batches = CacheBatch.objects.filter(mixtape=mixtape, created_by=user)
    if batch_id:
        try:
            named = batches.filter(pk=uuid.UUID(str(batch_id))).first()
        except ValueError:
            named = None
        if named is not None:
            return named
    return batches.filter(finished_at__isnull=True).order_by("-created_at").first()


def batch_log(batch: CacheBatch, limit: int = 500) -> list[dict]:
    """Outcomes reached so far, as the progress modal's log lines (for a page opened mid-batch)."""
    items = (
        CacheBatchItem.objects.filter(batch=batch)
        .select_related("track", "task")
        .only(
            "quality", "outcome", "note", "track__title", "track__artist", "track__path", "task__status", "task__error"
        )
        .order_by("id")[:limit]
    )
    lines = []
    for item in items:
        status = item.task.status if item.task is not None else item.outcome
        if status in ("", CacheTask.Status.PENDING, CacheTask.Status.RUNNING):
            continue
        verb = {"done": "Cached", "failed": "Failed", "skipped": "Skipped", "cancelled": "Cancelled"}.get(
            status, status
        )
        reason = item.note or (item.task.error.strip().splitlines()[-1] if item.task and item.task.error else "")
        lines.append(
            {
                "track_id": item.track_id,
                "quality": item.quality,
                "status": {"done": "completed", "cancelled": "skipped"}.get(status, status),
                "message": f"{verb} {item.track} @ {item.quality}" + (f": {reason}" if reason else ""),
            }
        )
    return lines


def batch_snapshot(batch: CacheBatch) -> dict:
    """The batch as it stands, in the events' schema (step "snapshot")."""
    summary = queue.batch_summary(batch)
    if batch.finished_at is not None:
        status, message = summary.final_status, str(summary)
    else:
        status, message = "in_progress", f"{summary.done} of {summary.total} done ({summary})"
    return payload(batch.pk, "snapshot", status, message, summary)


def batch_page_state(batch: CacheBatch) -> dict:
    """What a page needs to show a batch and then follow it without a gap: the event stream's
    position first, then the state and the log lines so far; the stream is opened from that
    position, so anything that happens while the page loads is replayed, not lost."""
    from django_eventstream.eventstream import get_current_event_id

    last_event_id = get_current_event_id([channel_for(batch.pk)])
    events_url = reverse("batch-events", args=[batch.pk]) + "?" + urlencode({"lastEventId": last_event_id})
    return {"events_url": events_url, "snapshot": batch_snapshot(batch), "log": batch_log(batch)}
