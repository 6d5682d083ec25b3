"""The one typed file response: ``AudioFileResponse``, whose body is a ``FileBody``.

Written by hand because Django's ``FileResponse`` has no range support and, under ASGI,
reads the whole file into memory before the first byte goes out. ``file_response`` answers
GET and HEAD for one open file: 304 or 412 for conditional requests, 416 for a range outside
it, 206 for one range or several (multipart/byteranges), 200 for the whole file. The body
is the parts of that file (and literal boundary bytes), carried as a ``FileBody`` that the
ASGI sender reads directly: a complete file's parts may leave by zero-copy sends, a growing
file's are read as ffmpeg writes them. Iterating the response (WSGI, the test client, any
ASGI server) gives the same bytes.
"""

import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from django.http import HttpResponse, HttpResponseNotModified, StreamingHttpResponse

from .conditional import FileIdentity, if_range_allows, precondition_status
from .files import OpenFile, read_chunks
from .growing import GrowingFile, read_growing
from .ranges import ByteRange, Unsatisfiable, needs_whole_file, parse_range

logger = logging.getLogger(__name__)

# A body: literal bytes (multipart boundaries) and ranges of the file, in order.
BodyParts = list["bytes | ByteRange"]


@dataclass
class FileBody:
    """What a file response's body sends: parts of one open file, in order."""

    file: OpenFile
    parts: BodyParts
    growing: GrowingFile | None = None  # still being written: read as it grows, never sent straight from the file
    ended_short: bool = False  # a growing file ended before its parts did: its transcode failed or stalled

    @property
    def length(self) -> int:
        return sum(len(p) if isinstance(p, bytes) else p.length for p in self.parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes; the file is closed when they end or the reading is cancelled."""
        try:
            for part in self.parts:
                if isinstance(part, bytes):
                    yield part
                else:
                    async for chunk in self._read(part):
                        yield chunk
        finally:
            self.file.close()

    async def _read(self, part: ByteRange) -> AsyncIterator[bytes]:
        if self.growing is None:
            async for chunk in read_chunks(self.file.fd, part.start, part.length):
                yield chunk
            return
        sent = 0
        async for chunk in read_growing(self.file.fd, part.start, part.length, self.growing.path):
            sent += len(chunk)
            yield chunk
        if sent < part.length and self.growing.size is not None:  # an open end ends where the writer stops
            self.ended_short = True
            logger.warning(
                "progressive stream of %s ended after %d of %d bytes: its transcode failed, stalled or made "
                "another length than planned (the client sees a short response; the next request serves "
                "the finished file, the original or a retry)",
                self.growing.label, sent, part.length,
            )  # fmt: skip


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover - makes this an async generator


class AudioFileResponse(StreamingHttpResponse):
    """A 200 or 206 answer whose body is ``file_body`` (None for HEAD: headers only)."""

    def __init__(self, file_body: FileBody | None, *, status: int, content_type: str):
        self.file_body = file_body
        self.content_replaced = False
        super().__init__(file_body.chunks() if file_body else _nothing(), status=status, content_type=content_type)
        self.content_replaced = False  # the setter ran once above, for our own content

    @property
    def streaming_content(self):
        return StreamingHttpResponse.streaming_content.fget(self)

    @streaming_content.setter
    def streaming_content(self, value):
        # A middleware that replaces the content (GZipMiddleware) makes it something else than
        # the file's bytes: it must then be iterated, never sent from the file.
        StreamingHttpResponse.streaming_content.fset(self, value)
        self.content_replaced = True

    @property
    def sendable_from_file(self) -> FileBody | None:
        """The body, when a server may send its parts straight from the file (zero-copy): a
        complete file whose content no middleware replaced. None otherwise."""
        body = self.file_body
        if body is None or body.growing is not None or self.content_replaced:
            return None
        return body

    @property
    def ended_short(self) -> bool:
        """The body stopped short on purpose (a growing file whose transcode failed): the server
        refusing to end a response shorter than its Content-Length is expected, not an error."""
        return self.file_body is not None and self.file_body.ended_short

    def close(self):
        try:
            if self.file_body is not None:
                self.file_body.file.close()  # the body never started (client gone, HEAD): close it here
        finally:
            super().close()


def file_response(
    request,
    file: OpenFile,
    ident: FileIdentity,
    content_type: str,
    headers: dict,
    *,
    growing: GrowingFile | None = None,
) -> HttpResponse:
    """Answer GET/HEAD for ``file``, whose representation ``ident`` describes; ``file`` is closed
    when the response is done with it (at once, for an answer without a body)."""
    try:
        response = _respond(request, file, ident, content_type, headers, growing)
    except BaseException:
        file.close()
        raise
    if not isinstance(response, AudioFileResponse) or response.file_body is None:
        file.close()
    return response


# The end of a body whose length nobody knows yet: read until the writer is done.
OPEN_END = 2**62


def growing_response(request, growing: GrowingFile, headers: dict) -> "AudioFileResponse":
    """A file being written whose final length nobody knows (an Opus or AAC transcode): a 200
    with the whole of it as it grows, without Content-Length (chunked) and without ranges, since
    a range of an unknown length cannot be promised. The player gets the finished, seekable
    file on its next request."""
    body = FileBody(growing.file, [ByteRange(0, OPEN_END - 1)], growing)
    response = AudioFileResponse(
        None if request.method == "HEAD" else body, status=200, content_type=growing.content_type
    )
    if request.method == "HEAD":
        growing.file.close()
    for key, value in {**headers, "Accept-Ranges": "none", "ETag": growing.etag}.items():
        response[key] = value
    return response


def _refusal(status: int, message: str, common: dict, keep: tuple[str, ...]) -> HttpResponse:
    """A 412 or 416: a short plain-text reason, never stored by a cache (the next request, with
    other preconditions or another range, deserves a fresh answer)."""
    response = HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    for key in keep:
        if key in common:
            response[key] = common[key]
    response["Cache-Control"] = "no-store"
    return response


def _respond(request, file, ident: FileIdentity, content_type, headers, growing) -> HttpResponse:
    common = {"Accept-Ranges": "bytes", "ETag": ident.etag, **headers}
    if ident.last_modified is not None:
        common["Last-Modified"] = ident.last_modified

    status = precondition_status(request, ident)
    if status == 304:
        # Django's own 304 (no body, no Content-Type); RFC 9110 section 15.4.5 lists what it repeats.
        response = HttpResponseNotModified()
        for key in ("ETag", "Last-Modified", "Cache-Control", "Vary", "X-Audio-Cache"):
            if key in common:
                response[key] = common[key]
        return response
    if status == 412:
        return _refusal(412, "Precondition failed: the file has changed.", common, ("ETag", "Last-Modified", "Vary"))

    ranges = None
    # RFC 9110 section 14.2: range handling is defined for GET only (HEAD gets the 200 headers).
    if request.method == "GET" and if_range_allows(request, ident):
        try:
            ranges = parse_range(request.headers.get("Range"), ident.size)
        except Unsatisfiable:
            response = _refusal(
                416,
                f"Range not satisfiable: the file has {ident.size} bytes.",
                common,
                ("Accept-Ranges", "ETag", "Last-Modified", "Vary", "X-Audio-Cache"),
            )
            response["Content-Range"] = f"bytes */{ident.size}"
            return response
    if ranges is not None and needs_whole_file(ranges):
        ranges = None

    if ranges is None:
        status, parts = 200, ([ByteRange(0, ident.size - 1)] if ident.size else [])
    elif len(ranges) == 1:
        status, parts = 206, ranges
        common["Content-Range"] = f"bytes {ranges[0].start}-{ranges[0].end}/{ident.size}"
    else:
        boundary = secrets.token_hex(16)
        status, parts = 206, []
        for r in ranges:
            parts.append(
                f"--{boundary}\r\nContent-Type: {content_type}\r\n"
                f"Content-Range: bytes {r.start}-{r.end}/{ident.size}\r\n\r\n".encode()
            )
            parts += [r, b"\r\n"]
        parts.append(f"--{boundary}--\r\n".encode())
        content_type = f"multipart/byteranges; boundary={boundary}"
    body = FileBody(file, parts, growing)
    # RFC 9110 section 9.3.2: HEAD gets the headers GET would get, and no body.
    response = AudioFileResponse(None if request.method == "HEAD" else body, status=status, content_type=content_type)
    response["Content-Length"] = str(body.length)
    for key, value in common.items():
        response[key] = value
    return response
