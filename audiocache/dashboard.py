"""The cache dashboard's figures: aggregate queries only, so the page costs the same few
queries with 100 renditions or 100,000."""

import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Max, Sum
from django.utils import timezone

from .models import CachedRendition, CacheTask, StreamDay
from .qualities import BITRATES
from .selectors import fresh_q

TOP = 10


def disk_usage(path: Path):
    """(total, used, free) bytes of the file system holding ``path``, or None."""
    try:
        return shutil.disk_usage(path if path.exists() else path.parent)
    except OSError:
        return None


def overview() -> dict:
    per_quality = {
        row["quality"]: row
        for row in CachedRendition.objects.values("quality").annotate(count=Count("id"), bytes=Sum("size")).order_by()
    }
    qualities = [
        {"name": name, "bitrate": BITRATES[name], **per_quality.get(name, {"count": 0, "bytes": 0})}
        for name in BITRATES
    ]
    total_bytes = sum(q["bytes"] or 0 for q in qualities)
    total_count = sum(q["count"] for q in qualities)
    stale = CachedRendition.objects.exclude(fresh_q()).aggregate(count=Count("id"), bytes=Sum("size"))

    today = timezone.localdate()
    streams = StreamDay.objects.filter(day__gt=today - timedelta(days=30)).aggregate(
        hits=Sum("hits"), misses=Sum("misses"), bypasses=Sum("bypasses")
    )
    streams = {key: value or 0 for key, value in streams.items()}
    answered = streams["hits"] + streams["misses"]
    streams["hit_rate"] = (100 * streams["hits"] / answered) if answered else None
    today_row = StreamDay.objects.filter(day=today).first()

    tasks = dict(CacheTask.objects.values_list("status").annotate(n=Count("id")).order_by())
    oldest_pending = (
        CacheTask.objects.filter(status=CacheTask.Status.PENDING).order_by("created_at").values("created_at").first()
    )

    cap = settings.AUDIO_CACHE_MAX_SIZE
    cache_dir = Path(settings.AUDIO_CACHE_DIR)
    return {
        "qualities": qualities,
        "total_bytes": total_bytes,
        "total_count": total_count,
        "stale": stale,
        "cap": cap,
        "cap_percent": min(100, round(100 * total_bytes / cap)) if cap else None,
        "max_age_days": settings.AUDIO_CACHE_MAX_AGE_DAYS,
        "disk": disk_usage(cache_dir),
        "cache_dir": cache_dir,
        "streams": streams,
        "today": today_row,
        "tasks": [(status, tasks.get(status, 0)) for status in CacheTask.Status.values],
        "oldest_pending_at": oldest_pending["created_at"] if oldest_pending else None,
        "oldest": CachedRendition.objects.select_related("track").order_by("created_at")[:TOP],
        "largest": CachedRendition.objects.select_related("track").order_by("-size")[:TOP],
        "failed": (
            CacheTask.objects.filter(status=CacheTask.Status.FAILED)
            .select_related("track")
            .order_by("-finished_at")[:TOP]
        ),
        "failed_count": tasks.get(CacheTask.Status.FAILED, 0),
        "last_rendition": CachedRendition.objects.aggregate(at=Max("created_at"))["at"],
    }
