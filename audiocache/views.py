"""The cache's two URLs: ``/stream/<id>/`` (audio, with ranges) and ``/events/batches/<id>/``
(a batch's progress as Server-Sent Events). Each parses the request, asks a service or a
selector, and renders."""

from dataclasses import replace

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_safe
from django_eventstream.views import events

from . import selectors, services
from .delivery import backends, fast_path, live
from .delivery.ranges import ByteRange
from .delivery.response import AudioFileResponse, FileBody
from .events import fanout
from .events.access import may_follow
from .events.payload import channel_for, sse_snapshot
from .models import CacheBatch
from .qualities import DEFAULT_FORMAT, ORIGINAL, REQUESTABLE
from .services import offset


@require_safe
def stream(request, track_id: int):
    """``GET/HEAD /stream/<id>/?quality=high|medium|low|original[&format=mp3|opus|aac|original]
    [&share=<token>]``: a rendition or the original, with ranges (``format``: see
    services/formats.py, which also reads the Accept header and the listener's preference;
    ``share``: a share link's token, for a private mixtape's track)."""
    quality = request.GET.get("quality", settings.AUDIO_CACHE_DEFAULT_QUALITY)
    asked = request.GET.get("format", "")
    if asked == ORIGINAL:
        quality = ORIGINAL
    if quality not in REQUESTABLE:
        return HttpResponseBadRequest(
            f"Unknown quality {quality[:40]!r}: use one of {', '.join(REQUESTABLE)}.", content_type="text/plain"
        )
    fmt = DEFAULT_FORMAT
    if quality != ORIGINAL:
        try:
            # The listener's preference (a session read) only when the request names no format.
            fmt = services.choose_format(
                asked, user=None if asked else request.user, accept=request.headers.get("Accept", "")
            )
        except services.UnknownFormat as exc:
            return HttpResponseBadRequest(str(exc), content_type="text/plain")
    response = play_response(request, track_id, quality, share_token=request.GET.get("share", "")[:64], fmt=fmt)
    if not asked and quality != ORIGINAL and response.get("X-Audio-Cache") != "bypass":
        # The format came from the Accept header or the listener's preference: caches must know.
        patch_vary_headers(response, ("Accept", "Cookie"))
    return response


def play_response(request, track_id: int, quality: str, user=None, *, share_token: str = "", fmt: str = "mp3"):
    """The answer to a play of ``track_id`` at ``quality`` (a name or "original") in format
    ``fmt`` by ``user`` (default: the request's): hit, progressive, miss or original, with
    ranges. Shared by ``/stream/`` and the Subsonic API's ``stream``, so both follow the same rules."""
    wanted = services.PlayRequest(
        track_id,
        quality,
        request.user if user is None else user,
        method=request.method,
        range_header=request.headers.get("Range"),
        may_wait=not fast_path.has_waited(),
        share_token=share_token,
        format=fmt,
    )
    try:
        answer = services.play(wanted)
        if isinstance(answer, services.WaitForTranscode):
            if fast_path.may_defer():
                return fast_path.TranscodeStarting(answer.task_id)  # it waits on the event loop, then asks again
            services.wait_for_transcode(answer.task_id)  # this request has a thread of its own (WSGI)
            answer = services.play(replace(wanted, may_wait=False))
    except services.NotPlayable as exc:
        raise Http404(str(exc)) from None
    return backends.respond(request, answer.file, _headers(answer))


def play_response_from(request, track_id: int, quality: str, seconds: float, user):
    """``play_response`` for a play that starts at ``seconds`` (services/offset.py): a 200 with
    the rest of the track, no ranges (the offset already chose where it starts)."""
    wanted = services.PlayRequest(track_id, quality, user, method=request.method)
    try:
        answer = offset.play_from(wanted, seconds)
    except services.NotPlayable as exc:
        raise Http404(str(exc)) from None
    if isinstance(answer, services.Play):
        return backends.respond(request, answer.file, _headers(answer))
    headers = {"Cache-Control": "private, no-store", "Accept-Ranges": "none"}
    if isinstance(answer, offset.FromFrame):
        stored = answer.file
        body = FileBody(
            stored.file,
            [ByteRange(answer.start, stored.stat.st_size - 1)] if answer.start < stored.stat.st_size else [],
        )
        response = AudioFileResponse(None if request.method == "HEAD" else body, status=200, content_type="audio/mpeg")
        response["Content-Length"] = str(body.length)
        if request.method == "HEAD":
            stored.file.close()
        return _with(response, {**headers, "X-Audio-Cache": "hit"})
    if request.method == "HEAD":
        answer.release()
        return _with(HttpResponse(content_type="audio/mpeg"), {**headers, "X-Audio-Cache": "miss"})
    return _with(live.mp3_response(answer.command, answer.release), {**headers, "X-Audio-Cache": "miss"})


def _with(response, headers: dict):
    for key, value in headers.items():
        response[key] = value
    return response


def _headers(answer: services.Play) -> dict:
    headers = {"X-Audio-Cache": answer.cache_state}
    scope = "public" if answer.public else "private"
    # On a miss the same URL will soon answer with the finished MP3: let caches revalidate (the ETag differs).
    fresh_for = "no-cache" if answer.cache_state in ("miss", "progressive") else "max-age=86400"
    headers["Cache-Control"] = f"{scope}, {fresh_for}"
    if not answer.public:
        headers["Vary"] = "Cookie"  # the answer depends on who is logged in
    return headers


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
    problem = _unusable_stream_parameters(request)
    if problem:
        return HttpResponseBadRequest(problem, content_type="text/plain")
    fanout.start_listening()  # events sent by other processes (REDIS_URL); once per process
    resuming = request.META.get("HTTP_LAST_EVENT_ID") or request.GET.get("lastEventId")
    response = events(request, channels=[channel_for(batch_id)])
    if resuming or not getattr(response, "streaming", False):
        return response  # django-eventstream replays what a reconnecting client missed
    # A new client first gets the batch as it is now, then live events: a page opened after
    # the batch finished still shows its final state.
    snapshot = sse_snapshot(selectors.batch_snapshot(batch))
    live = response.streaming_content

    async def with_snapshot():
        yield snapshot
        async for chunk in live:
            yield chunk

    response.streaming_content = with_snapshot()
    return response


MAX_LAST_EVENT_ID = 200  # "batch-<uuid>:<number>" is about 60 characters


def _unusable_stream_parameters(request) -> str:
    """What django-eventstream would choke on, said as a 400 before it starts a stream.

    ``es-meta`` (a signed token) and ``recover`` belong to a GRIP proxy (Pushpin, Fanout),
    which this app does not use; a ``Last-Event-ID`` is ``channel:number`` as we sent it, and a
    malformed one would start a 200 that breaks off at its first read."""
    if "es-meta" in request.GET or "recover" in request.GET:
        return "es-meta and recover are for a GRIP proxy, which this server does not use."
    last_ids = [request.META.get("HTTP_LAST_EVENT_ID", ""), *request.GET.getlist("lastEventId")]
    for last_id in filter(None, last_ids):
        if len(last_id) > MAX_LAST_EVENT_ID or not all(_is_event_position(part) for part in last_id.split(",")):
            return "Last-Event-ID must be an id this stream sent, such as batch-<id>:12."
    return ""


def _is_event_position(part: str) -> bool:
    channel, sep, number = part.partition(":")
    return bool(channel) and sep == ":" and number.isascii() and number.isdigit() and len(number) <= 18
