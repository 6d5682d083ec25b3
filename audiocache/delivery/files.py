"""Opening and reading the files that answer requests, without stalling the event loop.

A file is opened once (its ``fstat`` gives the size and validators of exactly the bytes
served, even if the file is replaced or unlinked meanwhile) and read in fixed chunks: from
the page cache right on the event loop, from the disk in a thread, so a slow disk never holds
up other streams and memory stays flat whatever the file's size.
"""

import asyncio
import errno
import mmap
import os
import stat
import threading
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

CHUNK_SIZE = 256 * 1024

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

# open() errors meaning a path holds no readable file: gone, a folder, no permission, a symlink
# loop, a file where a folder should be, a name too long, a FIFO or device without a reader.
NO_FILE_HERE = frozenset(
    {
        errno.ENOENT,
        errno.EISDIR,
        errno.EACCES,
        errno.EPERM,
        errno.ELOOP,
        errno.ENOTDIR,
        errno.ENAMETOOLONG,
        errno.ENXIO,
    }
)


def content_type_for(name: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")


def means_no_file(exc: OSError) -> bool:
    """Whether an error opening a path says "no readable file here" (not "out of descriptors")."""
    return isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError) or exc.errno in NO_FILE_HERE


class OpenFile:
    """A descriptor a response reads from, closed exactly once: by the body when it ends or
    is cancelled (client gone), by Django closing the response if the body never started, or
    when the response is dropped unsent (the client left while the view was still running)."""

    def __init__(self, fd: int):
        self.fd = fd
        self._close = weakref.finalize(self, os.close, fd)

    def close(self) -> None:
        self._close()  # a finalizer runs at most once


def open_regular(path, *, follow_links: bool = True) -> tuple[OpenFile, os.stat_result]:
    """Open a regular file for reading; raises ``OSError`` (``FileNotFoundError`` for anything
    that is not a regular file). ``O_NONBLOCK``: opening a FIFO must not hang."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW)
    file = OpenFile(os.open(path, flags))
    try:
        st = os.fstat(file.fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(errno.ENOENT, "not a regular file", str(path))
    except BaseException:
        file.close()
        raise
    return file, st


@dataclass
class StoredFile:
    """A complete file chosen to answer a request, already open.

    ``root`` and ``name`` say where it lies (``"cache"`` or ``"music"``, and its path inside
    that folder), for a backend that lets a proxy send it; ``etag_salt`` names the file in its
    validators (a rendition and its original must never share an ETag)."""

    file: OpenFile
    stat: os.stat_result
    content_type: str
    etag_salt: str
    root: str
    name: str


# --- Reading ------------------------------------------------------------------------------------

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
