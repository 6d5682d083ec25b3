"""What /healthz checks: each check returns (ok, details) and never raises.

No secrets in the answer: no URLs, passwords, paths outside what an operator configured.
"""

import os
import tempfile
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

FFMPEG_CHECK_TTL = 60.0  # seconds: the ffmpeg check starts a process; a health probe runs every 30 s
_ffmpeg_cache: dict = {}
_ffmpeg_lock = threading.Lock()


def check_database() -> tuple[bool, dict]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, {"vendor": connection.vendor}
    except Exception as exc:
        return False, {"error": type(exc).__name__}


def check_cache_dir() -> tuple[bool, dict]:
    """Writable for real: a file is created and removed (os.access ignores read-only mounts)."""
    folder = Path(settings.AUDIO_CACHE_DIR)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".health-", delete=True):
            pass
        usage = os.statvfs(folder)
        return True, {"free_bytes": usage.f_bavail * usage.f_frsize}
    except OSError as exc:
        return False, {"error": f"not writable: {exc.strerror or type(exc).__name__}"}


def check_ffmpeg() -> tuple[bool, dict]:
    from audiocache.transcoder import FFmpegMissing
    from audiocache.transcoder import check_ffmpeg as probe

    now = time.monotonic()
    key = settings.AUDIO_CACHE_FFMPEG
    with _ffmpeg_lock:
        cached = _ffmpeg_cache.get(key)
        if cached and now - cached[0] < FFMPEG_CHECK_TTL:
            return cached[1]
    try:
        result = (True, {"version": probe().removeprefix("ffmpeg version ").split(" ")[0], "libmp3lame": True})
    except FFmpegMissing as exc:
        result = (False, {"error": str(exc), "libmp3lame": False})
    with _ffmpeg_lock:
        _ffmpeg_cache[key] = (now, result)
    return result


def check_redis() -> tuple[bool, dict] | None:
    """None when Redis is not configured (single node)."""
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
        return True, {}
    except Exception as exc:
        return False, {"error": type(exc).__name__}


def queue_state() -> tuple[bool, dict]:
    from audiocache.models import CacheTask

    try:
        counts = dict(
            CacheTask.objects.filter(status__in=CacheTask.ACTIVE_STATUSES)
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        oldest = (
            CacheTask.objects.filter(status=CacheTask.Status.PENDING)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
    except Exception as exc:
        return False, {"error": type(exc).__name__}
    age = round((timezone.now() - oldest).total_seconds(), 1) if oldest else None
    return True, {
        "pending": counts.get("pending", 0),
        "running": counts.get("running", 0),
        "oldest_pending_seconds": age,
    }


def report() -> tuple[bool, dict]:
    checks = {"database": check_database()}
    if checks["database"][0]:
        checks["queue"] = queue_state()
    checks["cache_dir"] = check_cache_dir()
    checks["ffmpeg"] = check_ffmpeg()
    redis_check = check_redis()
    if redis_check is not None:
        checks["redis"] = redis_check
    failing = [name for name, (ok, _details) in checks.items() if not ok]
    body = {
        "status": "ok" if not failing else "unhealthy",
        "failing": failing,
        "checks": {name: {"ok": ok, **details} for name, (ok, details) in checks.items()},
    }
    return not failing, body
