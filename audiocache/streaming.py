"""File responses with HTTP range requests and conditional requests (RFC 9110), for ASGI.

Written by hand because Django's ``FileResponse`` has no range support and, under ASGI,
reads the whole file into memory before the first byte goes out. Here the file is opened
once (its ``fstat`` gives the size and validators of exactly the bytes served, even if the
file is replaced or unlinked meanwhile), and the body is an async iterator reading fixed
chunks (from the page cache on the event loop, from the disk in a thread), so memory stays
flat and a client that goes away stops the reading.
"""

import asyncio
import errno
import hashlib
import itertools
import mmap
import os
import re
import secrets
import stat
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import quote

from django.http import HttpResponse, StreamingHttpResponse

CHUNK_SIZE = 256 * 1024
MAX_RANGES = 16  # more parts than this is a scan, not a player: the whole file is cheaper
_DIGITS_LIMIT = 18  # longer numbers are "huge": never parsed (Python refuses > 4300 digits anyway)
_SPEC = re.compile(r"^([0-9]*)-([0-9]*)$", re.ASCII)

CONTENT_TYPES = {
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".wave": "audio/wav",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".aifc": "audio/aiff",
    ".m4a": "audio/mp4",
    ".mp4": "audio/mp4",
    ".caf": "audio/x-caf",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".aac": "audio/aac",
    ".wv": "audio/x-wavpack",
    ".ape": "audio/x-ape",
    ".tta": "audio/x-tta",
    ".wma": "audio/x-ms-wma",
}


