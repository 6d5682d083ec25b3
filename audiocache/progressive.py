"""Stream a rendition while ffmpeg is still writing it (``AUDIO_CACHE_PROGRESSIVE``).

On a miss the stream view joins (or starts) the play-priority transcode and answers from the
task's temporary file as it grows, so a listener hears MP3 from the first second; every
listener of the same track and quality follows the same ffmpeg run.

Honest lengths: the rendition's frame count is planned from the track's probed length and
the file's first bytes give its header's length, so the final size is known before ffmpeg
ends (audiocache/mp3.py). Responses carry that size, ranges are answered against it, and a
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
(a failed source is quarantined) or follows the retry.
"""

import asyncio
import errno
import hashlib
import itertools
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone

from . import mp3
from .models import CacheTask
from .streaming import FileIdentity, OpenFile, read_chunks, serve_open_file
from .transcoder import TEMP_PREFIX

logger = logging.getLogger(__name__)

Status = CacheTask.Status
# How often a starved body looks at the file again.
POLL_SECONDS = 0.02


@dataclass
class Following:
    """An open temporary file of a running transcode, and the size it will have."""

    file: OpenFile
    path: Path
    size: int
    etag: str
    label: str  # for the log: which track and quality
    ended_early: bool = False  # a body stopped short: the transcode failed or stalled


