"""What a progress event says: the seed's schema, a batch's counts and its channel's name.

Payload: ``task_id`` (the batch's id: the seed's name for it), ``step``, ``status``
(pending, in_progress, completed, failed, skipped), ``message``, ``current``, ``total``,
``timestamp`` (ISO 8601), the batch counts, and ``track_id``/``quality`` when the event is
about one track.
"""

import json
from dataclasses import dataclass

from django.utils import timezone

PENDING, IN_PROGRESS, COMPLETED, FAILED, SKIPPED = "pending", "in_progress", "completed", "failed", "skipped"
EVENT_TYPE = "progress"
CHANNEL_PREFIX = "batch-"


def channel_for(batch_id) -> str:
    return f"{CHANNEL_PREFIX}{batch_id}"


def batch_id_from_channel(channel: str) -> str | None:
    return channel.removeprefix(CHANNEL_PREFIX) if channel.startswith(CHANNEL_PREFIX) else None


@dataclass(frozen=True)
class Counts:
    """Where a batch stands: the renditions it asked for and how each one ended so far."""

    cached: int = 0
    skipped: int = 0
    failed: int = 0
    total: int = 0

    @property
    def done(self) -> int:
        return self.cached + self.skipped + self.failed

    @property
    def pending(self) -> int:
        return self.total - self.done

    @property
    def finished(self) -> bool:
        return self.pending == 0

    @property
    def final_status(self) -> str:
        return FAILED if self.failed else COMPLETED

    @property
    def summary(self) -> str:
        return f"{self.cached} cached, {self.skipped} skipped, {self.failed} failed"

    def __str__(self) -> str:
        return self.summary


def outcome_line(track, quality: str, verb: str, reason: str = "") -> str:
    """A track's line in a batch's log, the same whether it arrives live or is read back for a
    page opened later: "Cached <artist> - <title> @ medium" (an en dash), with the reason when there is one."""
    return f"{verb} {track.display_name} @ {quality}" + (f": {reason}" if reason else "")


def payload(batch_id, step: str, status: str, message: str, counts: Counts, *, track_id=None, quality=None) -> dict:
    data = {
        "task_id": str(batch_id),
        "step": step,
        "status": status,
        "message": message,
        "current": counts.done,
        "total": counts.total,
        "cached": counts.cached,
        "skipped": counts.skipped,
        "failed": counts.failed,
        "timestamp": timezone.now().isoformat(),
    }
    if track_id is not None:
        data["track_id"] = track_id
        data["quality"] = quality
    return data


def counts_of(data: dict) -> Counts:
    """The counts an event carries."""
    return Counts(cached=data["cached"], skipped=data["skipped"], failed=data["failed"], total=data["total"])


def sse_snapshot(data: dict) -> bytes:
    """One SSE event (no id: it is a snapshot, not a stored event)."""
    return f"event: {EVENT_TYPE}\ndata: {json.dumps(data)}\n\n".encode()


def decode_stored(data: str) -> dict:
    """DjangoModelStorage keeps the JSON text that send_event made, JSON-encoded once more."""
    value = json.loads(data)
    return json.loads(value) if isinstance(value, str) else value