def content_type_for(name: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")


# --- Range header --------------------------------------------------------------------------


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """Every range lies outside the representation: answer 416."""


def _number(text: str, huge: int) -> int:
    return huge if len(text) > _DIGITS_LIMIT else int(text)


def parse_range(header: str | None, size: int) -> list[ByteRange] | None:
    """The satisfiable ranges of ``header`` for a file of ``size`` bytes.

    Returns None when the header is absent, malformed or not in bytes (serve the whole file),
    raises ``Unsatisfiable`` when it is valid but no range overlaps the file.
    """
    if not header:
        return None
    unit, sep, spec_list = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = [s.strip() for s in spec_list.split(",")]
    specs = [s for s in specs if s]  # RFC 9110 list syntax tolerates empty elements
    if not specs:
        return None
    huge = size + 1
    ranges = []
    for spec in specs:
        match = _SPEC.match(spec)
        if not match:
            return None
        first, last = match.groups()
        if first:
            start = _number(first, huge)
            end = _number(last, huge) if last else size - 1
            if last and end < start:
                return None  # "5-2" is invalid syntax: ignore the whole header
            if start >= size:
                continue  # unsatisfiable on its own
            ranges.append(ByteRange(start, min(end, size - 1)))
        elif last:
            suffix = _number(last, huge)
            if suffix == 0 or size == 0:
                continue  # "-0" selects nothing
            ranges.append(ByteRange(max(0, size - suffix), size - 1))
        else:
            return None  # "-" alone
    if not ranges:
        raise Unsatisfiable
    return ranges


def needs_whole_file(ranges: list[ByteRange]) -> bool:
    """Overlapping or too many ranges: send the whole representation with 200 instead."""
    if len(ranges) > MAX_RANGES:
        return True
    ordered = sorted(ranges, key=lambda r: r.start)
    return any(b.start <= a.end for a, b in itertools.pairwise(ordered))


# --- Validators and conditional requests -----------------------------------------------------


@dataclass(frozen=True)
class FileIdentity:
    """What a response says about the bytes it serves."""

    size: int
    mtime: float | None  # None: no date to validate by (a file still being written)
    etag: str  # quoted; strong unless it starts with W/

    @property
    def last_modified(self) -> str | None:
        return None if self.mtime is None else formatdate(int(self.mtime), usegmt=True)


def identity(st: os.stat_result, salt: str) -> FileIdentity:
    """A strong ETag that changes when the bytes change: ``salt`` names the file (rendition vs
    original, which file), size and mtime in nanoseconds catch a rewrite in place."""
    digest = hashlib.sha256(f"{salt}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:24]
    return FileIdentity(st.st_size, st.st_mtime, f'"{digest}"')


def _etags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _weak_match(header: str, etag: str) -> bool:
    tags = _etags(header)
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def _http_date(value: str):
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed.timestamp() if parsed.tzinfo else None


def precondition_status(request, ident: FileIdentity) -> int | None:
    """412 or 304 per RFC 9110 section 13.2.2, or None to go on."""
    if_match = request.headers.get("If-Match")
    if if_match is not None:
        tags = _etags(if_match)
        if "*" not in tags and ident.etag not in tags:  # strong comparison
            return 412
    elif ident.mtime is not None:
        since = request.headers.get("If-Unmodified-Since")
        when = _http_date(since) if since else None
        if when is not None and int(ident.mtime) > when:
            return 412
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        if _weak_match(if_none_match, ident.etag):
            return 304 if request.method in ("GET", "HEAD") else 412
    elif request.method in ("GET", "HEAD") and ident.mtime is not None:
        since = request.headers.get("If-Modified-Since")
        when = _http_date(since) if since else None
        if when is not None and int(ident.mtime) <= when:
            return 304
    return None


def if_range_allows(request, ident: FileIdentity) -> bool:
    """A Range applies only if If-Range (when sent) still names this representation."""
    value = request.headers.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == ident.etag and not value.startswith("W/")  # strong comparison: never a weak tag
    return ident.mtime is not None and _http_date(value) == int(ident.mtime) and value == ident.last_modified


# --- Bodies -------------------------------------------------------------------------------


# Linux's RWF_NOWAIT (4.14+): a read that would wait for the disk fails with EAGAIN instead.
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
_UNSUPPORTED = object()


def read_cached(fd: int, size: int, position: int):
    """Up to ``size`` bytes at ``position`` if the page cache holds them now, without waiting.

    Returns the bytes (short when only the first pages are cached; empty at the end of the
    file), None when the read would have to wait for the disk, or ``_UNSUPPORTED`` when this
    kernel or file system cannot say (the caller then reads in a thread)."""
    if not _NOWAIT:
        return _UNSUPPORTED
    buffer = _scratch(size)
    try:
        count = os.preadv(fd, [buffer], position, _NOWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return _UNSUPPORTED
        raise
    return buffer[:count].tobytes()


_scratch_buffers = threading.local()


def _scratch(size: int) -> memoryview:
    """A reusable buffer of ``size`` bytes for this thread (the event loop's): read_cached copies
    out of it before it returns. Page-aligned and allocated once, it spares every chunk a fresh
    zeroed allocation (a third of the read's cost here)."""
    view = getattr(_scratch_buffers, "view", None)
    if view is None or len(view) < size:
        view = _scratch_buffers.view = memoryview(mmap.mmap(-1, max(size, CHUNK_SIZE)))
    return view[:size]


# Readahead fills the page cache in windows of 128 KiB or more: one page of each window tells.
_PROBE_STRIDE = 128 * 1024


def in_page_cache(fd: int, start: int, length: int) -> bool:
    """Whether bytes ``start`` to ``start + length`` are in the page cache now, so that sending
    them (``sendfile``) will not wait for the disk. Probes one byte per readahead window and
    the last one, each a read that fails at once rather than wait (``RWF_NOWAIT``); False
    where the kernel or file system cannot say."""
    if length <= 0:
        return True
    for position in [*range(start, start + length, _PROBE_STRIDE), start + length - 1]:
        byte = read_cached(fd, 1, position)
        if byte is None or byte is _UNSUPPORTED:
            return False
        if not byte:
            return True  # the end of the file: nothing more to wait for
    return True


def load_into_page_cache(fd: int, start: int, length: int) -> None:
    """Read bytes ``start`` to ``start + length`` (and drop them), so the page cache holds them:
    run in a thread before a ``sendfile`` that would otherwise wait for the disk on the event
    loop (nginx's ``aio threads`` does the same for its ``sendfile``)."""
    buffer = _scratch(CHUNK_SIZE)
    position, end = start, start + length
    while position < end:
        count = os.preadv(fd, [buffer[: min(CHUNK_SIZE, end - position)]], position)
        if count == 0:
            return
        position += count


async def read_chunks(fd: int, start: int, length: int) -> AsyncIterator[bytes]:
    """The bytes ``start`` to ``start + length``, one chunk of at most CHUNK_SIZE at a time.

    A chunk the page cache already holds (nearly always, for a file being played) is read
    right here on the event loop, about 40 us for 256 KiB; one that needs the disk is read by
    the default executor, so a slow disk never stalls the loop. One chunk is in flight per
    stream either way."""
    loop = asyncio.get_running_loop()
    position, remaining = start, length
    inline = True
    while remaining > 0:
        size = min(CHUNK_SIZE, remaining)
        chunk = read_cached(fd, size, position) if inline else None
        if chunk is _UNSUPPORTED:
            inline, chunk = False, None  # this file's file system cannot tell: threads from now on
        if chunk is None:
            chunk = await loop.run_in_executor(None, os.pread, fd, size, position)
        else:
            await asyncio.sleep(0)  # let other streams and requests run between chunks
        if not chunk:
            return  # the file shrank under us; Content-Length makes the client notice
        position += len(chunk)
        remaining -= len(chunk)
        yield chunk


class OpenFile:
    """The descriptor a response reads from, closed exactly once: by the body when it ends or
    is cancelled (client gone), by Django closing the response if the body never started, or
    when the response is dropped unsent (the client left while the view was still running)."""

    def __init__(self, fd: int):
        self.fd = fd
        self._close = weakref.finalize(self, os.close, fd)

    def close(self) -> None:
        self._close()  # a finalizer runs at most once


# A body reader: ``read(start, length)`` yields those bytes of the representation.
Reader = Callable[[int, int], AsyncIterator[bytes]]


# A body: literal bytes (multipart boundaries) and ranges of the file, in order.
BodyParts = list["bytes | ByteRange"]


async def _body(read: Reader, file: OpenFile, parts: BodyParts) -> AsyncIterator[bytes]:
    try:
        for part in parts:
            if isinstance(part, bytes):
                yield part
            else:
                async for chunk in read(part.start, part.length):
                    yield chunk
    finally:
        file.close()


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover - makes this an async generator


def sendfile_parts(response) -> "tuple[int, BodyParts] | None":
    """The open file and body parts of a response whose ranges an ASGI server may send straight
    from the file (``audiocache.zerocopy``), or None when the body must be iterated (HEAD, a
    progressive stream, not a file response)."""
    return getattr(response, "_sendfile_parts", None)


# --- The response ---------------------------------------------------------------------------------


def serve_file(request, path: str, *, salt: str, content_type: str | None = None, headers: dict | None = None):
    """Answer GET/HEAD for the file at ``path`` (already checked to be allowed) with ranges.

    Raises ``FileNotFoundError``/``OSError`` if it cannot be opened; callers turn that into 404.
    """
    # O_NONBLOCK: opening a FIFO must not hang; only regular files are ever served.
    file = OpenFile(os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK))
    try:
        st = os.fstat(file.fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(f"not a regular file: {path}")
    except BaseException:
        file.close()
        raise
    return serve_open_file(
        request,
        file,
        identity(st, salt),
        lambda start, length: read_chunks(file.fd, start, length),
        content_type or content_type_for(path),
        headers or {},
        complete=True,
    )


def serve_open_file(
    request,
    file: "OpenFile",
    ident: FileIdentity,
    read: Reader,
    content_type: str,
    headers: dict,
    *,
    complete: bool = False,
):
    """Answer GET/HEAD for a representation of ``ident.size`` bytes that ``read`` yields from
    ``file``, which is closed when the response is done with it. ``complete``: the file holds
    exactly those bytes, so a server may send them from it without reading (see
    ``sendfile_parts``); a file still being written is not complete."""
    try:
        response = _respond(request, ident, read, file, content_type, headers, complete=complete)
    except BaseException:
        file.close()
        raise
    if request.method == "HEAD" or not isinstance(response, StreamingHttpResponse):
        file.close()
    else:
        # Django calls these when it closes the response (as FileResponse does with its file).
        response._resource_closers.append(file.close)
    return response


def _respond(
    request, ident: FileIdentity, read: Reader, file: "OpenFile", content_type: str, headers: dict, complete: bool
):
    """Conditional requests, one range, several ranges, or all of it; the body closes ``file`` when it ends."""
    common = {"Accept-Ranges": "bytes", "ETag": ident.etag, **headers}
    if ident.last_modified is not None:
        common["Last-Modified"] = ident.last_modified

    status = precondition_status(request, ident)
    if status is not None:
        response = HttpResponse(status=status)
        for key in ("ETag", "Last-Modified", "Cache-Control", "Vary", "X-Audio-Cache"):
            if key in common:
                response[key] = common[key]
        return response

    ranges = None
    # RFC 9110 section 14.2: range handling is defined for GET only (HEAD gets the 200 headers).
    if request.method == "GET" and if_range_allows(request, ident):
        try:
            ranges = parse_range(request.headers.get("Range"), ident.size)
        except Unsatisfiable:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{ident.size}"
            for key, value in common.items():
                response[key] = value
            return response
    if ranges is not None and needs_whole_file(ranges):
        ranges = None

    if ranges is None:
        parts: BodyParts = [ByteRange(0, ident.size - 1)] if ident.size else []
        response = StreamingHttpResponse(status=200, content_type=content_type)
        response["Content-Length"] = str(ident.size)
    elif len(ranges) == 1:
        (byte_range,) = ranges
        parts = [byte_range]
        response = StreamingHttpResponse(status=206, content_type=content_type)
        response["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{ident.size}"
        response["Content-Length"] = str(byte_range.length)
    else:
        boundary = secrets.token_hex(16)
        parts = []
        for r in ranges:
            parts.append(
                f"--{boundary}\r\nContent-Type: {content_type}\r\n"
                f"Content-Range: bytes {r.start}-{r.end}/{ident.size}\r\n\r\n".encode()
            )
            parts += [r, b"\r\n"]
        parts.append(f"--{boundary}--\r\n".encode())
        response = StreamingHttpResponse(status=206, content_type=f"multipart/byteranges; boundary={boundary}")
        response["Content-Length"] = str(sum(len(p) if isinstance(p, bytes) else p.length for p in parts))
    if request.method == "HEAD":  # RFC 9110 section 9.3.2: the headers GET would get, and no body
        response.streaming_content = _nothing()
    else:
        response.streaming_content = _body(read, file, parts)
        if complete:
            response._sendfile_parts = (file.fd, parts)
    for key, value in common.items():
        response[key] = value
    return response


def accel_redirect(internal_prefix: str, relative: str, content_type: str, headers: dict | None = None) -> HttpResponse:
    """Let nginx send the bytes (``AUDIO_CACHE_SENDFILE=nginx``): it does ranges and validators itself."""
    response = HttpResponse(content_type=content_type)
    response["X-Accel-Redirect"] = internal_prefix.rstrip("/") + "/" + quote(relative)
    for key, value in (headers or {}).items():
        response[key] = value
    return response