def _open_output(temp_name: str, frames: int | None, task_id: int, label: str) -> Following | None:
    """Open a running attempt's file once its header is written; None if it cannot be followed
    (yet). Only a plain temporary name of ours, a regular file inside the cache folder, is ever
    opened, whatever the task row says."""
    if not frames or not temp_name.startswith(TEMP_PREFIX) or temp_name != os.path.basename(temp_name):
        return None
    path = Path(settings.AUDIO_CACHE_DIR) / temp_name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    except (OSError, ValueError):  # not created yet, already gone, a link, a NUL in the name
        return None
    file = OpenFile(fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise mp3.NotMP3("not a regular file")
        layout = mp3.read_layout_of(fd)
    except (mp3.NotYet, mp3.NotMP3, OSError):
        file.close()
        return None
    size = mp3.final_size(layout, frames)
    digest = hashlib.sha256(f"{task_id}:{temp_name}:{size}".encode()).hexdigest()[:24]
    return Following(file, path, size, f'W/"p{digest}"', label)


def _alive(task: CacheTask) -> bool:
    """Running, and its worker still renews its lease (a dead one holds it until it ends)."""
    return (
        task.status == Status.RUNNING and task.lease_expires_at is not None and task.lease_expires_at > timezone.now()
    )


@dataclass(frozen=True)
class Output:
    """A running attempt's file that can be followed: what ``_open_output`` needs to open it."""

    temp_name: str
    frames: int
    task_id: int
    label: str

    @classmethod
    def of(cls, task: CacheTask) -> "Output | None":
        """The file of a live attempt that has one with a planned length, else None."""
        if not _alive(task) or not task.temp_name or not task.planned_frames:
            return None
        return cls(task.temp_name, task.planned_frames, task.pk, f"track {task.track_id} at {task.quality}")

    def open(self) -> Following | None:
        return _open_output(self.temp_name, self.frames, self.task_id, self.label)


def follow(task: CacheTask | None) -> Following | None:
    """The file of this rendition's active task (``queue.active_task``), if it can be followed now."""
    output = Output.of(task) if task is not None else None
    return output.open() if output is not None else None


def look(task_id: int) -> tuple[Output | None, bool]:
    """One look at a task a request waits for: ``(its file if it can be followed now, still
    worth waiting)``. One query, and a look at the file's first bytes."""
    task = CacheTask.objects.filter(pk=task_id).first()
    if task is None:
        return None, False
    if task.status == Status.PENDING:
        # Claimable now: a worker will take it soon. In its retry backoff: not soon.
        return None, task.available_at <= timezone.now()
    output = Output.of(task)
    if output is None:
        # Claimed, ffmpeg about to start: wait. Finished, failed, dead worker, or made without
        # a planned length: nothing to follow.
        return None, _alive(task) and not task.temp_name
    probe = output.open()
    if probe is None:
        return None, True  # ffmpeg has not written its first frame yet
    probe.file.close()
    return output, False


def wait_to_follow(task_id: int) -> Following | None:
    """Block until the transcode's file can be followed, it cannot be, or the wait is over.

    For servers where each request has its own thread (WSGI, the test client); under ASGI
    the stream view waits on the event loop instead (``await_to_follow``)."""
    deadline = time.monotonic() + settings.AUDIO_CACHE_PROGRESSIVE_WAIT
    for delay in _delays():
        output, worth_waiting = look(task_id)
        if output is not None:
            return output.open()
        if not worth_waiting or time.monotonic() + delay > deadline:
            return None
        time.sleep(delay)


# Under ASGI, the requests of one process that wait for the same task share one watch: listeners
# who start a mixtape together cost one look per interval, not one each (every look is a query
# on the process's one shared thread).
_watches: dict[int, asyncio.Task] = {}
_GAVE_UP = object()  # the watch's own time ran out (a later waiter may still have some)


async def await_to_follow(task_id: int, run_sync) -> Following | None:
    """``wait_to_follow`` on the event loop; ``run_sync`` runs a look in the thread that may
    use the database (a sync_to_async wrapper)."""
    deadline = time.monotonic() + settings.AUDIO_CACHE_PROGRESSIVE_WAIT
    while True:
        watch = _watches.get(task_id)
        if watch is None or watch.done():
            watch = _watches[task_id] = asyncio.ensure_future(_watch(task_id, run_sync))
            watch.add_done_callback(lambda done: _watches.pop(task_id) if _watches.get(task_id) is done else None)
        try:
            # shield: a waiter that leaves (its client hung up, its time is over) leaves the watch to the others
            outcome = await asyncio.wait_for(asyncio.shield(watch), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return None
        if outcome is _GAVE_UP and time.monotonic() < deadline:
            continue
        if not isinstance(outcome, Output):
            return None
        # Each listener reads through a descriptor of its own; opening is a few small reads.
        return await asyncio.get_running_loop().run_in_executor(None, outcome.open)


async def _watch(task_id: int, run_sync):
    deadline = time.monotonic() + settings.AUDIO_CACHE_PROGRESSIVE_WAIT
    for delay in _delays():
        output, worth_waiting = await run_sync(look, task_id)
        if output is not None or not worth_waiting:
            return output
        if time.monotonic() + delay > deadline:
            return _GAVE_UP
        await asyncio.sleep(delay)


def _delays():
    """Seconds between looks at a task a request waits for: every 20 ms for the first half second
    (ffmpeg's first frame comes about 0.15 s after the claim), every 50 ms for the next, then
    every 250 ms (each look is a query on the process's one shared thread)."""
    yield from itertools.repeat(0.02, 25)
    yield from itertools.repeat(0.05, 10)
    yield from itertools.repeat(0.25)


class PendingResponse(HttpResponse):
    """Returned by the stream view under ASGI when the transcode has not started writing yet:
    the ASGI stream handler (audiocache/lean.py) awaits ``resolve()`` for the real response
    rather than holding a thread while ffmpeg starts. Should one ever be sent as it is, it says
    so (500) instead of passing for an empty answer."""

    def __init__(self, resolve):
        super().__init__(b"Internal error: an unresolved stream response.", status=500, content_type="text/plain")
        self.resolve = resolve


# --- Serving ----------------------------------------------------------------------------------


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


def ended_early(response) -> bool:
    """Whether ``response`` is a progressive stream whose body stopped short on purpose."""
    following = getattr(response, "following", None)
    return following is not None and following.ended_early


async def _body(following: Following, start: int, length: int):
    sent = 0
    async for chunk in read_growing(following.file.fd, start, length, following.path):
        sent += len(chunk)
        yield chunk
    if sent < length:
        following.ended_early = True
        logger.warning(
            "progressive stream of %s ended after %d of %d bytes: its transcode failed, stalled or made "
            "another length than planned (the client sees a short response; the next request serves "
            "the finished file, the original or a retry)",
            following.label,
            sent,
            length,
        )


def stall_seconds() -> float:
    """A file that has not grown for this long has no live writer (its lease would have expired)."""
    return float(settings.AUDIO_CACHE_LEASE_SECONDS) + 5.0


async def read_growing(fd: int, start: int, length: int, path: Path | None = None):
    """The bytes ``start`` to ``start + length`` of a file ffmpeg is writing, waiting for them
    as needed. Ends early, where the bytes end, when the writer is done with the file: it
    removed it (a failed or stopped transcode), renamed it into place (finished: nothing more
    will come), or stopped writing for ``stall_seconds()``. Errors reading it (a network file
    system's ``ESTALE`` once another host removed it) end it the same way."""
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
