"""Reading a file ffmpeg is still writing (progressive streaming).

A ``GrowingFile`` is an open temporary file of a running transcode. For an MP3 its final size
is already known (the services plan it from the MP3's layout and the track's length); an Opus
or AAC stream's is not (its frames vary in size), so it is sent whole, as it grows, without a
length and without ranges. Its bytes are read as they are written: a range inside what is written goes out at once, a
range beyond it (a seek ahead) waits for ffmpeg. The reading ends, where the bytes end, when
the writer is done with the file: it removed it (a failed or stopped transcode), renamed it
into place (finished: nothing more will come), or stopped writing for longer than a lease.
"""

import asyncio
import errno
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from .files import OpenFile, read_chunks

logger = logging.getLogger(__name__)

# How often a starved body looks at the file again.
POLL_SECONDS = 0.02


@dataclass
class GrowingFile:
    """An open temporary file of a running transcode, and the size it will have (None: unknown)."""

    file: OpenFile
    path: Path
    size: int | None
    etag: str  # weak: the finished file differs in its Xing frame (or its tags), written last
    label: str  # for the log: which track and variant
    content_type: str = "audio/mpeg"


def stall_seconds() -> float:
    """A file that has not grown for this long has no live writer (its lease would have expired)."""
    return float(settings.AUDIO_CACHE_LEASE_SECONDS) + 5.0


async def read_growing(fd: int, start: int, length: int, path: Path | None = None) -> AsyncIterator[bytes]:
    """The bytes ``start`` to ``start + length`` of a file ffmpeg is writing, waiting for them
    as needed; ends early, where the bytes end, when the writer is done with the file (see the
    module's docstring). Errors reading it (a network file system's ``ESTALE`` once another
    host removed it) end it the same way."""
    position, end = start, start + length
    written, last_growth = -1, time.monotonic()
    patience = stall_seconds()
    try:
        while position < end:
            st = os.fstat(fd)
            if st.st_size != written:
                written, last_growth = st.st_size, time.monotonic()
            if written > position:
                # What is written so far, read as any file is (page cache or a thread).
                goal = min(end, written)
                async for chunk in read_chunks(fd, position, goal - position):
                    position += len(chunk)
                    yield chunk
                if position < goal:
                    return  # the file shrank under us
                continue
            if st.st_nlink == 0 or time.monotonic() - last_growth > patience or _renamed(path, st):
                return
            await asyncio.sleep(POLL_SECONDS)
    except OSError as exc:
        if exc.errno not in (errno.ESTALE, errno.EIO, errno.EBADF):
            raise
        logger.warning("the file being streamed became unreadable (%s); ending the response", exc)


def _renamed(path: Path | None, st: os.stat_result) -> bool:
    """The writer published the file (renamed it into place): it is complete as it is."""
    if path is None:
        return False
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return st.st_nlink > 0  # gone from its temporary name but still linked: renamed
    except OSError:
        return False
    return (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev)
