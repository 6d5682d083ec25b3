"""Progress events sent in one process, heard by the event streams of every process.

Every event is first stored in the database (``sending.py``); storage is the truth, and its ids
are given out in commit order. ``announce`` then makes the streams of that channel read what
they have not sent yet from storage, the way django-eventstream catches up a stream that fell
behind (``_catch_up``): in this process at once, and in the others through a note on Redis,
"channel X has news" (``REDIS_URL``). A stream thus sends every event once and in order, wherever
it was sent from. And Redis can go away without taking anything else along:

- ``announce`` never waits for Redis: one thread of its own publishes, and a request or a worker
  only adds a channel name to a set (coalesced: ten events of one batch make one note).
- While Redis is away, notes wait in that set and are published when it is back; meanwhile
  every process still serves its own streams, and browsers elsewhere get the stored events
  when Redis returns or when they reconnect.
- The listening thread (``start_listening``, in processes that serve event streams) reconnects
  with backoff, and on every (re)connection makes each of its listeners read storage again, so
  what was sent while it was deaf is delivered, once, in order.

Written here rather than taken from django-eventstream's own Redis mode: that mode publishes
inside ``send_event`` (a save waited ~4 s for redis-py's retries whenever Redis was away) and its
listening task ends for good at the first lost connection.
"""

import json
import logging
import os
import threading
import time
import uuid

from django.conf import settings

logger = logging.getLogger(__name__)

REDIS_CHANNEL = "mixtapes:audiocache:events"
# One name per process: a process ignores its own notes (its listeners already have the event).
ORIGIN = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 2}
RETRY_MIN, RETRY_MAX = 0.5, 10.0  # seconds between attempts while Redis is away (doubling)
MAX_PENDING = 10_000  # channel names kept while Redis is away; beyond, the oldest are dropped

_lock = threading.Lock()
_pending: dict[str, None] = {}  # an ordered set
_wake = threading.Event()
_publisher: threading.Thread | None = None
_listener: threading.Thread | None = None
_state = {"publishing": True, "listening": None}  # None: not started in this process


def announce(channel: str) -> None:
    """``channel`` has a new stored event: this process's streams of it read it now, and (with
    REDIS_URL) the other processes are told. Returns at once."""
    global _publisher
    _catch_up(channel)
    if not settings.REDIS_URL:
        return
    with _lock:
        _pending.pop(channel, None)
        _pending[channel] = None
        while len(_pending) > MAX_PENDING:
            del _pending[next(iter(_pending))]
        if _publisher is None or not _publisher.is_alive():
            _publisher = threading.Thread(target=_publish_forever, name="events-fanout-publish", daemon=True)
            _publisher.start()
    _wake.set()


def _take_pending() -> list[str]:
    with _lock:
        channels = list(_pending)
        _pending.clear()
    return channels


def _put_back(channels: list[str]) -> None:
    with _lock:
        merged = dict.fromkeys(channels)
        merged.update(_pending)  # announced meanwhile
        _pending.clear()
        _pending.update(merged)
        while len(_pending) > MAX_PENDING:
            del _pending[next(iter(_pending))]


def _publish_forever() -> None:
    import redis

    client, url = None, None
    delay = RETRY_MIN
    while True:
        _wake.wait()
        _wake.clear()
        channels = _take_pending()
        if not channels:
            continue
        if not settings.REDIS_URL:  # only ever unset in tests
            continue
        try:
            if url != settings.REDIS_URL:
                url = settings.REDIS_URL
                client = redis.Redis.from_url(url, **_TIMEOUTS)
            with client.pipeline(transaction=False) as pipe:
                for channel in channels:
                    pipe.publish(REDIS_CHANNEL, json.dumps({"origin": ORIGIN, "channel": channel}))
                pipe.execute()
        except Exception as exc:  # Redis away: keep the notes, try again later
            _put_back(channels)
            if _state["publishing"]:
                logger.warning(
                    "Redis is unreachable (%s): progress events are stored and delivered in this process; "
                    "other processes get them when Redis is back",
                    exc,
                )
            _state["publishing"] = False
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
            _wake.set()
            continue
        if not _state["publishing"]:
            logger.warning("Redis is reachable again: progress events reach every process live")
        _state["publishing"] = True
        delay = RETRY_MIN


def start_listening() -> None:
    """Hear other processes' notes (nothing without REDIS_URL); idempotent, thread-safe."""
    global _listener
    if not settings.REDIS_URL:
        return
    with _lock:
        if _listener is not None and _listener.is_alive():
            return
        _listener = threading.Thread(target=_listen_forever, name="events-fanout-listen", daemon=True)
        _listener.start()


def _listen_forever() -> None:
    import redis

    delay = RETRY_MIN
    while True:
        pubsub = None
        try:
            # A subscribed connection can do nothing else. It pings every 10 s, so a Redis that
            # vanished without closing the connection is noticed within seconds.
            client = redis.Redis.from_url(settings.REDIS_URL, **_TIMEOUTS, health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(REDIS_CHANNEL)
            if _state["listening"] is False:
                logger.warning("Redis is reachable again: live progress events from other processes resume")
            _state["listening"] = True
            delay = RETRY_MIN
            _catch_up(None)  # whatever was sent while nobody here was listening
            while True:
                message = pubsub.get_message(timeout=1.0)
                note = _note(message) if message is not None else None
                if note is not None and note["origin"] != ORIGIN:
                    _catch_up(note["channel"])
        except Exception as exc:
            if _state["listening"] is not False:
                logger.warning(
                    "cannot listen on Redis for progress events (%s): streams here get other processes' "
                    "events when it is back; retrying",
                    exc,
                )
            _state["listening"] = False
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
        finally:
            if pubsub is not None:
                try:
                    pubsub.close()
                except Exception:  # already broken: nothing to release
                    logger.debug("closing the Redis subscription failed", exc_info=True)


def _note(message) -> dict | None:
    if message.get("type") != "message":
        return None
    try:
        note = json.loads(message["data"])
    except (TypeError, ValueError):
        return None
    if not isinstance(note, dict) or not isinstance(note.get("channel"), str) or "origin" not in note:
        return None
    return note


def _catch_up(channel: str | None) -> None:
    """Make this process's event-stream listeners of ``channel`` (all of them for None) read
    storage for what they have not sent yet.

    This is django-eventstream's own catch-up path (a listener marked ``overflow`` re-reads from
    its last event id, in ``views.stream``), reached through its listener manager's documented
    fields under its lock: there is no public call for it in django-eventstream 5.3."""
    from django_eventstream.views import get_listener_manager

    manager = get_listener_manager()
    with manager.lock:
        if channel is None:
            listeners = {listener for group in manager.listeners_by_channel.values() for listener in group}
        else:
            listeners = set(manager.listeners_by_channel.get(channel, ()))
        for listener in listeners:
            listener.overflow = True
    for listener in listeners:
        listener.wake_threadsafe()


def health() -> dict:
    """What this process knows of Redis from its own traffic (for /healthz)."""
    return {"publishing": _state["publishing"], "listening": _state["listening"]}
