"""What /healthz checks: each check returns (ok, details) and never raises.

No secrets in the answer: no URLs, passwords, paths outside what an operator configured.
The database and Redis are the project's; the queue, the cache folder and ffmpeg are the
audio cache's own checks (``audiocache.selectors.health_checks``).
"""

from django.conf import settings
from django.db import connection

from audiocache.selectors import health_checks


def check_database() -> tuple[bool, dict]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, {"vendor": connection.vendor}
    except Exception as exc:
        return False, {"error": type(exc).__name__}


# Parts the app works without, with less: Redis only carries progress events and wake-ups
# between processes (each process still serves its own, workers poll, browsers replay).
DEGRADING = frozenset({"redis"})


def check_redis() -> tuple[bool, dict] | None:
    """None when Redis is not configured (single node)."""
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
        return True, {}
    except Exception as exc:
        return False, {"error": type(exc).__name__}


def report(*, strict: bool = False) -> tuple[bool, dict]:
    """``(healthy, body)``. A failing degrading part (Redis) makes the status "degraded" and
    still healthy, so a load balancer keeps the app in service; ``strict`` (for monitoring)
    counts every failing part."""
    checks = {"database": check_database()}
    checks.update(health_checks(database_up=checks["database"][0]))
    redis_check = check_redis()
    if redis_check is not None:
        checks["redis"] = redis_check
    failing = [name for name, (ok, _details) in checks.items() if not ok]
    fatal = [name for name in failing if name not in DEGRADING]
    body = {
        "status": "unhealthy" if fatal else "degraded" if failing else "ok",
        "failing": failing,
        "checks": {name: {"ok": ok, **details} for name, (ok, details) in checks.items()},
    }
    return not (failing if strict else fatal), body
