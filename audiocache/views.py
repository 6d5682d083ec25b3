import errno
import logging
import os
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import Http404, HttpResponseBadRequest, HttpResponseForbidden
from django.utils import timezone
from django.views.decorators.http import require_safe
from django_eventstream.views import events

from mixtapes.models import Mixtape, MixtapeTrack, Track

from . import progressive, queue, stats
from .cache import SourceUnavailable, is_fresh, planned_frames, rendition_path, source_path, source_state
from .channels import may_follow
from .models import CacheBatch, CachedRendition, CacheTask
from .progress import channel_for, sse_snapshot
from .qualities import ORIGINAL, REQUESTABLE
from .selectors import batch_snapshot
from .streaming import accel_redirect, content_type_for, serve_file

logger = logging.getLogger(__name__)

# open() errors meaning the track's path holds no readable file: gone, a folder, no permission, a
# symlink loop, a file where a folder should be, a name too long, a FIFO or device without a reader.
_NO_FILE_HERE = {
    errno.ENOENT,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.ELOOP,
    errno.ENOTDIR,
    errno.ENAMETOOLONG,
    errno.ENXIO,
}

# Internal nginx locations (deploy/nginx.conf) for AUDIO_CACHE_SENDFILE=nginx.
NGINX_CACHE_PREFIX = "/_protected/cache"
NGINX_MUSIC_PREFIX = "/_protected/music"


# Database ids are signed 64-bit integers; a bigger number in a URL is simply unknown.
_MAX_ID = 2**63 - 1
_RENDITION_FIELDS = ("id", "file_name", "source_size", "source_mtime_ns", "encoder_profile")
# What progressive streaming needs to know whether a transcode's length can be planned.
_TRACK_LENGTH_FIELDS = ("duration", "sample_rate", "file_size", "file_mtime_ns")


_SQL: dict[str, str] = {}


def _stream_sql() -> str:
    sql = _SQL.get(connection.vendor)
    if sql is None:
        sql = _SQL[connection.vendor] = _build_stream_sql()
    return sql


def _build_stream_sql() -> str:
    """One query for everything the stream view needs from the database: the track, whether a
    public mixtape holds it, and its rendition row at the asked quality (NULLs when none).

    Written out because this view answers every range request of every player: the ORM's
    three separate queries cost about 1 ms of query building per request."""
    q = connection.ops.quote_name
    t, mt, m, r = (q(model._meta.db_table) for model in (Track, MixtapeTrack, Mixtape, CachedRendition))

    def col(model, name):
        return q(model._meta.get_field(name).column)

    track_id = f"{t}.{col(Track, 'id')}"
    # Only quoted table and column names of the models are formatted in; values are parameters.
    public = (
        f"SELECT 1 FROM {mt} INNER JOIN {m} ON {m}.{col(Mixtape, 'id')} = {mt}.{col(MixtapeTrack, 'mixtape')}"  # noqa: S608
        f" WHERE {mt}.{col(MixtapeTrack, 'track')} = {track_id} AND {m}.{col(Mixtape, 'is_public')} = %s"
    )
    columns = ", ".join(
        [
            track_id,
            f"{t}.{col(Track, 'path')}",
            f"{t}.{col(Track, 'is_lossless')}",
            *(f"{t}.{col(Track, f)}" for f in _TRACK_LENGTH_FIELDS),
            f"EXISTS ({public})",
            *(f"{r}.{col(CachedRendition, f)}" for f in _RENDITION_FIELDS),
        ]
    )
    joined = (
        f"{t} LEFT OUTER JOIN {r} ON {r}.{col(CachedRendition, 'track')} = {track_id}"
        f" AND {r}.{col(CachedRendition, 'quality')} = %s"
    )
    return f"SELECT {columns} FROM {joined} WHERE {track_id} = %s"  # noqa: S608


def stream_lookup(track_id: int, quality: str) -> tuple[Track, bool, CachedRendition | None] | None:
    """``(track, on a public mixtape, rendition row at quality or None)``, or None for an unknown id.

    The rows are read fresh on every request (no caching: access follows the database at once);
    whether a rendition may be served is still decided by the files themselves (``is_fresh``)."""
    if not 0 < track_id <= _MAX_ID:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_stream_sql(), [True, quality, track_id])
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
        values = {"track_id": track.pk, "quality": quality, **dict(zip(_RENDITION_FIELDS, rendition_row, strict=True))}
        rendition = _instance(CachedRendition, values)
    return track, bool(public), rendition


