"""A short path through Django for ``/stream/`` under ASGI.

Every listener's player sends many small range requests. Through Django's normal ASGI stack
each one hops to a worker thread once per middleware (``process_request`` and
``process_response`` of each), about 5 ms per request on a small machine. This handler does
what those middlewares do for this one view (session, user, security headers) and runs the
view in a single hop. The view is the same function the URLconf uses, so access rules and
responses cannot differ; the full stack still serves it wherever this handler is not used
(WSGI, the test client).

The one hop also sends ``request_started`` (Django's handler would hop for it separately) and
keeps the thread's database connection for the next stream request instead of opening a new
one each time (see ``reuse_connections``). ``request_finished`` goes out when the response is
closed, on the event loop: its receivers only close what this context opened (the body's file,
caches); database connections are thread-bound and looked after in the hop.
"""

import asyncio
import contextlib
import re
import time
import weakref
from importlib import import_module

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import get_script_prefix
from django.core.handlers.exception import convert_exception_to_response, response_for_exception
from django.db import connections
from django.http import Http404
from django.middleware.security import SecurityMiddleware
from django.urls import set_script_prefix, set_urlconf
from django.utils.functional import SimpleLazyObject
from django.utils.log import log_response

from .progressive import PendingResponse, ended_early
from .streaming import in_page_cache, load_into_page_cache, read_chunks, sendfile_parts
from .views import stream
from .zerocopy import EXTENSION as ZEROCOPY_SEND

STREAM_PATH = re.compile(r"/stream/(\d+)/")

# Ranges shorter than this are read and sent as bytes even where the server could send them
# from the file: for a small range the copy costs less than setting up a sendfile (measured:
# 64 KiB ranges went from about 930 to 790 requests/s with sendfile, bench/range_serving.sh).
SENDFILE_MIN = 256 * 1024
# Larger ranges are sent in blocks of this size, each first checked to be in the page cache
# (and read into it in a thread if not): sendfile itself would wait for a slow disk on the
# event loop, holding up every other stream. Small enough that a block's pages are still
# cached when a slow client takes it (1 MiB is 25 s at 320 kbit/s).
SENDFILE_BLOCK = 1024 * 1024

# How long the stream thread keeps a database connection that the settings would close after
# every request (CONN_MAX_AGE=0, SQLite's default here). Connections with a CONN_MAX_AGE of
# their own keep it.
STREAM_CONN_MAX_AGE = 60.0


def _security_headers(request, response):
    # SecurityMiddleware's response headers (nosniff, referrer policy, HSTS when configured).
    return SecurityMiddleware(lambda r: response).process_response(request, response)


def stream_request(request):
    request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it (DisallowedHost -> 400)
    match = STREAM_PATH.fullmatch(request.path_info)
    if match is None:
        raise Http404("No such track.")
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    request.user = SimpleLazyObject(lambda: auth.get_user(request))
    request.stream_wait_async = True  # wait for a transcode to start on the event loop (resolve_pending)
    response = stream(request, int(match.group(1)))
    if isinstance(response, PendingResponse):
        return response
    return _security_headers(request, response)


_respond_or_error = convert_exception_to_response(stream_request)

# The raw connection each wrapper had when the stream thread last saw it: a different one
# was opened since, and gets its STREAM_CONN_MAX_AGE from now.
_seen: "weakref.WeakKeyDictionary[object, object]" = weakref.WeakKeyDictionary()


def reuse_connections() -> None:
    """After a stream request: keep this thread's database connections for the next one.

    Django's own checks decide what may be kept (``close_if_unusable_or_obsolete``): a
    connection left in a transaction or with autocommit changed is closed, one that saw an
    error is kept only if it still works, and none is kept past its age. A connection the
    settings would close at once (CONN_MAX_AGE=0) gets STREAM_CONN_MAX_AGE seconds instead.
    """
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        if raw is None:
            continue
        if conn.settings_dict["CONN_MAX_AGE"] == 0 and _seen.get(conn) is not raw:
            _seen[conn] = raw
            conn.close_at = now + STREAM_CONN_MAX_AGE
        conn.close_if_unusable_or_obsolete()


