"""Batch progress as Server-Sent Events (django-eventstream), with the seed's tracker API.

Every batch has a channel, ``batch-<uuid>``. Events are stored by django-eventstream's
``DjangoModelStorage`` (so a client that reconnects with Last-Event-ID, or connects late,
gets what it missed) and delivered live in-process, or through Redis when ``REDIS_URL`` is
set (so events sent by a ``cacheworker`` on another host reach every web process).

Payload (the seed's schema): ``task_id`` (the batch), ``step``, ``status`` (pending,
in_progress, completed, failed, skipped), ``message``, ``current``, ``total``, ``timestamp``
(ISO 8601), the batch counts, and ``track_id``/``quality`` when the event is about one track.
Progress ticks are throttled per batch; per-track outcomes and the final event never are.
"""

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

logger = logging.getLogger(__name__)

PENDING, IN_PROGRESS, COMPLETED, FAILED, SKIPPED = "pending", "in_progress", "completed", "failed", "skipped"
EVENT_TYPE = "progress"
MIN_TICK_INTERVAL = 0.25  # at most 4 progress ticks per second per batch
# When Redis cannot be reached, django-eventstream's client retries with backoff inside every
# send_event (about 4 s per event with redis-py 8), which stalled each worker thread on every
# progress event. After such a failure, events are only stored (browsers get them on reconnect,
# from storage) for this many seconds, then Redis is tried again.
REDIS_RETRY_AFTER = 30.0


def decode_stored(data: str) -> dict:
    """DjangoModelStorage keeps the JSON text that send_event made, JSON-encoded once more."""
    value = json.loads(data)
    return json.loads(value) if isinstance(value, str) else value


def sse_snapshot(data: dict) -> bytes:
    """One SSE event (no id: it is a snapshot, not a stored event)."""
    return f"event: {EVENT_TYPE}\ndata: {json.dumps(data)}\n\n".encode()


def channel_for(batch_id) -> str:
    return f"batch-{batch_id}"


def batch_id_from_channel(channel: str) -> str | None:
    return channel.removeprefix("batch-") if channel.startswith("batch-") else None


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


class ProgressTracker:
    """The seed's tracker: ``create_task``, ``emit``, ``listen``, ``cleanup_task``.

    ``task_id`` is a batch id. ``emit`` is safe from any thread or process.
    """

    def __init__(self, logger_: logging.Logger | None = None):
        self.logger = logger_ or logger
        self._last_tick: dict[str, float] = {}
        self._lock = threading.Lock()

    def create_task(self, task_id, total: int, counts: Counts | None = None) -> None:
        """Announce a new batch; ``counts`` says how many renditions needed no work."""
        counts = counts or Counts(total=total)
        self.emit(task_id, "start", PENDING, f"Queued {total} renditions ({counts})", counts, force=True)

    def emit(self, task_id, step: str, status: str, message: str, counts: Counts, *, force: bool = False, **extra):
        """Send one event; an ``in_progress`` tick within MIN_TICK_INTERVAL of the last is dropped
        unless ``force``. Returns the payload sent, or None when throttled or undeliverable."""
        if status == IN_PROGRESS and not force and not self.tick_due(task_id):
            return None
        data = payload(task_id, step, status, message, counts, **extra)
        try:
            self._send(channel_for(task_id), data)
        except Exception:  # progress must never break the transcoding it reports on
            self.logger.exception("could not send progress event for batch %s", task_id)
            return None
        return data

    _redis_down_until = 0.0  # monotonic time; shared by every tracker of the process

    def _send(self, channel: str, data: dict) -> None:
        from django_eventstream import eventstream, send_event

        if eventstream.redis_client is not None and time.monotonic() < ProgressTracker._redis_down_until:
            self._store_only(channel, data)
            return
        try:
            send_event(channel, EVENT_TYPE, data)
        except Exception as exc:
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import TimeoutError as RedisTimeoutError

            if not isinstance(exc, RedisConnectionError | RedisTimeoutError):
                raise
            # send_event stores the event before it publishes to Redis: it is kept for replay.
            ProgressTracker._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER
            self.logger.warning(
                "Redis is unreachable (%s): progress events are stored for replay only, not delivered live; "
                "trying Redis again in %d s",
                exc,
                REDIS_RETRY_AFTER,
            )

    @staticmethod
    def _store_only(channel: str, data: dict) -> None:
        """What send_event does before publishing: the stored copy that reconnecting clients replay."""
        from django.core.serializers.json import DjangoJSONEncoder
        from django_eventstream.utils import get_storage

        get_storage().append_event(channel, EVENT_TYPE, json.dumps(data, cls=DjangoJSONEncoder))

    def tick_due(self, task_id) -> bool:
        """True (and the slot is taken) when a progress tick for this batch may go out now."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_tick.get(str(task_id), -MIN_TICK_INTERVAL) < MIN_TICK_INTERVAL:
                return False
            self._last_tick[str(task_id)] = now
            return True

    def listen(self, task_id, last_id: int = 0):
        """Yield the stored events of a batch after ``last_id`` as (id, payload); the SSE view
        streams the same events live, this is for code and tests."""
        from django_eventstream.models import Event

        events = Event.objects.filter(channel=channel_for(task_id), eid__gt=last_id).order_by("eid")
        for event in events.iterator():
            yield event.eid, decode_stored(event.data)

    def cleanup_task(self, task_id) -> None:
        with self._lock:
            self._last_tick.pop(str(task_id), None)


_tracker = ProgressTracker()


def get_progress_tracker(logger_: logging.Logger | None = None) -> ProgressTracker:
    """The process-wide tracker (the seed's ``get_progress_tracker``)."""
    return _tracker


class ProgressCallback:
    """Per-batch callbacks the worker pool calls: ``track_started``, ``track_cached``,
    ``track_skipped``, ``track_failed``, then ``finished`` exactly once."""

    def __init__(self, batch_id, tracker: ProgressTracker | None = None):
        self.batch_id = batch_id
        self.tracker = tracker or get_progress_tracker()

    def track_started(self, track, quality: str, counts: Counts | Callable[[], Counts]) -> None:
        """A throttled tick; ``counts`` may be a function, called only when the tick goes out."""
        if not self.tracker.tick_due(self.batch_id):
            return
        counts = counts() if callable(counts) else counts
        self.tracker.emit(
            self.batch_id, "track", IN_PROGRESS,
            f"Caching track {counts.done + 1} of {counts.total}: {track} @ {quality}", counts,
            force=True, track_id=track.pk, quality=quality,
        )  # fmt: skip

    def _outcome(self, track, quality, counts, status, verb, reason=""):
        message = f"{verb} {track} @ {quality} ({counts.done}/{counts.total})" + (f": {reason}" if reason else "")
        self.tracker.emit(
            self.batch_id, "track", status, message, counts, force=True, track_id=track.pk, quality=quality
        )

    def track_cached(self, track, quality: str, counts: Counts) -> None:
        self._outcome(track, quality, counts, COMPLETED, "Cached")

    def track_skipped(self, track, quality: str, counts: Counts, reason: str = "") -> None:
        self._outcome(track, quality, counts, SKIPPED, "Skipped", reason)

    def track_failed(self, track, quality: str, counts: Counts, reason: str = "") -> None:
        self._outcome(track, quality, counts, FAILED, "Failed", reason)

    def finished(self, counts: Counts) -> None:
        self.tracker.emit(self.batch_id, "done", counts.final_status, counts.summary, counts, force=True)
        self.tracker.cleanup_task(self.batch_id)
