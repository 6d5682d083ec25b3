"""The reads of the audio cache: the door that views, pages, the admin, commands, health
checks and other apps use to look (decisions and writes are in ``audiocache.services``).

- the stream look-up: everything a play needs from the database in one query;
- freshness as rows say it, for lists and counts (files are only looked at when serving);
- a batch as pages show it: counts, log lines, snapshot, where to follow its events;
- the dashboard's figures, a track's cache explained (``cachedebug``), the queue's health.
"""

import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, F, Max, Q, Sum
from django.urls import reverse
from django.utils import timezone

from config.prepared import PreparedQuery
from mixtapes import sharing
from mixtapes.files import SourceState, SourceUnavailable, source_state
from mixtapes.models import Mixtape, MixtapeTrack, Track

from .events.payload import channel_for, outcome_line, payload
from .models import CacheBatch, CacheBatchItem, CachedRendition, CacheTask, StreamDay, StreamingPreference
from .qualities import FORMATS, ORIGINAL, Variant, all_variants, enabled_formats
from .queue import tasks
from .queue.batches import batch_counts
from .renditions import cache_file_name, is_fresh, is_plain_name, rendition_path
from .transcode.ffmpeg import DISK_FULL_TEXT, ENCODER_PROFILES, FFmpegMissing, check_ffmpeg

# --- The stream look-up -------------------------------------------------------------------------

# Database ids are signed 64-bit integers; a bigger number in a URL is simply unknown.
_MAX_ID = 2**63 - 1
_RENDITION_FIELDS = ("id", "file_name", "source_size", "source_mtime_ns", "encoder_profile")
# What progressive streaming needs to know whether a transcode's length can be planned.
_TRACK_LENGTH_FIELDS = ("duration", "sample_rate", "file_size", "file_mtime_ns")
_SQL: dict[tuple[str, str], tuple[str, list]] = {}


def _stream_sql() -> tuple[str, list]:
    """The stream query and its leading parameters, for this database and sharing mode."""
    key = (connection.vendor, sharing.mode())
    built = _SQL.get(key)
    if built is None:
        built = _SQL[key] = _build_stream_sql(key[1])
    return built


def _build_stream_sql(sharing_mode: str) -> tuple[str, list]:
    """One query for everything a play needs from the database: the track, whether a shared
    mixtape holds it (mixtapes/sharing.py), and its rendition row at the asked quality (NULLs
    when none).

    Written out because this answers every range request of every player: the ORM's three
    separate queries cost about 1 ms of query building per request."""
    q = connection.ops.quote_name
    t, mt, m, r, u = (
        q(model._meta.db_table) for model in (Track, MixtapeTrack, Mixtape, CachedRendition, get_user_model())
    )

    def col(model, name):
        return q(model._meta.get_field(name).column)

    track_id = f"{t}.{col(Track, 'id')}"
    # Only quoted table and column names of the models are formatted in; values are parameters.
    shared = (
        f"SELECT 1 FROM {mt} INNER JOIN {m} ON {m}.{col(Mixtape, 'id')} = {mt}.{col(MixtapeTrack, 'mixtape')}"  # noqa: S608
        f" WHERE {mt}.{col(MixtapeTrack, 'track')} = {track_id} AND {m}.{col(Mixtape, 'is_public')} = %s"
    )
    shared_params = [True]
    if sharing_mode == sharing.STAFF:
        shared += (
            f" AND EXISTS (SELECT 1 FROM {u} WHERE {u}.{col(get_user_model(), 'id')} = {m}.{col(Mixtape, 'owner')}"  # noqa: S608
            f" AND {u}.{col(get_user_model(), 'is_staff')} = %s)"
        )
        shared_params.append(True)
    is_shared = f"EXISTS ({shared})"
    if sharing_mode == sharing.NONE:
        is_shared, shared_params = "1 = 0", []
    columns = ", ".join(
        [
            track_id,
            f"{t}.{col(Track, 'path')}",
            f"{t}.{col(Track, 'is_lossless')}",
            *(f"{t}.{col(Track, f)}" for f in _TRACK_LENGTH_FIELDS),
            is_shared,
            *(f"{r}.{col(CachedRendition, f)}" for f in _RENDITION_FIELDS),
        ]
    )
    joined = (
        f"{t} LEFT OUTER JOIN {r} ON {r}.{col(CachedRendition, 'track')} = {track_id}"
        f" AND {r}.{col(CachedRendition, 'format')} = %s AND {r}.{col(CachedRendition, 'quality')} = %s"
    )
    return f"SELECT {columns} FROM {joined} WHERE {track_id} = %s", shared_params  # noqa: S608


