"""Rendition hit counts without a database write per request.

Hits are counted in memory and written at most once a minute per rendition (by the request
that finds the minute over). A crash loses at most a minute of counts, never a rendition.
"""

import threading
import time

from django.db.models import F
from django.utils import timezone

from .models import CachedRendition

FLUSH_INTERVAL = 60.0

_lock = threading.Lock()
_pending: dict[int, int] = {}
_last_flush: dict[int, float] = {}


def record_hit(rendition_id: int) -> bool:
    """Count one hit; returns True when this call wrote the counts to the database."""
    now = time.monotonic()
    with _lock:
        _pending[rendition_id] = _pending.get(rendition_id, 0) + 1
        if now - _last_flush.get(rendition_id, -FLUSH_INTERVAL) < FLUSH_INTERVAL:
            return False
        hits = _pending.pop(rendition_id)
        _last_flush[rendition_id] = now
    CachedRendition.objects.filter(pk=rendition_id).update(
        hit_count=F("hit_count") + hits, last_accessed_at=timezone.now()
    )
    return True


def reset() -> None:
    """Forget unwritten counts (tests)."""
    with _lock:
        _pending.clear()
        _last_flush.clear()
