"""Taking the best pending task for one worker, the way the database allows.

A claim must hand each task to exactly one worker, however many workers on however many
hosts ask at once. PostgreSQL locks the row it takes and skips rows others hold
(``postgresql.py``); SQLite has no row locks, so a conditional ``UPDATE`` that must change
exactly one row decides (``sqlite.py``, which any other database uses too). Both take the
same row: highest priority, then the oldest available.
"""

from django.db import connection
from django.db.models import F
from django.utils import timezone

from ...models import CacheTask
from . import postgresql, sqlite

_BY_VENDOR = {"postgresql": postgresql}


def claim(worker_id: str, lease_until) -> CacheTask | None:
    """Take the best pending task for ``worker_id`` (running, leased until ``lease_until``)."""
    now = timezone.now()
    claimable = CacheTask.objects.filter(status=CacheTask.Status.PENDING, available_at__lte=now).order_by(
        "-priority", "available_at", "id"
    )
    running = {
        "status": CacheTask.Status.RUNNING,
        "worker_id": worker_id,
        "lease_expires_at": lease_until,
        "started_at": now,
        "progress": 0.0,
        "temp_name": "",  # the previous attempt's file is not this one's
        "planned_frames": None,
        "attempts": F("attempts") + 1,
    }
    task_id = _BY_VENDOR.get(connection.vendor, sqlite).take(claimable, running)
    if task_id is None:
        return None
    return CacheTask.objects.select_related("track").get(pk=task_id)