def stream_lookup(track_id: int, variant: Variant | str) -> tuple[Track, bool, CachedRendition | None] | None:
    """``(track, on a shared mixtape, rendition row of the variant or None)``, or None for an
    unknown id. ``variant`` may be ``original``: no rendition row is looked for then.

    The rows are read fresh on every request (no caching: access follows the database at once);
    whether a rendition may be served is still decided by the files themselves."""
    if not 0 < track_id <= _MAX_ID:
        return None
    variant = None if variant == ORIGINAL else Variant.of(variant)
    fmt, quality = (variant.format, variant.quality) if variant else ("", ORIGINAL)
    with connection.cursor() as cursor:
        sql, shared_params = _stream_sql()
        cursor.execute(sql, [*shared_params, fmt, quality, track_id])
        row = cursor.fetchone()
    if row is None:
        return None
    lengths = len(_TRACK_LENGTH_FIELDS)
    track_values = {"id": row[0], "path": row[1], "is_lossless": bool(row[2])}
    track_values.update(zip(_TRACK_LENGTH_FIELDS, row[3 : 3 + lengths], strict=True))
    track = _instance(Track, track_values)
    public, rendition_row = row[3 + lengths], row[4 + lengths :]
    rendition = None
    if rendition_row[0] is not None:
        values = {"track_id": track.pk, "format": fmt, "quality": quality,
                  **dict(zip(_RENDITION_FIELDS, rendition_row, strict=True))}  # fmt: skip
        rendition = _instance(CachedRendition, values)
    return track, bool(public), rendition


def _instance(model, values: dict):
    """A model instance as the ORM builds it from a row: the other fields are deferred."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(connection.alias, names, [values[name] for name in names])


# A listener's streaming format, read for every stream request that names none: prepared once.
_PREFERENCE = PreparedQuery(
    lambda user_id: StreamingPreference.objects.filter(user_id=user_id).values_list("format"),
    marker=987_654_321_987,
)


def streaming_preference(user_id: int) -> str | None:
    """The listener's "Streaming format" choice, None when they never made one."""
    rows = _PREFERENCE.rows(user_id)
    return rows[0][0] if rows else None


# --- Freshness as the rows say it -----------------------------------------------------------------


def fresh_q() -> Q:
    """Rendition rows that match their track as last scanned and today's encoder settings
    (each format's own)."""
    profiles = Q()
    for fmt, profile in ENCODER_PROFILES.items():
        profiles |= Q(format=fmt, encoder_profile=profile)
    return profiles & Q(source_size=F("track__file_size"), source_mtime_ns=F("track__file_mtime_ns"))


def fresh_renditions(variant: Variant | str | None = None):
    """Renditions whose row says they are fresh (``fresh_q``). The file on disk is not looked
    at: good for listing, not for serving."""
    renditions = CachedRendition.objects.filter(fresh_q())
    if variant is None:
        return renditions
    return renditions.filter(**Variant.of(variant).lookup)


