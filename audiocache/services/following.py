"""Following a transcode while ffmpeg writes it (progressive streaming, ``AUDIO_CACHE_PROGRESSIVE``).

On a miss the play service joins (or starts) the play-priority transcode and answers from
the task's temporary file as it grows, so a listener hears the rendition from the first second;
every listener of the same track and variant follows the same ffmpeg run.

Opus and AAC are followed without a length: their frames differ in size, so nobody knows the
final size until ffmpeg ends. They are sent whole as they grow (chunked, no ranges: an Ogg Opus
file as ffmpeg writes it, and for AAC an ADTS copy of the same encode, since the MP4 that is
kept has its index at the front only once finished); the next request gets the finished file.

Honest lengths (MP3): the rendition's frame count is planned from the track's probed length and
the file's first bytes give its header's length, so the final size is known before ffmpeg
ends (``transcode/mp3.py``). Responses carry that size, ranges are answered against it, and a
player can seek as in a finished file (a range beyond what is written waits for ffmpeg,
which runs at dozens of times real time). We chose this over a second, time-offset ffmpeg:
that one would encode other bytes for the same offsets (the encoder's state differs), so a
player could mix two different byte streams of one file.

The ETag is weak (``W/``): the bytes are those of the finished file except the Xing frame at
the start, which ffmpeg fills in when it ends. A weak tag never satisfies ``If-Range``, so no
client can complete an old partial copy with it; once the rendition is done the usual hit
path answers with the finished file's strong ETag. If the transcode fails or is stopped,
ffmpeg's file is removed: the body ends where the bytes end (the client sees a short
response), and the next request serves the original or follows the retry.

A play may also wait (at most ``AUDIO_CACHE_PROGRESSIVE_WAIT``) for a queued transcode to
write its first frame: in its own thread (``wait_for_output``), or on the event loop under
the ASGI fast path (``await_followable``), where the listeners of one task share one watch.
"""

import asyncio
import hashlib
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from ..delivery.files import open_regular
from ..delivery.growing import GrowingFile
from ..models import CacheTask
from ..qualities import DEFAULT_FORMAT, FORMATS, Format
from ..transcode import mp3
from ..transcode.ffmpeg import TEMP_PREFIX

Status = CacheTask.Status
FIRST_BYTES = 512  # an Opus or ADTS stream with its first page or frames


def _alive(task: CacheTask) -> bool:
    """Running, and its worker still renews its lease (a dead one holds it until it ends)."""
    return (
        task.status == Status.RUNNING and task.lease_expires_at is not None and task.lease_expires_at > timezone.now()
    )


@dataclass(frozen=True)
class TranscodeOutput:
    """The file a live attempt writes, with the length it was planned to have (MP3 only)."""

    temp_name: str
    frames: int | None
    task_id: int
    label: str
    spec: Format = FORMATS[DEFAULT_FORMAT]

    @classmethod
    def of_task(cls, task: CacheTask) -> "TranscodeOutput | None":
        """The output of a live attempt that can be followed (one whose length can be planned
        needs its plan), else None."""
        spec = task.variant.spec
        if not _alive(task) or not task.temp_name or (spec.planned_length and not task.planned_frames):
            return None
        return cls(task.temp_name, task.planned_frames, task.pk, f"track {task.track_id} at {task.variant.label}", spec)

    def open(self) -> GrowingFile | None:
        """The file, open, once ffmpeg has written its header; None if it cannot be followed
        (yet). Only a plain temporary name of ours, a regular file inside the cache folder, is
        ever opened, whatever the task row says."""
        name = self.temp_name
        if self.spec.planned_length and not self.frames:
            return None
        if not name.startswith(TEMP_PREFIX) or name != os.path.basename(name):
            return None
        path = Path(settings.AUDIO_CACHE_DIR) / name
        try:
            file, st = open_regular(path, follow_links=False)
        except (OSError, ValueError):  # not created yet, already gone, a link, a NUL in the name
            return None
        if not self.spec.planned_length:
            if st.st_size < FIRST_BYTES:  # nothing a player could start from yet
                file.close()
                return None
            digest = hashlib.sha256(f"{self.task_id}:{name}".encode()).hexdigest()[:24]
            return GrowingFile(file, path, None, f'W/"p{digest}"', self.label, self.spec.followed_type)
        try:
            layout = mp3.read_layout_of(file.fd)
        except (mp3.NotYet, mp3.NotMP3, OSError):
            file.close()
            return None
        size = mp3.final_size(layout, self.frames)
        digest = hashlib.sha256(f"{self.task_id}:{name}:{size}".encode()).hexdigest()[:24]
        return GrowingFile(file, path, size, f'W/"p{digest}"', self.label)


