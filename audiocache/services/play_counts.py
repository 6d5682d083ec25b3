"""Stream counts without a database write per request.

Rendition hits (hit count, last access) are counted in memory and written at most once a
minute per rendition, by the request that finds the minute over. Plays by outcome (hit,
miss, bypass; the dashboard's figures) are counted per day and format the same way, once a
minute per process, and on shutdown. A crash loses at most a minute of counts, never a rendition.
"""

import threading
import time
from collections import Counter

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ..models import CachedRendition, StreamDay

OUTCOMES = {"hit": "hits", "miss": "misses", "bypass": "bypasses"}

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


_plays: Counter = Counter()
_plays_flushed = [-FLUSH_INTERVAL]


def record_play(outcome: str, fmt: str) -> None:
    """Count one play (a GET from the start of the file) as ``hit``, ``miss`` or ``bypass`` of
    format ``fmt`` (the one asked for; ``qualities.ORIGINAL`` for a bypass)."""
    now = time.monotonic()
    with _lock:
        _plays[(timezone.localdate(), fmt, OUTCOMES[outcome])] += 1
        if now - _plays_flushed[0] < FLUSH_INTERVAL:
            return
        _plays_flushed[0] = now
    flush_plays()


def flush_plays() -> None:
    """Add the counted plays to the database (called once a minute, and at shutdown)."""
    with _lock:
        counts = dict(_plays)
        _plays.clear()
    rows: dict = {}
    for (day, fmt, field), n in counts.items():
        rows.setdefault((day, fmt), {})[field] = n
    for (day, fmt), fields in rows.items():
        updates = {field: F(field) + n for field, n in fields.items()}
        if not StreamDay.objects.filter(day=day, format=fmt).update(**updates):
            try:
                with transaction.atomic():
                    StreamDay.objects.create(day=day, format=fmt, **fields)
            except IntegrityError:  # another process created the row first
                StreamDay.objects.filter(day=day, format=fmt).update(**updates)


def reset() -> None:
    """Forget unwritten counts (tests)."""
    with _lock:
        _pending.clear()
        _last_flush.clear()
        _plays.clear()
        _plays_flushed[0] = -FLUSH_INTERVAL
