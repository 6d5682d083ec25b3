"""``/stream/`` under ASGI: Django's own configured middleware and view, in one thread hop.

Every listener's player sends many small range requests. Django's ASGI handler starts a
thread per request (about 2 ms here) and hops to a thread for each synchronous middleware's
hooks and each signal (about 5 ms per request in all). This handler builds the very same
chain synchronously, as Django's WSGI handler does (``load_middleware(is_async=False)``: every
middleware in ``MIDDLEWARE``, the URLconf and the view, with Django's own exception handling),
and runs a request through it in one hop to asgiref's shared thread, which also keeps its
database connection between requests (``reuse_connections``). A middleware added to the
settings applies to ``/stream/`` as to every other URL.

The response then goes out on the event loop (``sender.py``): the ranges of a complete file
as zero-copy sends where the server offers them, everything else as Django sends it.

A play that has to wait for ffmpeg's first frame must not hold that one shared thread: its
view answers ``TranscodeStarting``; the handler waits for the transcode on the event loop
(the listeners of one task share one watch), then runs the request through the chain again,
telling the view it has waited (``has_waited``): the second pass follows the growing file or
serves the original. Where there is no fast path (WSGI, the test client), the view waits in
its own thread instead (``may_defer`` is False).
"""

import asyncio
import contextlib
import io
import time
import weakref
from contextvars import ContextVar

from asgiref.sync import sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import connections
from django.http import HttpResponse
from django.urls import set_script_prefix

from ..services.following import await_followable
from .files import CHUNK_SIZE
from .response import AudioFileResponse
from .sender import send_response

# Which pass of the fast path a request is in (None: not under the fast path).
_FIRST, _AFTER_WAIT = "first", "after wait"
_pass: ContextVar[str | None] = ContextVar("audiocache_fast_path_pass", default=None)


def may_defer() -> bool:
    """The view may answer ``TranscodeStarting`` instead of waiting in its thread."""
    return _pass.get() == _FIRST


def has_waited() -> bool:
    """This request already waited for its transcode to start: answer with what is there now."""
    return _pass.get() == _AFTER_WAIT


class TranscodeStarting(HttpResponse):
    """A view's answer, under the fast path, for a play that should wait for task ``task_id``
    to start writing its file. The fast path never sends it: it waits, then asks again. (202
    Accepted, should anything else ever see it: the work is under way, the answer is not.)"""

    def __init__(self, task_id: int):
        super().__init__(b"The transcode is starting; ask again in a second.", status=202, content_type="text/plain")
        self["Retry-After"] = "1"
        self.task_id = task_id


class StreamFastPath:
    """ASGI application: requests under ``prefix`` (one or a tuple) through the fast path, all
    others to ``app``."""

    def __init__(self, app, prefix: str | tuple[str, ...] = "/stream/"):
        self.app = app
        self.prefix = prefix
        self.handler = StreamHandler()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            return await self.handler.handle(scope, receive, send)
        return await self.app(scope, receive, send)


# How long the stream thread keeps a database connection that the settings would close after
# every request (CONN_MAX_AGE=0, SQLite's default here). Connections with a CONN_MAX_AGE of
# their own keep it.
STREAM_CONN_MAX_AGE = 60.0

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


REPLAYED_BODY_LIMIT = 64 * 1024  # a form post of API parameters is a few hundred bytes


class StreamHandler(ASGIHandler):
    # Django re-slices every body part into 64 KiB messages (a copy each); the audio bodies
    # already come in CHUNK_SIZE parts, so pass them through whole.
    chunk_size = CHUNK_SIZE

    def __init__(self):
        # Not ASGIHandler.__init__, which builds the asynchronous chain: the synchronous one,
        # as the WSGI handler builds it, runs in the single hop.
        self.load_middleware(is_async=False)

    def respond(self, request) -> HttpResponse:
        """One request through the whole chain, in the stream thread (Django's own
        ``get_response``: URLconf, middleware, view, exception handling, error logging)."""
        # Django's ASGI handler sends this through a hop of its own; here it is the same thread.
        signals.request_started.send(sender=self.__class__, scope=request.scope)
        try:
            response = self.get_response(request)
        finally:
            reuse_connections()
        response._handler_class = self.__class__  # as Django's handlers do: the sender of request_finished
        return response

    async def _run(self, scope, body_file, which_pass: str) -> HttpResponse | None:
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            return error_response
        token = _pass.set(which_pass)
        try:
            return await sync_to_async(self.respond, thread_sensitive=True)(request)
        finally:
            _pass.reset(token)

    async def handle(self, scope, receive, send) -> None:
        """``ASGIHandler.handle`` for the fast path. As Django's: the body is sent while a second
        task listens for the client going away; when it does, sending stops (the body's read is
        cancelled and its file closed)."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        # The second pass asks the same question again: a form post (the Subsonic API's
        # formPost extension) carries its parameters in the body. Small bodies only.
        kept = body_file.read(REPLAYED_BODY_LIMIT + 1)
        body_file.seek(0)
        replay = kept if len(kept) <= REPLAYED_BODY_LIMIT else b""

        async def process_request():
            response = None
            try:
                response = await self._run(scope, body_file, _FIRST)
                if isinstance(response, TranscodeStarting):
                    first, response = response, None
                    first.close()  # its request_finished, as for any response (nothing here blocks)
                    await await_followable(first.task_id)
                    response = await self._run(scope, io.BytesIO(replay), _AFTER_WAIT)
                await send_response(self, scope, response, send)
            except asyncio.CancelledError:
                pass  # the client left (the listener saw it), or the server is shutting down
            except RuntimeError:
                # uvicorn refuses to finish a body shorter than its Content-Length. That is how a
                # progressive stream whose transcode failed ends (already logged): the server
                # closes the connection, so the client knows its copy is incomplete.
                if not (isinstance(response, AudioFileResponse) and response.ended_short):
                    raise
            finally:
                if response is None:
                    signals.request_finished.send(sender=self.__class__)
                else:
                    # Closes the body's file and sends request_finished. Nothing here blocks: the
                    # file is a descriptor to close, and the receivers find no database connection
                    # on this thread.
                    response.close()

        tasks = [asyncio.create_task(self.listen_for_disconnect(receive)), asyncio.create_task(process_request())]
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