def follow_task(task: CacheTask | None) -> GrowingFile | None:
    """The growing file of this rendition's active task (``tasks.active_task``), if it can be followed now."""
    output = TranscodeOutput.of_task(task) if task is not None else None
    return output.open() if output is not None else None


def check_output(task_id: int) -> tuple[TranscodeOutput | None, bool]:
    """One look at a task a play waits for: ``(its output if it can be followed now, still
    worth waiting)``. One query, and a look at the file's first bytes."""
    task = CacheTask.objects.filter(pk=task_id).first()
    if task is None:
        return None, False
    if task.status == Status.PENDING:
        # Claimable now: a worker will take it soon. In its retry backoff: not soon.
        return None, task.available_at <= timezone.now()
    output = TranscodeOutput.of_task(task)
    if output is None:
        # Claimed, ffmpeg about to start: wait. Finished, failed, dead worker, or made without
        # a planned length: nothing to follow.
        return None, _alive(task) and not task.temp_name
    probe = output.open()
    if probe is None:
        return None, True  # ffmpeg has not written its first frame yet
    probe.file.close()
    return output, False


def wait_for_output(task_id: int) -> bool:
    """Block until the transcode's file can be followed (True), it cannot be, or the wait is
    over. For servers where each request has its own thread (WSGI, the test client)."""
    deadline = time.monotonic() + settings.AUDIO_CACHE_PROGRESSIVE_WAIT
    for delay in _delays():
        output, worth_waiting = check_output(task_id)
        if output is not None:
            return True
        if not worth_waiting or time.monotonic() + delay > deadline:
            return False
        time.sleep(delay)
    return False  # pragma: no cover - _delays never ends


# Under ASGI, the requests of one process that wait for the same task share one watch: listeners
# who start a mixtape together cost one look per interval, not one each (every look is a query
# on the process's one shared thread).
_watches: dict[int, asyncio.Task] = {}
_GAVE_UP = object()  # the watch's own time ran out (a later waiter may still have some)
_check_output = sync_to_async(check_output, thread_sensitive=True)


async def await_followable(task_id: int) -> bool:
    """``wait_for_output`` on the event loop, each look one short hop to the thread that holds
    the database connection."""
    deadline = time.monotonic() + settings.AUDIO_CACHE_PROGRESSIVE_WAIT
    while True:
        watch = _watches.get(task_id)
        if watch is None or watch.done():
            watch = _watches[task_id] = asyncio.ensure_future(_watch(task_id))
            watch.add_done_callback(lambda done: _watches.pop(task_id) if _watches.get(task_id) is done else None)
        try:
            # shield: a waiter that leaves (its client hung up, its time is over) leaves the watch to the others
            outcome = await asyncio.wait_for(asyncio.shield(watch), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return False
        if outcome is _GAVE_UP and time.monotonic() < deadline:
            continue
        return isinstance(outcome, TranscodeOutput)


async def _watch(task_id: int):
    deadline = time.monotonic() + settings.AUDIO_CACHE_PROGRESSIVE_WAIT
    for delay in _delays():
        output, worth_waiting = await _check_output(task_id)
        if output is not None or not worth_waiting:
            return output
        if time.monotonic() + delay > deadline:
            return _GAVE_UP
        await asyncio.sleep(delay)
    return None  # pragma: no cover - _delays never ends


def _delays():
    """Seconds between looks at a task a play waits for: every 20 ms for the first half second
    (ffmpeg's first frame comes about 0.15 s after the claim), every 50 ms for the next, then
    every 250 ms (each look is a query on the process's one shared thread)."""
    yield from itertools.repeat(0.02, 25)
    yield from itertools.repeat(0.05, 10)
    yield from itertools.repeat(0.25)