def respond(handler_class, request):
    """The synchronous part of a stream request, all in one thread hop."""
    # Django's handler sends this through a hop of its own; here it is the same thread.
    signals.request_started.send(sender=handler_class, scope=request.scope)
    set_urlconf(settings.ROOT_URLCONF)
    try:
        response = _respond_or_error(request)
    finally:
        reuse_connections()
    if isinstance(response, PendingResponse):
        return response
    return _finish(handler_class, request, response)


def _finish(handler_class, request, response):
    response._handler_class = handler_class
    response._resource_closers.append(request.close)
    if response.status_code >= 400:
        log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
    return response


async def resolve_pending(handler_class, request, pending: PendingResponse):
    """The response a ``PendingResponse`` stands for, once the transcode it waits for has started."""
    try:
        response = await pending.resolve()
    except Exception as exc:  # as convert_exception_to_response would answer it
        response = await sync_to_async(response_for_exception, thread_sensitive=True)(request, exc)
    return _finish(handler_class, request, _security_headers(request, response))


async def send_response(handler, scope, response, send) -> None:
    """Django's ``send_response``, except that file ranges go out as zero-copy sends when the
    server offers them (``audiocache.zerocopy``) instead of as bytes read into memory."""
    sendable = sendfile_parts(response)
    if sendable is None or ZEROCOPY_SEND not in scope.get("extensions", {}):
        return await handler.send_response(response, send)
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    headers += [(b"Set-Cookie", c.OutputString().encode("ascii").strip()) for c in response.cookies.values()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    fd, parts = sendable
    # The server's sendfile wants a file object; this one borrows the response's descriptor.
    with open(fd, "rb", buffering=0, closefd=False) as file:
        for part in parts:
            if isinstance(part, bytes):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            elif part.length >= SENDFILE_MIN:
                await _send_from_page_cache(send, file, part.start, part.length)
            else:
                async for chunk in read_chunks(fd, part.start, part.length):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_from_page_cache(send, file, start: int, length: int) -> None:
    loop = asyncio.get_running_loop()
    fd = file.fileno()
    position, end = start, start + length
    while position < end:
        count = min(SENDFILE_BLOCK, end - position)
        if not in_page_cache(fd, position, count):
            await loop.run_in_executor(None, load_into_page_cache, fd, position, count)
        await send({"type": ZEROCOPY_SEND, "file": file, "offset": position, "count": count, "more_body": True})
        position += count


async def handle(handler, scope, receive, send) -> None:
    """``ASGIHandler.handle`` for ``/stream/``, with one thread hop per request.

    As Django's: the body is sent while a second task listens for the client going away;
    when it does, sending stops (the body's read is cancelled and its file closed).
    """
    try:
        body_file = await handler.read_body(receive)
    except RequestAborted:
        return
    set_script_prefix(get_script_prefix(scope))
    request, error_response = handler.create_request(scope, body_file)
    if request is None:
        body_file.close()
        await handler.send_response(error_response, send)
        error_response.close()
        return

    async def process_request():
        response = None
        try:
            response = await sync_to_async(respond, thread_sensitive=True)(handler.__class__, request)
            if isinstance(response, PendingResponse):
                response = await resolve_pending(handler.__class__, request, response)
            await send_response(handler, scope, response, send)
        except asyncio.CancelledError:
            pass  # the client left (the listener saw it), or the server is shutting down
        except RuntimeError:
            # uvicorn refuses to finish a body shorter than its Content-Length. That is how a
            # progressive stream whose transcode failed ends (already logged): the server
            # closes the connection, so the client knows its copy is incomplete.
            if response is None or not ended_early(response):
                raise
        finally:
            if response is None:
                signals.request_finished.send(sender=handler.__class__)
            else:
                # Closes the body's file and sends request_finished. Nothing here blocks: the file
                # is a descriptor to close, and the receivers find no database connection on
                # this thread.
                response.close()

    tasks = [asyncio.create_task(handler.listen_for_disconnect(receive)), asyncio.create_task(process_request())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Whichever ended first, and also when this request itself is cancelled (shutdown):
        # the other stops, the response is closed, and no task outlives the request.
        for task in tasks:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        body_file.close()
    for task in tasks:
        with contextlib.suppress(RequestAborted, asyncio.CancelledError):
            task.result()  # an error of either (the app's, or an invalid ASGI message) goes to the server
