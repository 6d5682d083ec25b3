"""Stream a rendition while ffmpeg is still writing it (``AUDIO_CACHE_PROGRESSIVE``).

On a miss the stream view joins (or starts) the play-priority transcode and answers from the
task's temporary file as it grows, so a listener hears MP3 from the first second; every
listener of the same track and quality follows the same ffmpeg run.

Honest lengths: the transcoder fixes the rendition's frame count in advance and the file's
first bytes give its header's length, so the final size is known exactly
(audiocache/mp3.py). Responses carry that size, ranges are answered against it, and a
player can seek as in a finished file:

- a range inside what is written is sent at once;
- a range beyond it (a seek ahead) gets its headers at once and its bytes as ffmpeg writes
  them. The transcode runs at dozens of times real time, so a seek to the middle of a
  4-minute track waits for about half of a few seconds of encoding. We chose this over a
  second, time-offset ffmpeg: that one would encode other bytes for the same offsets (the
  encoder's state differs), so a player could mix two different byte streams of one file.

The ETag is weak (``W/``): the bytes are those of the finished file except the Xing frame at
the start, which ffmpeg fills in when it ends. A weak tag never satisfies ``If-Range``, so no
client can complete an old partial copy with it; once the rendition is done the usual hit
path answers with the finished file's strong ETag.

If the transcode fails or is stopped, ffmpeg's file is removed: the body ends where the
bytes end (the client sees a short response), and the next request serves the original
(a failed source is quarantined).
"""

import asyncio
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse

from . import mp3
from .models import CacheTask
from .streaming import CHUNK_SIZE, FileIdentity, OpenFile, read_cached, serve_open_file
from .transcoder import TEMP_PREFIX

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.02  # how often a starved body or a waiting request looks again


@dataclass
class Following:
    """An open temporary file of a running transcode, and the size it will have."""

    file: OpenFile
    size: int
    etag: str
    label: str  # for the log: which track and quality
    ended_early: bool = False  # a body stopped short: the transcode failed or stalled


def running_output(track_id: int, quality: str) -> tuple[int, str, int | None] | None:
    """``(task id, temporary file name, planned frames)`` of the running transcode, if it has started writing."""
    row = (
        CacheTask.objects.filter(track_id=track_id, quality=quality, status=CacheTask.Status.RUNNING)
        .exclude(temp_name="")
        .values_list("pk", "temp_name", "planned_frames")
        .first()
    )
    return row


def task_is_active(task_id: int) -> bool:
    return CacheTask.objects.filter(pk=task_id, status__in=CacheTask.ACTIVE_STATUSES).exists()


def follow(track_id: int, quality: str) -> Following | None:
    """The running transcode's file, opened, once its header is written; None if there is none
    to follow (not started, no planned length, not written yet, or gone)."""
    found = running_output(track_id, quality)
    if found is None:
        return None
    task_id, temp_name, frames = found
    # Only a plain temporary name of ours inside the cache folder, whatever the row says.
    if not frames or temp_name != os.path.basename(temp_name) or not temp_name.startswith(TEMP_PREFIX):
        return None
    path = Path(settings.AUDIO_CACHE_DIR) / temp_name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None  # ffmpeg has not created it yet, or the attempt already ended
    file = OpenFile(fd)
    try:
        layout = mp3.read_layout_at(lambda size, offset: os.pread(fd, size, offset))
    except (mp3.NotYet, mp3.NotMP3, OSError):
        file.close()
        return None
    size = mp3.final_size(layout, frames)
    digest = hashlib.sha256(f"{task_id}:{temp_name}:{size}".encode()).hexdigest()[:24]
    return Following(file, size, f'W/"p{digest}"', f"track {track_id} at {quality}")


def serve(request, following: Following, headers: dict) -> HttpResponse:
    """Answer GET/HEAD from the growing file, with ranges against its final size."""
    ident = FileIdentity(following.size, None, following.etag)
    # nginx in front (AUDIO_CACHE_SENDFILE=nginx) must pass the bytes on as they come.
    headers = {**headers, "X-Accel-Buffering": "no"}
    response = serve_open_file(
        request, following.file, ident, lambda start, length: _body(following, start, length), "audio/mpeg", headers
    )
    response.following = following  # the ASGI handler asks whether a short body was expected
    return response


async def _body(following: Following, start: int, length: int):
    sent = 0
    async for chunk in read_growing(following.file.fd, start, length):
        sent += len(chunk)
        yield chunk
    if sent < length:
        following.ended_early = True
        logger.warning(
            "progressive stream of %s ended after %d of %d bytes: its transcode failed or stalled "
            "(the client sees a short response; the next request serves the original or a retry)",
            following.label,
            sent,
            length,
        )


def ended_early(response) -> bool:
    """Whether ``response`` is a progressive stream whose body stopped short on purpose."""
    following = getattr(response, "following", None)
    return following is not None and following.ended_early


def stall_seconds() -> float:
    """A writer that adds nothing for this long is presumed dead (its lease would have expired)."""
    return float(settings.AUDIO_CACHE_LEASE_SECONDS) + 5.0


async def read_growing(fd: int, start: int, length: int):
    """The bytes ``start`` to ``start + length`` of a file ffmpeg is writing, waiting for them
    as needed. Ends early when the writer removed the file (a failed or stopped transcode)
    or stalled."""
    loop = asyncio.get_running_loop()
    position, end = start, start + length
    last_growth = time.monotonic()
    patience = stall_seconds()
    while position < end:
        st = os.fstat(fd)
        if st.st_size > position:
            size = min(CHUNK_SIZE, end - position, st.st_size - position)
            chunk = read_cached(fd, size, position)
            if not isinstance(chunk, bytes) or not chunk:
                chunk = await loop.run_in_executor(None, os.pread, fd, size, position)
            else:
                await asyncio.sleep(0)
            if not chunk:
                return
            position += len(chunk)
            last_growth = time.monotonic()
            yield chunk
            continue
        # Nothing new. A published file keeps its link (renamed); an abandoned one has none left.
        if st.st_nlink == 0 or time.monotonic() - last_growth > patience:
            return
        await asyncio.sleep(POLL_SECONDS)


# --- Waiting for a transcode to start ----------------------------------------------------------


def try_follow(track_id: int, quality: str, task_id: int) -> tuple[Following | None, bool]:
    """One look: ``(following, still worth waiting)``."""
    following = follow(track_id, quality)
    if following is not None:
        return following, False
    return None, task_is_active(task_id)


def wait_to_follow(track_id: int, quality: str, task_id: int) -> Following | None:
    """Block until the transcode's file can be followed (or it ended, or the wait is over).

    For servers where each request has its own thread (WSGI, the test client); under ASGI
    the stream view waits on the event loop instead (``PendingResponse``)."""
    deadline = time.monotonic() + settings.AUDIO_CACHE_PROGRESSIVE_WAIT
    while True:
        following, worth_waiting = try_follow(track_id, quality, task_id)
        if following is not None or not worth_waiting or time.monotonic() >= deadline:
            return following
        time.sleep(POLL_SECONDS)


class PendingResponse(HttpResponse):
    """Returned by the stream view under ASGI when the transcode has not started writing yet.

    The ASGI stream handler (audiocache/lean.py) awaits ``resolve()`` for the real response
    rather than holding a thread while ffmpeg starts."""

    def __init__(self, resolve):
        super().__init__(status=202)
        self.resolve = resolve
