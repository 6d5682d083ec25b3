"""Sending progress events: stored, delivered live, throttled, and heard in this process.

Every event is stored by django-eventstream's ``DjangoModelStorage`` (a client that
reconnects with Last-Event-ID, or connects late, gets what it missed), and the open streams
read it from there at once: in this process directly, in others (``REDIS_URL``) through
``fanout``, so events sent by a ``cacheworker`` on another host reach every web process in
order, and Redis away stops nothing. Code in the sending process may also listen to a
batch (``listen``): ``precache --inline`` draws its progress bar from the events its own
pool sends, instead of asking the database. Progress ticks are throttled per batch;
per-track outcomes and the final event never are.
"""

import contextlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

from . import fanout
from .payload import (
    COMPLETED,
    EVENT_TYPE,
    FAILED,
    IN_PROGRESS,
    PENDING,
    SKIPPED,
    Counts,
    channel_for,
    counts_of,
    outcome_line,
    payload,
)

logger = logging.getLogger(__name__)

MIN_TICK_INTERVAL = 0.25  # at most 4 progress ticks per second per batch
_lock = threading.Lock()
_last_tick: dict[str, float] = {}
_listeners: dict[str, list[Callable[[dict], None]]] = {}
# The counts of each batch's latest event sent by this process, so a progress tick needs no
# query (a tick only says where the batch stood; outcomes and the end carry counted figures).
# Batches another process finishes are never forgotten here: keep the newest few hundred.
_known_counts: "OrderedDict[str, Counts]" = OrderedDict()
KNOWN_COUNTS_KEPT = 500


def send(batch_id, data: dict) -> bool:
    """Store and deliver one event of ``batch_id``; False when it could not be sent (logged:
    progress must never break the transcoding it reports on)."""
    channel = channel_for(batch_id)
    _remember(batch_id, counts_of(data))
    try:
        _deliver(channel, data)
    except Exception:
        logger.exception("could not send progress event for batch %s", batch_id)
        return False
    for callback in list(_listeners.get(str(batch_id), ())):
        try:
            callback(data)
        except Exception:  # a listener's trouble is its own
            logger.exception("progress listener of batch %s failed", batch_id)
    return True


def _deliver(channel: str, data: dict) -> None:
    from django.core.serializers.json import DjangoJSONEncoder
    from django_eventstream.utils import get_storage

    # Stored first (the same encoding django-eventstream's send_event uses); the streams then
    # read it from storage, here and in other processes (fanout). Not send_event: it hands the
    # event to this process's streams directly, so two threads sending at once could deliver
    # event 8 before event 7, and a stream caught up from storage in between would skip one.
    get_storage().append_event(channel, EVENT_TYPE, json.dumps(data, cls=DjangoJSONEncoder))
    fanout.announce(channel)


def _remember(batch_id, counts: Counts) -> None:
    key = str(batch_id)
    with _lock:
        _known_counts[key] = counts
        _known_counts.move_to_end(key)
        while len(_known_counts) > KNOWN_COUNTS_KEPT:
            _known_counts.popitem(last=False)


def known_counts(batch_id) -> Counts | None:
    """The counts of the batch's latest event sent by this process, if any."""
    with _lock:
        return _known_counts.get(str(batch_id))


def tick_due(batch_id) -> bool:
    """True (and the slot is taken) when a progress tick for this batch may go out now."""
    now = time.monotonic()
    key = str(batch_id)
    with _lock:
        if now - _last_tick.get(key, -MIN_TICK_INTERVAL) < MIN_TICK_INTERVAL:
            return False
        _last_tick[key] = now
        return True


def forget(batch_id) -> None:
    """Drop a finished batch's throttle state and counts."""
    with _lock:
        _last_tick.pop(str(batch_id), None)
        _known_counts.pop(str(batch_id), None)


@contextlib.contextmanager
def listen(batch_id, callback: Callable[[dict], None]) -> Iterator[None]:
    """Call ``callback(payload)`` for every event of ``batch_id`` sent by this process while
    the block runs (from the sending thread: keep it short)."""
    key = str(batch_id)
    with _lock:
        _listeners.setdefault(key, []).append(callback)
    try:
        yield
    finally:
        with _lock:
            callbacks = _listeners.get(key, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                _listeners.pop(key, None)


class BatchEvents:
    """The events of one batch, in the order a batch lives: ``queued``, then per rendition
    ``track_started`` (a throttled tick) and one of ``track_cached``/``track_skipped``/
    ``track_failed``, then ``finished`` exactly once (the caller makes sure of that)."""

    def __init__(self, batch_id):
        self.batch_id = batch_id

    def emit(self, step: str, status: str, message: str, counts: Counts, **extra) -> dict | None:
        """Send one event now; returns its payload, or None when it could not be sent."""
        data = payload(self.batch_id, step, status, message, counts, **extra)
        return data if send(self.batch_id, data) else None

    def queued(self, counts: Counts) -> None:
        self.emit("start", PENDING, f"Queued {counts.total} renditions ({counts})", counts)

    def track_started(self, track, quality: str, counts: Counts | Callable[[], Counts]) -> None:
        """A throttled tick; ``counts`` may be a function, called only when the tick goes out and
        this process has sent no event of the batch yet (``known_counts``)."""
        if not tick_due(self.batch_id):
            return
        if callable(counts):
            counts = known_counts(self.batch_id) or counts()
        self.emit(
            "track", IN_PROGRESS, f"Caching track {counts.done + 1} of {counts.total}: {track.display_name} @ {quality}", counts,
            track_id=track.pk, quality=quality,
        )  # fmt: skip

    def _outcome(self, track, quality, counts, status, verb, reason=""):
        message = outcome_line(track, quality, verb, reason)  # the counts travel in the event's own fields
        self.emit("track", status, message, counts, track_id=track.pk, quality=quality)

    def track_cached(self, track, quality: str, counts: Counts) -> None:
        self._outcome(track, quality, counts, COMPLETED, "Cached")

    def track_skipped(self, track, quality: str, counts: Counts, reason: str = "") -> None:
        self._outcome(track, quality, counts, SKIPPED, "Skipped", reason)

    def track_failed(self, track, quality: str, counts: Counts, reason: str = "") -> None:
        self._outcome(track, quality, counts, FAILED, "Failed", reason)

    def finished(self, counts: Counts) -> None:
        self.emit("done", counts.final_status, counts.summary, counts)
        forget(self.batch_id)