def _instance(model, values: dict):
    """A model instance as the ORM builds it from a row: the other fields are deferred."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(connection.alias, names, [values[name] for name in names])


@require_safe
def stream(request, track_id: int):
    """``GET/HEAD /stream/<id>/?quality=high|medium|low|original``: a rendition or the original, with ranges."""
    quality = request.GET.get("quality", settings.AUDIO_CACHE_DEFAULT_QUALITY)
    if quality not in REQUESTABLE:
        return HttpResponseBadRequest(
            f"Unknown quality {quality[:40]!r}: use one of {', '.join(REQUESTABLE)}.", content_type="text/plain"
        )
    found = stream_lookup(track_id, quality)
    if found is None:
        raise Http404("No such track.")
    track, public, rendition = found
    if not public and not request.user.is_authenticated:
        raise Http404("No such track.")  # not 403: do not confirm that a private track exists

    wants_rendition = settings.AUDIO_CACHE_ENABLED and quality != ORIGINAL and track.is_lossless
    if not wants_rendition:
        return _counted(request, _serve_original(request, track, public, "bypass"), "bypass")
    source = _current_source(track)
    response = _serve_hit(request, track, rendition, source, public)
    if response is not None:
        return response
    followable = _followable(track, source)
    # One look at the queue serves both: a transcode being written is followed, a task another
    # listener queued is joined without the enqueue's checks and writes.
    task = queue.active_task(track.pk, quality)
    response = _serve_progressive(request, progressive.follow(task), public) if followable else None
    if response is not None:
        return response
    if task is None or task.priority < CacheTask.PRIORITY_PLAY:
        # A miss: make it at play priority (a failed source stays quarantined).
        task = queue.enqueue([track], [quality], priority=CacheTask.PRIORITY_PLAY).get((track.pk, quality))
    if task == queue.ALREADY_CACHED:  # finished since the look-up above
        return _serve_latest(request, track, quality, public)
    if followable and isinstance(task, CacheTask) and _may_wait(request, task):
        return _wait_then_serve(request, track, quality, task.pk, public)
    return _counted(request, _serve_original(request, track, public, "miss"), "miss")


def _current_source(track):
    try:
        return source_state(track)
    except SourceUnavailable:
        return None  # _serve_original says what is wrong


def _serve_hit(request, track, rendition, source, public):
    """The fresh rendition, or None."""
    if source is None or rendition is None or not is_fresh(rendition, source, Path(settings.AUDIO_CACHE_DIR)):
        return None
    response = _serve_rendition(request, track, rendition, public)
    if response is None:
        return None
    stats.record_hit(rendition.pk)
    return _counted(request, response, "hit")


def _followable(track, source) -> bool:
    """A transcode of this track can be streamed while it is written (its length can be planned)."""
    return settings.AUDIO_CACHE_PROGRESSIVE and source is not None and planned_frames(track, source) is not None


def _serve_latest(request, track, quality, public):
    """After a wait: the rendition or transcode as they are now, else the original."""
    found = stream_lookup(track.pk, quality)
    source = _current_source(track)
    response = _serve_hit(request, track, found[2] if found is not None else None, source, public)
    if response is None and _followable(track, source):
        response = _serve_progressive(request, progressive.follow(queue.active_task(track.pk, quality)), public)
    return response or _counted(request, _serve_original(request, track, public, "miss"), "miss")


def _may_wait(request, task) -> bool:
    """Wait for a followable transcode only for the start of a play (the first bytes, or the
    player's HEAD) or while it is being written: a later range then comes from a listener
    following it, who must not get the original's bytes in the moment between its publication
    and its row (it gets the finished file). A seek into an original being served, while the
    task waits for a worker, never waits."""
    if not settings.AUDIO_CACHE_PROGRESSIVE_WAIT:
        return False
    return _from_the_start(request) or task.status == CacheTask.Status.RUNNING


def _counted(request, response, outcome: str):
    _count_play(request, outcome)
    return response


def _serve_progressive(request, following, public):
    """The transcode being written, followed (a miss that plays the MP3 at once), or None."""
    if following is None:
        return None
    return _counted(request, progressive.serve(request, following, _headers(public, "progressive")), "miss")


def _wait_then_serve(request, track, quality, task_id, public):
    """Wait (at most AUDIO_CACHE_PROGRESSIVE_WAIT) for the transcode to start writing, then
    follow it; if it does not, answer as without waiting: the finished rendition or the original."""

    def answer(following):
        return _serve_progressive(request, following, public) or _serve_latest(request, track, quality, public)

    if not getattr(request, "stream_wait_async", False):
        return answer(progressive.wait_to_follow(task_id))

    async def resolve():
        # Under the ASGI stream handler: wait on the event loop, each look one short hop to the
        # thread that holds the database connection.
        run_sync = sync_to_async(lambda fn, *args: fn(*args), thread_sensitive=True)
        following = await progressive.await_to_follow(task_id, run_sync)
        return await run_sync(answer, following)

    return progressive.PendingResponse(resolve)


def _from_the_start(request) -> bool:
    """No Range, or one from byte 0: what a player asks for when a play starts."""
    return request.headers.get("Range", "bytes=0-").replace(" ", "").startswith("bytes=0-")


def _count_play(request, outcome: str) -> None:
    """A play is a GET from the start of the file; a player's later range requests (seeks,
    buffering) are the same play and are not counted again."""
    if request.method == "GET" and _from_the_start(request):
        stats.record_play(outcome)


def _headers(public: bool, cache_state: str) -> dict:
    headers = {"X-Audio-Cache": cache_state}
    scope = "public" if public else "private"
    # On a miss the same URL will soon answer with the finished MP3: let caches revalidate (the ETag differs).
    fresh_for = "no-cache" if cache_state in ("miss", "progressive") else "max-age=86400"
    headers["Cache-Control"] = f"{scope}, {fresh_for}"
    if not public:
        headers["Vary"] = "Cookie"  # the answer depends on who is logged in
    return headers


def _serve_rendition(request, track, rendition, public):
    path = rendition_path(rendition)  # fresh renditions always have one; checked again all the same
    if path is None:
        return None
    headers = _headers(public, "hit")
    if settings.AUDIO_CACHE_SENDFILE == "nginx":
        return accel_redirect(NGINX_CACHE_PREFIX, path.name, "audio/mpeg", headers)
    try:
        return serve_file(request, str(path), salt=f"r:{path.name}", content_type="audio/mpeg", headers=headers)
    except FileNotFoundError:
        return None  # evicted between the freshness check and the open: serve the original


def _serve_original(request, track, public, cache_state):
    try:
        path = str(source_path(track))  # resolved and checked to be inside MUSIC_ROOT
    except SourceUnavailable:
        logger.warning("track %s points outside MUSIC_ROOT; refused", track.pk)
        raise Http404("No such track.") from None
    headers = _headers(public, cache_state)
    content_type = content_type_for(track.path)
    try:
        if settings.AUDIO_CACHE_SENDFILE == "nginx":
            if not os.path.isfile(path):
                raise FileNotFoundError(path)
            relative = os.path.relpath(path, os.path.realpath(settings.MUSIC_ROOT))
            return accel_redirect(NGINX_MUSIC_PREFIX, relative, content_type, headers)
        return serve_file(request, path, salt=f"o:{track.path}", content_type=content_type, headers=headers)
    except OSError as exc:
        # Found by tests/test_hostile_input.py: a file that is a symlink loop (ELOOP) escaped as a 500.
        # Only errors that say "this path holds no readable file" mean missing; others (EMFILE...) stay errors.
        if (
            not isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError)
            and exc.errno not in _NO_FILE_HERE
        ):
            raise
        Track.objects.filter(pk=track.pk, missing_since__isnull=True).update(missing_since=timezone.now())
        raise Http404("The audio file is missing; rescan the library.") from None


def batch_events(request, batch_id):
    """``/events/batches/<id>/``: the batch's progress as Server-Sent Events.

    403 for anonymous users and for batches started by someone else (staff may read all).
    A new client gets a snapshot of the batch first; a reconnecting one (Last-Event-ID) gets
    the stored events it missed.
    """
    if not request.user.is_authenticated:
        return HttpResponseForbidden("Log in to follow this batch.", content_type="text/plain")
    batch = CacheBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        raise Http404("No such batch.")
    if not may_follow(request.user, batch):
        return HttpResponseForbidden("This batch belongs to someone else.", content_type="text/plain")
    resuming = request.META.get("HTTP_LAST_EVENT_ID") or request.GET.get("lastEventId")
    response = events(request, channels=[channel_for(batch_id)])
    if resuming or not getattr(response, "streaming", False):
        return response  # django-eventstream replays what a reconnecting client missed
    # A new client first gets the batch as it is now, then live events: a page opened after
    # the batch finished still shows its final state.
    snapshot = sse_snapshot(batch_snapshot(batch))
    live = response.streaming_content

    async def with_snapshot():
        yield snapshot
        async for chunk in live:
            yield chunk

    response.streaming_content = with_snapshot()
    return response
