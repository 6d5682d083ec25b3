"""The ASGI zero-copy send extension on uvicorn (audiocache/delivery/zerocopy.py), and the stream view using it.

A real uvicorn server runs in a thread of the test process with the protocol, so that the
kernel's ``sendfile`` can be observed: ``os.sendfile`` is wrapped (and still called) to count
the bytes that left without passing through Python.
"""

import asyncio
import contextlib
import http.client
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
import uvicorn

from audiocache.delivery.files import in_page_cache, load_into_page_cache
from audiocache.delivery.zerocopy import EXTENSION, HttpToolsProtocol


@pytest.fixture
def sent_by_kernel(monkeypatch):
    """The byte counts of every ``os.sendfile`` call made from now on (by any thread)."""
    counts: list[int] = []
    real = os.sendfile

    def counting(*args):
        sent = real(*args)
        counts.append(sent)
        return sent

    monkeypatch.setattr(os, "sendfile", counting)
    return counts


def settled(counts: list[int], expected: int) -> int:
    """The bytes counted, once they reach ``expected`` or a few seconds passed: the client can
    read the last bytes before the server's thread gets back from ``sendfile`` to count them."""
    deadline = time.monotonic() + 5
    while sum(counts) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return sum(counts)


@contextlib.contextmanager
def serving(app, *, loop="asyncio", **options):
    """``app`` served by uvicorn with the zero-copy protocol, in a thread; yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, loop=loop, http=HttpToolsProtocol, lifespan="off", log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def file_app(path, plan, seen):
    """An ASGI app sending ``plan``: bytes, and (offset, count) ranges of the file at ``path`` as
    zero-copy sends when the server offers them (read and sent as bytes otherwise). ``seen``
    gets each scope and, at the end, the outcome ("done" or the exception)."""

    async def app(scope, receive, send):
        assert scope["type"] == "http"
        seen.append(scope)
        parts = plan(scope)
        length = sum(len(p) if isinstance(p, bytes) else p[1] for p in parts)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % length)]})
            with open(path, "rb", buffering=0) as file:
                for part in parts:
                    if isinstance(part, bytes):
                        await send({"type": "http.response.body", "body": part, "more_body": True})
                    elif EXTENSION in scope.get("extensions", {}):
                        offset, count = part
                        message = {"type": EXTENSION, "file": file, "offset": offset, "count": count, "more_body": True}
                        await send(message)
                    else:
                        await send(
                            {
                                "type": "http.response.body",
                                "body": os.pread(file.fileno(), part[1], part[0]),
                                "more_body": True,
                            }
                        )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception as exc:
            seen.append(exc)
            raise
        seen.append("done")

    return app


@pytest.fixture
def data_file(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data


def get(port, path="/", method="GET", connection=None):
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request(method, path)
    response = conn.getresponse()
    return response, response.read()


def test_a_whole_file_leaves_by_sendfile(data_file, sent_by_kernel):
    path, data = data_file
    seen = []
    with serving(file_app(path, lambda scope: [(0, len(data))], seen)) as port:
        response, body = get(port)
    assert response.status == 200 and body == data
    assert EXTENSION in seen[0]["extensions"]
    assert settled(sent_by_kernel, len(data)) == len(data)
    assert seen[-1] == "done"


def test_ranges_and_bytes_mix_and_the_connection_stays_usable(data_file, sent_by_kernel):
    path, data = data_file
    seen = []
    plans = {
        "/parts": [b"--head--", (1000, 300_000), b"\r\n", (len(data) - 10, 10), b"--end--"],
        "/all": [(0, len(data))],
    }
    with serving(file_app(path, lambda scope: plans[scope["path"]], seen)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        _, first = get(port, "/parts", connection=conn)
        _, second = get(port, "/all", connection=conn)  # same connection: reading resumed after the send
    assert first == b"--head--" + data[1000:301_000] + b"\r\n" + data[-10:] + b"--end--"
    assert second == data
    assert settled(sent_by_kernel, 300_000 + 10 + len(data)) == 300_000 + 10 + len(data)
    assert seen.count("done") == 2


def test_head_sends_headers_only(data_file, sent_by_kernel):
    path, data = data_file
    seen = []
    with serving(file_app(path, lambda scope: [(0, len(data))], seen)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        head, body = get(port, method="HEAD", connection=conn)
        _, whole = get(port, connection=conn)
    assert head.status == 200 and head.getheader("content-length") == str(len(data)) and body == b""
    assert whole == data
    assert settled(sent_by_kernel, len(data)) == len(data)  # nothing for the HEAD


def test_the_extension_is_not_offered_where_the_loop_cannot_send_files(data_file, sent_by_kernel):
    # uvloop has no loop.sendfile: the app is told nothing and sends bytes, as under plain uvicorn.
    path, data = data_file
    seen = []
    with serving(file_app(path, lambda scope: [(0, len(data))], seen), loop="uvloop") as port:
        _, body = get(port)
    assert body == data
    assert EXTENSION not in seen[0].get("extensions", {})
    assert sent_by_kernel == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_extension_is_not_offered_under_tls(data_file, sent_by_kernel, tmp_path):
    # asyncio would read the file in 16 KiB pieces through threads: the app's own chunks are better.
    path, data = data_file
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    seen = []
    app = file_app(path, lambda scope: [(0, len(data))], seen)
    with serving(app, ssl_keyfile=str(key), ssl_certfile=str(cert)) as port:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=20, context=ssl.create_default_context(cafile=cert)
        )
        _, body = get(port, connection=conn)
        conn.close()
    assert body == data
    assert EXTENSION not in seen[0].get("extensions", {})
    assert sent_by_kernel == []


def test_a_client_that_leaves_mid_file_ends_the_send(tmp_path, sent_by_kernel):
    # 40 MB: far more than the loopback socket buffers hold.
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(40 * 1024 * 1024)
    seen = []
    with serving(file_app(path, lambda scope: [(0, 40 * 1024 * 1024)], seen)) as port:
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        while received < 1024 * 1024:  # some of the body, by sendfile
            received += len(client.recv(65536))
        # Reset, not a polite close: the server's next write fails at once.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        deadline = time.monotonic() + 10
        while len(seen) < 2:
            assert time.monotonic() < deadline, "the send never ended"
            time.sleep(0.02)
        # The app was told nothing went wrong (as for a failed write), and stopped early.
        assert seen[-1] == "done"
        assert 0 < sum(sent_by_kernel) < 40 * 1024 * 1024
        response, body = get(port)  # and the server goes on
    assert response.status == 200 and len(body) == 40 * 1024 * 1024


def test_a_client_that_leaves_before_the_response_starts_is_ignored(data_file):
    # wrk does this at the end of a run: the connection closes while the app is still working.
    path, _ = data_file
    seen = []
    app = file_app(path, lambda scope: [(0, 1000)], seen)

    async def after_the_client_left(scope, receive, send):
        await receive()  # the request
        assert (await receive())["type"] == "http.disconnect"
        await app(scope, receive, send)

    with serving(after_the_client_left) as port:
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        client.close()
        deadline = time.monotonic() + 10
        while len(seen) < 2:
            assert time.monotonic() < deadline, "the app never finished"
            time.sleep(0.02)
    assert seen[-1] == "done"  # no "needs a started response" error: the sends were ignored


def test_a_file_shorter_than_promised_closes_the_connection(data_file):
    path, data = data_file
    seen = []
    # Content-Length says 1 MB more than the file holds past the offset.
    with serving(file_app(path, lambda scope: [(len(data) - 1000, 1000 + 1024 * 1024)], seen)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("GET", "/")
        response = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead) as short:
            response.read()
    assert short.value.partial == data[-1000:]
    assert isinstance(seen[-1], RuntimeError)  # uvicorn's "shorter than Content-Length"


def test_misuse_is_refused(data_file):
    path, _ = data_file

    async def before_start(scope, receive, send):
        with open(path, "rb") as file:
            await send({"type": EXTENSION, "file": file, "offset": 0, "count": 10})

    with serving(before_start) as port:
        response, _ = get(port)
    assert response.status == 500

    seen = []
    too_long = file_app(path, lambda scope: [b"x"], seen)

    async def longer_than_announced(scope, receive, send):
        async def widen(message):
            if message["type"] == "http.response.body" and message.get("more_body"):
                with open(path, "rb") as file:
                    return await send({"type": EXTENSION, "file": file, "offset": 0, "count": 100, "more_body": True})
            return await send(message)

        await too_long(scope, receive, widen)

    with serving(longer_than_announced) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("GET", "/")
        response = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead):
            response.read()
    assert isinstance(seen[-1], RuntimeError)


def evict(path) -> bool:
    """Drop the file from the page cache (no privileges needed for clean pages); False where
    that cannot be done or seen (tmpfs, or no RWF_NOWAIT)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        os.pread(fd, size, 0)
        if not in_page_cache(fd, 0, size):
            return False  # the probe cannot tell
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return not in_page_cache(fd, 0, size)
    finally:
        os.close(fd)


