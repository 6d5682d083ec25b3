"""The worker pool inside the web process (single-node topology), started by ASGI lifespan.

Django's ASGI handler ignores the ASGI lifespan protocol, so ``config/asgi.py`` wraps the
application in ``Lifespan``, which starts the pool and the library watcher when uvicorn
starts and, when it stops, hands running tasks back to the queue, stops the watcher and
writes the last play counts. A web process with ``AUDIO_CACHE_MAX_WORKERS=0`` (scale-out)
runs neither: there the ``cacheworker`` processes do.
"""

import asyncio
import logging

from django.conf import settings
from django.db import connection

from config import database
from mixtapes import watcher

from ..services import play_counts
from ..transcode.ffmpeg import CacheUnwritable, FFmpegMissing
from .pool import WorkerPool

logger = logging.getLogger(__name__)

_pool: WorkerPool | None = None


def say_if_database_unreachable() -> None:
    """One clear line at start-up when the database cannot be reached: the process serves on
    (pages answer 500 and /healthz 503 until it is back) rather than refusing to start."""
    why = database.unreachable()
    if why is not None:
        logger.error("%s; pages fail and /healthz says 503 until it is back", database.message(why))
    connection.close()


def start_pool() -> WorkerPool | None:
    global _pool
    if not settings.AUDIO_CACHE_ENABLED or settings.AUDIO_CACHE_MAX_WORKERS < 1:
        logger.info("no embedded transcoding workers (AUDIO_CACHE_ENABLED=false or AUDIO_CACHE_MAX_WORKERS=0)")
        return None
    try:
        _pool = WorkerPool(settings.AUDIO_CACHE_MAX_WORKERS).start()
    except (FFmpegMissing, CacheUnwritable) as exc:
        # The app still serves originals; the operator sees why nothing gets cached.
        logger.error("transcoding is off: %s", exc)
        _pool = None
    return _pool


def start_watcher() -> None:
    """The library watcher runs where the workers run (one process at a time holds its lease)."""
    if settings.AUDIO_CACHE_MAX_WORKERS >= 1:
        watcher.start_watcher()


def stop_pool(timeout: float = 30) -> None:
    global _pool
    if _pool is not None:
        _pool.stop()
        _pool.join(timeout)
        _pool = None


def flush_counts() -> None:
    """The last minute of play counts, written before the process exits."""
    try:
        play_counts.flush_plays()
    except Exception:
        logger.exception("could not write the last play counts")
    finally:
        connection.close()


class Lifespan:
    """ASGI middleware answering ``lifespan`` events around an ASGI application."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await loop.run_in_executor(None, say_if_database_unreachable)
                await loop.run_in_executor(None, start_pool)
                await loop.run_in_executor(None, start_watcher)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await loop.run_in_executor(None, watcher.stop_watcher)
                await loop.run_in_executor(None, stop_pool)
                await loop.run_in_executor(None, flush_counts)
                await send({"type": "lifespan.shutdown.complete"})
                return