def ready_counts(mixtapes, variant: Variant | str) -> dict[int, int]:
    """Mixtape id -> how many of its entries stream from the cache in ``variant`` or need no
    cache (lossy sources). One aggregate query."""
    cached_tracks = fresh_renditions(variant).values("track_id")
    rows = (
        MixtapeTrack.objects.filter(mixtape__in=mixtapes)
        .filter(Q(track__is_lossless=False) | Q(track_id__in=cached_tracks))
        .values("mixtape_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["mixtape_id"]: row["n"] for row in rows}


def cached_qualities(track_ids) -> dict[int, list[str]]:
    """Track id -> the variants it has a fresh rendition of (``medium``, ``opus:low``), MP3's
    first, best first."""
    found: dict[int, list[Variant]] = {track_id: [] for track_id in track_ids}
    rows = fresh_renditions().filter(track_id__in=list(found)).values_list("track_id", "format", "quality")
    for track_id, fmt, quality in rows:
        found[track_id].append(Variant(fmt, quality))
    order = {variant: n for n, variant in enumerate(all_variants(every=True))}
    return {track_id: [str(v) for v in sorted(variants, key=order.get)] for track_id, variants in found.items()}


# --- Batches as pages show them --------------------------------------------------------------------


def batch_to_follow(user, mixtape, batch_id=None) -> CacheBatch | None:
    """The batch the editor should show: the one named in the URL (if it is this user's batch
    for this mixtape, finished or not), else this user's newest unfinished one for it."""
    batches = CacheBatch.objects.filter(mixtape=mixtape, created_by=user)
    if batch_id:
        try:
            named = batches.filter(pk=uuid.UUID(str(batch_id))).first()
        except ValueError:
            named = None
        if named is not None:
            return named
    return batches.filter(finished_at__isnull=True).order_by("-created_at").first()


def batch_log(batch: CacheBatch, limit: int = 500) -> list[dict]:
    """Outcomes reached so far, as the progress modal's log lines (for a page opened mid-batch)."""
    items = (
        CacheBatchItem.objects.filter(batch=batch)
        .select_related("track", "task")
        .only(
            "format",
            "quality",
            "outcome",
            "note",
            "track__title",
            "track__artist",
            "track__path",
            "task__status",
            "task__error",
        )
        .order_by("id")[:limit]
    )
    lines = []
    for item in items:
        status = item.task.status if item.task is not None else item.outcome
        if status in ("", CacheTask.Status.PENDING, CacheTask.Status.RUNNING):
            continue
        verb = {"done": "Cached", "failed": "Failed", "skipped": "Skipped", "cancelled": "Cancelled"}.get(
            status, status
        )
        reason = item.note or (item.task.error_line if item.task is not None else "")
        lines.append(
            {
                "track_id": item.track_id,
                "quality": str(item.variant),
                "status": {"done": "completed", "cancelled": "skipped"}.get(status, status),
                "message": outcome_line(item.track, str(item.variant), verb, reason),
            }
        )
    return lines


def batch_snapshot(batch: CacheBatch) -> dict:
    """The batch as it stands, in the events' schema (step "snapshot")."""
    counts = batch_counts(batch)
    if batch.finished_at is not None:
        status, message = counts.final_status, str(counts)
    else:
        status, message = "in_progress", f"{counts.done} of {counts.total} done ({counts})"
    return payload(batch.pk, "snapshot", status, message, counts)


def batch_page_state(batch: CacheBatch) -> dict:
    """What a page needs to show a batch and then follow it without a gap: the event stream's
    position first, then the state and the log lines so far; the stream is opened from that
    position, so anything that happens while the page loads is replayed, not lost."""
    from django_eventstream.eventstream import get_current_event_id

    last_event_id = get_current_event_id([channel_for(batch.pk)])
    events_url = reverse("batch-events", args=[batch.pk]) + "?" + urlencode({"lastEventId": last_event_id})
    return {"events_url": events_url, "snapshot": batch_snapshot(batch), "log": batch_log(batch)}


def batch_failures(batch: CacheBatch, limit: int = 20) -> list[tuple[str, str, str]]:
    """``(track path, quality, last line of the error)`` of the batch's failed tasks."""
    items = batch.items.filter(task__status=CacheTask.Status.FAILED).select_related("track", "task")[:limit]
    return [(item.track.path, str(item.variant), item.task.error_line) for item in items]


# --- The dashboard -------------------------------------------------------------------------------------

TOP = 10


def disk_usage(path: Path):
    """(total, used, free) bytes of the file system holding ``path``, or None."""
    try:
        return shutil.disk_usage(path if path.exists() else path.parent)
    except OSError:
        return None


@dataclass(frozen=True)
class MachineTrouble:
    """Transcodes waiting because the cache folder failed them (not their sources)."""

    waiting: int
    reason: str  # the newest failure's message
    disk_full: bool

    @property
    def title(self) -> str:
        return "Cache disk full" if self.disk_full else "Cache folder not writable"


def machine_trouble() -> MachineTrouble | None:
    """One clear state for the dashboard: the cache folder is full or unwritable, and this many
    transcodes wait for it (they resume by themselves, attempts intact, once it is fixed)."""
    waiting = CacheTask.objects.filter(status=CacheTask.Status.PENDING, error__startswith=tasks.WAITING_PREFIX)
    newest = waiting.order_by("-available_at").values_list("error", flat=True).first()
    if newest is None:
        return None
    reason = newest.removeprefix(tasks.WAITING_PREFIX)
    return MachineTrouble(waiting=waiting.count(), reason=reason, disk_full=any(t in reason for t in DISK_FULL_TEXT))


def cache_size() -> int:
    """Bytes held by every rendition, from the rows (no walk of the folder)."""
    return CachedRendition.objects.aggregate(total=Sum("size"))["total"] or 0


_OUTCOMES = ("hits", "misses", "bypasses")


def _stream_figures(today) -> tuple[dict, dict | None]:
    """The last 30 days' plays by outcome, in all and per format (bypasses send the original:
    no format of theirs), and today's, or None when nothing was played today: one query."""
    is_today = Q(day=today)
    rows = list(
        StreamDay.objects.filter(day__gt=today - timedelta(days=30))
        .values("format")
        .annotate(
            **{f"month_{outcome}": Sum(outcome) for outcome in _OUTCOMES},
            **{f"today_{outcome}": Sum(outcome, filter=is_today) for outcome in _OUTCOMES},
        )
        .order_by()
    )
    month = {row["format"]: {outcome: row[f"month_{outcome}"] for outcome in _OUTCOMES} for row in rows}
    streams = {outcome: sum(counts[outcome] for counts in month.values()) for outcome in _OUTCOMES}
    streams["hit_rate"] = _hit_rate(streams["hits"], streams["misses"])
    streams["by_format"] = [
        {"label": spec.label, "hits": counts["hits"], "misses": counts["misses"],
         "hit_rate": _hit_rate(counts["hits"], counts["misses"])}
        for fmt, spec in FORMATS.items()  # in the table's order: MP3, Opus, AAC
        if (counts := month.get(fmt))
    ]  # fmt: skip
    played_today = [row for row in rows if row["today_hits"] is not None]
    today_counts = {outcome: sum(row[f"today_{outcome}"] for row in played_today) for outcome in _OUTCOMES}
    return streams, today_counts if played_today else None


def _hit_rate(hits: int, misses: int) -> float | None:
    return 100 * hits / (hits + misses) if hits + misses else None


def dashboard() -> dict:
    """The cache dashboard's figures: aggregate queries only, so the page costs the same few
    queries with 100 renditions or 100,000."""
    per_variant = {
        Variant(row["format"], row["quality"]): row
        for row in CachedRendition.objects.values("format", "quality")
        .annotate(count=Count("id"), bytes=Sum("size"), hits=Sum("hit_count"))
        .order_by()
    }
    # One row per variant that may be made or is held (a format turned off keeps its files
    # until they are purged): name, label, count, bytes and hits.
    shown = _shown_variants(set(per_variant))
    empty = {"count": 0, "bytes": 0, "hits": 0}
    qualities = [
        {"name": v.quality, "format": v.format, "format_label": FORMATS[v.format].label, "label": v.label,
         "bitrate": v.bitrate,
         **{k: per_variant.get(v, empty)[k] for k in empty}}
        for v in shown
    ]  # fmt: skip
    total_bytes = sum(q["bytes"] or 0 for q in qualities)
    total_count = sum(q["count"] for q in qualities)
    stale = CachedRendition.objects.exclude(fresh_q()).aggregate(count=Count("id"), bytes=Sum("size"))

    today = timezone.localdate()
    streams, today_row = _stream_figures(today)

    task_counts = dict(CacheTask.objects.values_list("status").annotate(n=Count("id")).order_by())
    oldest_pending = (
        CacheTask.objects.filter(status=CacheTask.Status.PENDING).order_by("created_at").values("created_at").first()
    )

    cap = settings.AUDIO_CACHE_MAX_SIZE
    cache_dir = Path(settings.AUDIO_CACHE_DIR)
    return {
        "machine_trouble": machine_trouble(),
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
        "tasks": [(status, task_counts.get(status, 0)) for status in CacheTask.Status.values],
        "oldest_pending_at": oldest_pending["created_at"] if oldest_pending else None,
        "oldest": CachedRendition.objects.select_related("track").order_by("created_at")[:TOP],
        "largest": CachedRendition.objects.select_related("track").order_by("-size")[:TOP],
        "failed": (
            CacheTask.objects.filter(status=CacheTask.Status.FAILED)
            .select_related("track")
            .order_by("-finished_at")[:TOP]
        ),
        "failed_count": task_counts.get(CacheTask.Status.FAILED, 0),
        "last_rendition": CachedRendition.objects.aggregate(at=Max("created_at"))["at"],
    }


def _shown_variants(held: set[Variant]) -> list[Variant]:
    """Every variant the cache may make, and any other it still holds (a format turned off
    keeps its files until they are purged), in the usual order."""
    enabled = enabled_formats()
    return [v for v in all_variants(every=True) if v.format in enabled or v in held]


# --- One track's cache, explained (cachedebug) ------------------------------------------------------------


@dataclass(frozen=True)
class QualityReport:
    quality: str  # the variant, written out: "medium", "opus:low"
    expected_name: str
    file_size: int | None  # None: no file under the expected name
    rendition: CachedRendition | None
    fresh: bool


@dataclass(frozen=True)
class TrackCacheReport:
    track: Track
    source: SourceState | None
    source_problem: str
    qualities: list[QualityReport]
    recent_tasks: list[CacheTask]


def track_cache_report(track: Track, recent: int = 5) -> TrackCacheReport:
    """A track's file now, its expected cache file and rendition row per quality (fresh or
    not, and why), and its recent tasks."""
    cache_dir = Path(settings.AUDIO_CACHE_DIR)
    try:
        state, problem = source_state(track), ""
    except SourceUnavailable as exc:
        state, problem = None, str(exc)
    renditions = {r.variant: r for r in CachedRendition.objects.filter(track=track)}
    reports = []
    for variant in _shown_variants(set(renditions)):
        rendition = renditions.get(variant)
        # A row names its file (an MP3 of the seed's naming keeps its old name); else the name it would get.
        expected = rendition.file_name if rendition is not None else cache_file_name(track.path, variant)
        try:
            file_size = os.stat(cache_dir / expected).st_size if is_plain_name(expected) else None
        except OSError:
            file_size = None
        fresh = (
            rendition is not None
            and state is not None
            and rendition_path(rendition, cache_dir) is not None
            and is_fresh(rendition, state, cache_dir)
        )
        reports.append(QualityReport(str(variant), expected, file_size, rendition, fresh))
    tasks = list(CacheTask.objects.filter(track=track).order_by("-created_at")[:recent])
    return TrackCacheReport(track, state, problem, reports, tasks)


# --- Health (/healthz) ----------------------------------------------------------------------------------

FFMPEG_CHECK_TTL = 60.0  # seconds: the ffmpeg check starts a process; a health probe runs every 30 s
_ffmpeg_checked: dict = {}
_ffmpeg_lock = threading.Lock()


def health_checks(*, database_up: bool = True) -> dict[str, tuple[bool, dict]]:
    """The cache's parts of /healthz, each ``(ok, details)``: the queue (when the database is
    up), the cache folder and ffmpeg. Never raises, and says nothing secret (no paths but what
    an operator configured, no URLs)."""
    checks = {"queue": _queue_health()} if database_up else {}
    return {**checks, "cache_dir": _cache_dir_health(), "ffmpeg": _ffmpeg_health()}


def _queue_health() -> tuple[bool, dict]:
    """Active tasks by status and the age of the oldest pending one."""
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


def _cache_dir_health() -> tuple[bool, dict]:
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


def _ffmpeg_health() -> tuple[bool, dict]:
    now = time.monotonic()
    key = settings.AUDIO_CACHE_FFMPEG
    with _ffmpeg_lock:
        cached = _ffmpeg_checked.get(key)
        if cached and now - cached[0] < FFMPEG_CHECK_TTL:
            return cached[1]
    try:
        result = (True, {"version": check_ffmpeg().removeprefix("ffmpeg version ").split(" ")[0], "libmp3lame": True})
    except FFmpegMissing as exc:
        result = (False, {"error": str(exc), "libmp3lame": False})
    with _ffmpeg_lock:
        _ffmpeg_checked[key] = (now, result)
    return result
