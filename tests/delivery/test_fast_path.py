"""The ASGI fast path for /stream/ runs Django's own configured middleware chain, and keeps its thread's
database connection between requests, never a dirty one (audiocache/delivery/fast_path.py).

The application is driven with ASGI messages in the test process: no server, so that what the
fast path sends (bytes, or zero-copy sends of file ranges) can be read back exactly.
"""

import asyncio
import gzip
import os
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from audiocache.delivery.fast_path import StreamFastPath
from audiocache.delivery.zerocopy import EXTENSION as ZEROCOPY
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.factories import MixtapeFactory, MixtapeTrackFactory

pytestmark = pytest.mark.django_db(transaction=True)

STAMP = "tests.delivery.middleware.StampMiddleware"


async def _not_here(scope, receive, send):  # every other URL: not the fast path's
    raise AssertionError(f"{scope['path']} left the fast path")


def call(app, path: str, *, query: str = "quality=original", method: str = "GET", headers=(), zero_copy=False):
    """One request through ``app``; returns (status, headers dict, body bytes)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
        "extensions": {ZEROCOPY: {}} if zero_copy else {},
    }
    sent = []

    async def run():
        requested = False

        async def receive():
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client stays until the response is sent

        async def send(message):
            if message["type"] == ZEROCOPY:  # read what the server would have sent from the file
                message = {**message, "body": os.pread(message["file"].fileno(), message["count"], message["offset"])}
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(run())
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body, sent


@pytest.fixture
def public_track(make_audio, request):
    make_audio("public.flac", duration=1)
    scan_library()
    track = Track.objects.get()
    MixtapeTrackFactory(track=track, mixtape=MixtapeFactory(is_public=True))
    # The fast path's thread keeps its database connection: close it there, so the test database can go.
    request.addfinalizer(lambda: asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)()))
    return track


def test_a_middleware_added_to_the_settings_applies_to_stream_responses(public_track, settings):
    from tests.delivery import middleware

    settings.MIDDLEWARE = [*settings.MIDDLEWARE, STAMP]
    middleware.seen.clear()
    app = StreamFastPath(_not_here)
    data = public_track.absolute_path().read_bytes()
    path = f"/stream/{public_track.pk}/"

    status, headers, body, _ = call(app, path)
    assert (status, headers["x-stamped"], body) == (200, "yes", data)
    status, headers, body, _ = call(app, path, headers=[(b"range", b"bytes=0-9")])
    assert (status, headers["x-stamped"], body) == (206, "yes", data[:10])
    status, headers, _, _ = call(app, "/stream/999999/")
    assert (status, headers["x-stamped"]) == (404, "yes")  # errors go through the chain too
    status, headers, body, _ = call(app, path, method="HEAD")
    assert (status, headers["x-stamped"], body) == (200, "yes", b"")
    assert middleware.seen == [path, path, "/stream/999999/", path]  # once per request
    # Django's own middleware is there as well: SecurityMiddleware's headers.
    assert headers["x-content-type-options"] == "nosniff"


def test_without_the_middleware_in_the_settings_nothing_stamps(public_track):
    app = StreamFastPath(_not_here)
    status, headers, _, _ = call(app, f"/stream/{public_track.pk}/")
    assert status == 200 and "x-stamped" not in headers


def test_other_urls_go_to_the_wrapped_application(public_track):
    reached = []

    async def other(scope, receive, send):
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    status, _, _, _ = call(StreamFastPath(other), "/share/x/")
    assert (status, reached) == (204, ["/share/x/"])


def test_file_ranges_go_out_as_zero_copy_sends_where_offered(public_track):
    data = public_track.absolute_path().read_bytes()
    status, _, body, sent = call(StreamFastPath(_not_here), f"/stream/{public_track.pk}/", zero_copy=True)
    assert status == 200 and body == data
    assert any(m["type"] == ZEROCOPY for m in sent) == (len(data) >= 256 * 1024)
    status, _, body, sent = call(StreamFastPath(_not_here), f"/stream/{public_track.pk}/")
    assert status == 200 and body == data and not any(m["type"] == ZEROCOPY for m in sent)


def test_a_middleware_that_rewrites_the_body_is_never_bypassed(public_track, settings):
    """GZipMiddleware replaces a streaming body with its compressed bytes: the fast path must
    send those, not the file's ranges straight from the file."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    data = public_track.absolute_path().read_bytes()
    status, headers, body, sent = call(
        StreamFastPath(_not_here),
        f"/stream/{public_track.pk}/",
        headers=[(b"accept-encoding", b"gzip")],
        zero_copy=True,
    )
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert not any(m["type"] == ZEROCOPY for m in sent)
    assert gzip.decompress(body) == data


def test_https_redirect_applies_to_stream_urls(public_track, settings):
    """SecurityMiddleware's redirect to HTTPS, which a hand-made copy of the middleware once lost."""
    settings.SECURE_SSL_REDIRECT = True
    status, headers, _, _ = call(StreamFastPath(_not_here), f"/stream/{public_track.pk}/")
    assert status == 301 and headers["location"].startswith("https://localhost/stream/")


# --- the short ASGI path keeps its database connection, never a dirty one --------------------------


@pytest.mark.django_db(transaction=True)
def test_the_stream_thread_keeps_a_clean_connection_and_drops_others(monkeypatch):
    from django.core import signals
    from django.db import connection

    from audiocache.delivery import fast_path

    def next_request():
        signals.request_started.send(sender=None, scope={})  # what the next stream request does first

    connection.ensure_connection()
    raw = connection.connection
    fast_path.reuse_connections()
    next_request()
    assert connection.connection is raw  # kept, though SQLite's CONN_MAX_AGE is 0 here

    connection.set_autocommit(False)  # a request that left a transaction open
    fast_path.reuse_connections()
    assert connection.connection is None

    connection.ensure_connection()
    raw = connection.connection
    fast_path.reuse_connections()
    assert connection.connection is raw
    later = time.monotonic() + fast_path.STREAM_CONN_MAX_AGE + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    next_request()
    assert connection.connection is None  # not kept past its age


@pytest.mark.parametrize(
    "path",
    [
        "/stream/" + "9" * 4301 + "/",  # past Python's int-conversion limit
        "/stream/9223372036854775808/",  # past a 64-bit column
        "/stream/9999999999999999999/",
        "/stream/%EF%BC%93/",  # a full-width 3, percent-encoded
        "/stream/\uff13/",
        "/stream/\u0663/",  # Arabic-Indic 3
        "/stream/-3/",
        "/stream/+3/",
        "/stream/3.0/",
    ],
)
def test_ids_are_ascii_digits_of_bounded_length_and_anything_else_is_a_404(public_track, settings, path):
    """Even with DEBUG on (the ``make run`` default), a hostile id is a plain 404, never a 500."""
    settings.DEBUG = True
    app = StreamFastPath(_not_here)
    status, _, _, _ = call(app, path)
    assert status == 404
    # The same track under its plain id plays (so the 404s above are the ids', not the route's).
    assert call(app, f"/stream/{public_track.pk}/")[0] == 200
    assert call(app, f"/stream/{public_track.pk:018d}/")[0] == 200  # 18 digits, leading zeros: still an id