def test_page_cache_probe(tmp_path):
    path = tmp_path / "cold.bin"
    path.write_bytes(os.urandom(2 * 1024 * 1024))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert in_page_cache(fd, 0, 0)
        if not evict(path):
            pytest.skip("this file system keeps the file in the page cache")
        assert not in_page_cache(fd, 0, 2 * 1024 * 1024)
        load_into_page_cache(fd, 1024 * 1024, 1024 * 1024)
        assert in_page_cache(fd, 1024 * 1024, 1024 * 1024)
        assert in_page_cache(fd, 2 * 1024 * 1024 - 10, 100)  # past the end: nothing to wait for
    finally:
        os.close(fd)


@pytest.mark.django_db(transaction=True)
def test_the_stream_view_sends_ranges_by_sendfile(make_audio, sent_by_kernel, monkeypatch, request):
    from asgiref.sync import sync_to_async
    from django.db import connections

    from audiocache.delivery import sender
    from audiocache.delivery.sender import SENDFILE_MIN

    block = 300_001  # several blocks per file
    monkeypatch.setattr(sender, "SENDFILE_BLOCK", block)
    zero_copy_ranges = []
    real_send = sender.send_from_page_cache

    async def recording(send, file, part):
        zero_copy_ranges.append((part.start, part.length))
        return await real_send(send, file, part)

    monkeypatch.setattr(sender, "send_from_page_cache", recording)
    from config.asgi import application
    from mixtapes.library import scan_library
    from mixtapes.models import Track
    from tests.factories import MixtapeFactory, MixtapeTrackFactory

    make_audio("noise.flac", duration=10, noise=True)  # about 0.7 MB: larger than SENDFILE_MIN
    scan_library()
    track = Track.objects.get()
    MixtapeTrackFactory(track=track, mixtape=MixtapeFactory(is_public=True))
    data = track.absolute_path().read_bytes()
    address = f"/stream/{track.pk}/?quality=original"

    def fetch(conn, range_header=None):
        conn.request("GET", address, headers={"Range": range_header} if range_header else {})
        response = conn.getresponse()
        return response, response.read()

    assert len(data) > 2 * SENDFILE_MIN
    del sent_by_kernel[:]  # make_audio's copy used sendfile too

    # The stream thread keeps its database connection between requests (fast_path.reuse_connections):
    # closed at the end, in that thread, so the test database can be dropped.
    request.addfinalizer(lambda: asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)()))
    with serving(application) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        whole, body = fetch(conn)
        assert whole.status == 200 and body == data
        assert settled(sent_by_kernel, len(data)) == len(data)

        del sent_by_kernel[:]
        ranged, body = fetch(conn, "bytes=1000-")
        assert ranged.status == 206 and body == data[1000:]
        assert settled(sent_by_kernel, len(data) - 1000) == len(data) - 1000

        # A small range is cheaper copied than sent by the kernel.
        del sent_by_kernel[:]
        small, body = fetch(conn, "bytes=0-65535")
        assert small.status == 206 and body == data[:65536]
        assert zero_copy_ranges[-1] == (1000, len(data) - 1000)  # the previous request's, not this one's

        # Several ranges: the boundaries as bytes, the large part by sendfile, the small one copied.
        start = len(data) - SENDFILE_MIN - 1
        multi, body = fetch(conn, f"bytes=0-99,{start}-")
        assert multi.status == 206 and multi.getheader("content-type").startswith("multipart/byteranges")
        assert data[:100] in body and data[start:] in body
        assert settled(sent_by_kernel, len(data) - start) == len(data) - start
        assert len(body) == int(multi.getheader("content-length"))

        # A file not in the page cache is read into it in a thread first: sendfile would
        # wait for the disk on the event loop.
        loaded = []
        real_load = sender.load_into_page_cache
        monkeypatch.setattr(sender, "load_into_page_cache", lambda *args: loaded.append(args) or real_load(*args))
        if not evict(track.absolute_path()):
            pytest.skip("this file system keeps the file in the page cache")
        del sent_by_kernel[:]
        _, body = fetch(conn)
        assert body == data and settled(sent_by_kernel, len(data)) == len(data)
        blocks = [(start, min(block, len(data) - start)) for start in range(0, len(data), block)]
        # The blocks not in the page cache were read in a thread, whole (the kernel may leave a
        # page or two of the file cached, and its readahead may bring in the next block).
        assert loaded and {(start, length) for _, start, length in loaded} <= set(blocks)
        loaded.clear()
        _, body = fetch(conn)  # now cached: straight to sendfile
        assert body == data and loaded == []

        head_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        head_conn.request("HEAD", address)
        head = head_conn.getresponse()
        assert head.read() == b"" and head.getheader("content-length") == str(len(data))


def test_offset_and_count_may_be_left_out(data_file, sent_by_kernel):
    # The extension's defaults: the file's position, and the rest of the file.
    path, data = data_file

    async def app(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % (len(data) - 1000))]}
        )
        with open(path, "rb") as file:
            file.seek(1000)
            await send({"type": EXTENSION, "file": file})

    with serving(app) as port:
        _, body = get(port)
    assert body == data[1000:]
    assert settled(sent_by_kernel, len(data) - 1000) == len(data) - 1000
