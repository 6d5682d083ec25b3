"""uvicorn's HTTP protocol with the ASGI zero-copy send extension, so audio leaves by ``sendfile``.

An ASGI body is ``bytes``: every chunk of a file is read into memory and then copied into the
socket, about 6.5 ms of one core per 7.7 MB file on the development machine, where nginx's
``sendfile(2)`` costs it under 1 ms. The ASGI specification has an extension for exactly this,
``http.response.zerocopysend`` (a file, an offset and a count for the server to send), but
uvicorn does not implement it. This protocol adds it to uvicorn's own httptools protocol, and
nothing else::

    uvicorn config.asgi:application --loop asyncio --http audiocache.delivery.zerocopy:HttpToolsProtocol

The send is asyncio's ``loop.sendfile`` (the kernel copies from the page cache to the socket;
a slow client costs no memory and no thread: the loop waits for the socket to drain). uvloop
has no ``sendfile``, hence ``--loop asyncio``. Under another loop, or with TLS (where asyncio
could only read the file in small pieces through threads), nothing breaks: the extension is
not offered, and the app streams chunks as it does without this protocol.

Only ``audiocache.delivery.sender`` sends these messages, for complete files (cached renditions and
originals); a progressive stream follows a growing file and is sent as bytes. The subclass
uses uvicorn's request cycle (``_start_asgi_task``, the cycle's response state), which is why
uvicorn is pinned; tests/test_zerocopy.py runs it against the pinned version.
"""

import asyncio
import functools
import logging
import os

from uvicorn.protocols.http import httptools_impl

logger = logging.getLogger(__name__)

EXTENSION = "http.response.zerocopysend"

# How uvicorn is started everywhere (make run, the Docker image, Compose, the tests and benches).
UVICORN_OPTIONS = ("--loop", "asyncio", "--http", "audiocache.delivery.zerocopy:HttpToolsProtocol")


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    def _start_asgi_task(self, cycle, app) -> None:
        # asyncio's loop sends natively on plain sockets; under TLS it would read the file in
        # 16 KiB pieces through threads, worse than the app's own chunks; uvloop's loop does
        # not implement sendfile at all. The extension is offered only where it pays.
        if isinstance(self.loop, asyncio.BaseEventLoop) and self.transport.get_extra_info("sslcontext") is None:
            cycle.scope["extensions"] = {**cycle.scope.get("extensions", {}), EXTENSION: {}}
            cycle.send = functools.partial(_send, cycle, cycle.send)
        super()._start_asgi_task(cycle, app)


async def _send(cycle: httptools_impl.RequestResponseCycle, send, message) -> None:
    """The cycle's ``send``, which also takes ``http.response.zerocopysend`` messages.

    Everything but the file's bytes (status line, headers, Content-Length accounting, the end
    of the response, keep-alive) is left to uvicorn's own ``send``: the file part is accounted
    for first, and the message then ends as an empty ``http.response.body``.
    """
    if message["type"] != EXTENSION:
        return await send(message)
    more_body = message.get("more_body", False)
    if cycle.disconnected:
        return  # the client left, perhaps before the response started: ignored, as uvicorn's send does
    if not cycle.response_started or cycle.response_complete or cycle.chunked_encoding:
        raise RuntimeError(f"'{EXTENSION}' needs a started response with a Content-Length.")
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected or cycle.transport.is_closing():
        cycle.disconnected = True  # the client left: its body is ignored, as uvicorn does
        return
    file = message["file"]
    # As the extension specifies: no offset is the file's position, no count the rest of it.
    offset = message.get("offset")
    offset = file.tell() if offset is None else offset
    count = message.get("count")
    count = max(os.fstat(file.fileno()).st_size - offset, 0) if count is None else count
    if cycle.scope["method"] != "HEAD" and count:
        if count > cycle.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        try:
            sent = await asyncio.get_running_loop().sendfile(cycle.transport, file, offset, count)
        except (OSError, RuntimeError) as exc:
            # The client left mid-send (EPIPE, ECONNRESET), or just before ("Transport is
            # closing"). As for a failed write, the connection is closed and the app's next
            # sends are ignored. Another I/O error (EIO) is logged and ends the same way.
            client_left = isinstance(exc, ConnectionError) or cycle.transport.is_closing()
            if not client_left and isinstance(exc, RuntimeError):
                raise
            if not client_left:
                logger.warning("sendfile failed, closing the connection: %s", exc)
            cycle.disconnected = True
            cycle.transport.abort()
            return
        # Fewer bytes than asked: the file shrank under us. uvicorn refuses to end a response
        # shorter than its Content-Length and closes the connection, so the client knows.
        cycle.expected_content_length -= sent
    await send({"type": "http.response.body", "body": b"", "more_body": more_body})
