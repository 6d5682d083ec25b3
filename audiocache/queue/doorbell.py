"""Wake idle workers when work is queued: in this process at once, in others through Redis.

Idle workers look at the queue once a second (``cacheworker --poll-interval``); a listener
whose play request started a transcode would wait for that look before ffmpeg even starts.
So every enqueue rings: pools in this process are woken directly (``on_ring``), and with
``REDIS_URL`` one small message is published that every ``cacheworker`` process listens for
(``listen``). Redis is only a doorbell: the queue itself lives in the database, so a lost
message (Redis down, a worker restarting) costs at most one poll interval, never a task.
"""

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings

logger = logging.getLogger(__name__)

CHANNEL = "mixtapes:audiocache:queued"
RETRY_AFTER = 30.0  # seconds without publishing after Redis was found unreachable
_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 2}

# --- In this process ------------------------------------------------------------------------

_local: list[Callable[[], None]] = []


def on_ring(callback: Callable[[], None]) -> None:
    """Call ``callback()`` whenever work is queued in this process (a pool wakes its workers)."""
    _local.append(callback)


def off_ring(callback: Callable[[], None]) -> None:
    if callback in _local:
        _local.remove(callback)


def ring() -> None:
    """Work was queued: wake the pools of this process, and those of others (with REDIS_URL)."""
    for callback in list(_local):
        try:
            callback()
        except Exception:  # a doorbell must never break an enqueue
            logger.exception("a doorbell listener failed")
    publish()


# --- Other processes, through Redis --------------------------------------------------------------

_client = None
_client_url = None
_client_lock = threading.Lock()
_down_until = 0.0


def _redis():
    global _client, _client_url
    if _client is None or _client_url != settings.REDIS_URL:  # only the ringing thread gets here
        import redis

        # (The URL only ever changes in tests, which point several servers at one process.)
        _client, _client_url = redis.Redis.from_url(settings.REDIS_URL, **_TIMEOUTS), settings.REDIS_URL
    return _client


_ring = threading.Event()
_ringer: threading.Thread | None = None


def publish() -> None:
    """Ring the bell for workers in other processes (nothing without REDIS_URL).

    Returns at once: a thread of its own talks to Redis, so a slow or unreachable Redis never
    holds up the request that queued the work. Rings that come while it is busy make one."""
    global _ringer
    if not settings.REDIS_URL or (time.monotonic() < _down_until and _client_url == settings.REDIS_URL):
        return
    _ring.set()
    with _client_lock:
        if _ringer is None or not _ringer.is_alive():
            _ringer = threading.Thread(target=_ring_forever, name="cacheworker-doorbell", daemon=True)
            _ringer.start()


def _ring_forever() -> None:
    global _down_until
    while True:
        _ring.wait()
        _ring.clear()
        try:
            _redis().publish(CHANNEL, b"1")
        except Exception as exc:  # a doorbell must never fail anything
            _down_until = time.monotonic() + RETRY_AFTER
            logger.warning("Redis is unreachable (%s): workers elsewhere find new work by polling", exc)


def listen(wake: Callable[[], None], stopping: threading.Event) -> threading.Thread | None:
    """Call ``wake()`` whenever work is queued in any process, until ``stopping`` is set;
    returns the listening thread (None without REDIS_URL)."""
    if not settings.REDIS_URL:
        return None
    thread = threading.Thread(target=_listen, args=(wake, stopping), name="cacheworker-wakeup", daemon=True)
    thread.start()
    return thread


def _listen(wake, stopping: threading.Event) -> None:
    import redis

    while not stopping.is_set():
        pubsub = None
        try:
            # Its own connection: a subscribed connection can do nothing else.
            pubsub = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).pubsub(
                ignore_subscribe_messages=True
            )
            pubsub.subscribe(CHANNEL)
            wake()  # whatever was queued while we were not listening
            while not stopping.is_set():
                if pubsub.get_message(timeout=1.0) is not None:
                    wake()
        except Exception as exc:
            logger.warning("cannot listen on Redis for new work (%s); polling meanwhile, retrying in 5 s", exc)
            stopping.wait(5)
        finally:
            if pubsub is not None:
                try:
                    pubsub.close()
                except Exception:  # already broken: nothing to release
                    logger.debug("closing the Redis subscription failed", exc_info=True)
