"""The worker pool: at most N ffmpeg processes at once, run by 2N threads that each claim one
task at a time and run it.

The same pool runs inside the web process (single node, started by ``lifespan.py``) and in
``manage.py cacheworker`` processes on any host (scale-out). Threads are enough: the work
happens in ffmpeg processes, and Python only waits on them. What one task does (the
transcode, the rendition row, the outcome, the batch events) is ``services.run_task``; the
pool only claims, runs and keeps leases. A housekeeping thread renews the leases of the
running tasks, stops tasks that were cancelled or taken over, and reclaims tasks whose
worker died.

N is a number of encoder slots, not of threads: a thread takes a slot before it claims a task
and gives it back the moment its ffmpeg exits. What follows (tags, fsync, publish, the rows and
events, about 15 ms a task, far more when SQLite is busy) then runs beside the next task's
ffmpeg instead of leaving its CPU idle; and since a task is only claimed once a slot is free,
the most urgent one (a listener's) is always the next to be encoded.
"""

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection

from config import database

from ..models import CacheTask
from ..services.cleanup import sweep_temporary_files
from ..services.transcoding import run_task
from ..transcode.ffmpeg import CacheUnwritable, check_ffmpeg
from . import batches, doorbell, tasks

logger = logging.getLogger(__name__)


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class _Running:
    worker_id: str
    stop: threading.Event = field(default_factory=threading.Event)


class _EncoderSlots:
    """At most ``size`` ffmpeg processes at once (see the module's docstring)."""

    def __init__(self, size: int):
        self._free = size
        self._changed = threading.Condition()

    def take(self, stopping: threading.Event, timeout: float) -> bool:
        """Wait (at most ``timeout``) for a free slot and take it; False when none came or the
        pool is stopping (``wake_all`` cuts the wait short then)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._free == 0 and not stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            if stopping.is_set():
                return False
            self._free -= 1
            return True

    def give_back(self) -> None:
        with self._changed:
            self._free += 1
            self._changed.notify()

    def wake_all(self) -> None:
        with self._changed:
            self._changed.notify_all()


class _HeldSlot:
    """The slot one thread holds for one task: given back at ffmpeg's exit or at the end of the
    task, whichever comes first, and only once. Used by its own thread only."""

    def __init__(self, slots: _EncoderSlots):
        self._slots = slots
        self._held = True

    def give_back(self) -> None:
        if self._held:
            self._held = False
            self._slots.give_back()


class WorkerPool:
    """Run up to ``workers`` transcodes at once until ``stop()`` (or, with ``burst``, until idle)."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        burst: bool = False,
        name: str | None = None,
        poll_interval: float = 1.0,
        cache_dir: Path | None = None,
        give_up_after: float | None = None,
    ):
        self.size = settings.AUDIO_CACHE_MAX_WORKERS if workers is None else workers
        if self.size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.burst = burst
        self.name = name or default_worker_name()
        self.poll_interval = poll_interval
        self.cache_dir = Path(cache_dir or settings.AUDIO_CACHE_DIR)
        self._stopping = threading.Event()
        self._wakeup = threading.Event()
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._slots = _EncoderSlots(self.size)
        self.thread_count = 2 * self.size  # a thread finishing its task for each one encoding
        self._idle_workers = 0
        self.processed = 0
        # The database away: one thread at a time probes it (and logs), the others wait their turn.
        self.give_up_after = give_up_after  # seconds of outage before the pool stops (None: never)
        self.gave_up: str | None = None  # why it stopped, when it did
        self._database_lock = threading.Lock()
        self._database_back_at = 0.0
        # The cache folder full or unwritable: the whole pool pauses (one task tries per pause),
        # doubling while it lasts, instead of running ffmpeg on every queued task in turn.
        self._machine_failures = 0
        self._paused_until = 0.0

    # -- lifecycle ------------------------------------------------------------------

    def start(self, *, ffmpeg_version: str | None = None) -> "WorkerPool":
        """Check ffmpeg (raises ``FFmpegMissing``) and the cache folder (raises ``CacheUnwritable``),
        each with a clear message, then start the threads. ``ffmpeg_version``: the caller checked
        ffmpeg itself (``check_ffmpeg``'s answer), while it did other work."""
        version = ffmpeg_version or check_ffmpeg()
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. a regular file where a folder should be: say so, no traceback
            raise CacheUnwritable.from_os_error(self.cache_dir, exc) from None
        logger.info("worker pool %s: %d workers, %s", self.name, self.size, version)
        swept = sweep_temporary_files(self.cache_dir)
        if swept:
            logger.info("worker pool %s: removed %d temporary files of transcodes that died", self.name, swept)
        doorbell.on_ring(self.wake)
        for n in range(self.thread_count):
            thread = threading.Thread(
                target=self._work, args=(f"{self.name}/{n}",), name=f"cacheworker-{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        keeper = threading.Thread(target=self._housekeeping, name="cacheworker-lease", daemon=True)
        keeper.start()
        self._threads.append(keeper)
        doorbell.listen(self.wake, self._stopping)  # enqueues in other processes (with REDIS_URL)
        return self

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        """Stop claiming, kill running ffmpeg processes and hand their tasks back to the queue."""
        self._stopping.set()
        self._wakeup.set()
        self._slots.wake_all()
        doorbell.off_ring(self.wake)
        with self._lock:
            for running in self._running.values():
                running.stop.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def join(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    # -- the loops ----------------------------------------------------------------------

    def _work(self, worker_id: str) -> None:
        try:
            while not self._stopping.is_set():
                pause = self._paused_until - time.monotonic()
                if pause > 0:
                    self._stopping.wait(min(pause, self.poll_interval * 5))
                    continue
                if not self._slots.take(self._stopping, self.poll_interval):
                    continue  # every encoder busy (or stopping): look at the loop's conditions again
                slot = _HeldSlot(self._slots)
                try:
                    if self._claim_and_run(worker_id, slot):
                        break  # a burst with nothing left to do
                finally:
                    slot.give_back()
        finally:
            connection.close()
            if self.burst and not self._stopping.is_set():
                with self._lock:
                    self._idle_workers += 1
                    if self._idle_workers >= self.thread_count:
                        self._stopping.set()  # the housekeeper may go too

    def _claim_and_run(self, worker_id: str, slot: _HeldSlot) -> bool:
        """Claim a task and run it, holding ``slot`` until its ffmpeg exits; True when a burst
        has nothing left to do."""
        close_old_connections()
        try:
            task = tasks.claim(worker_id)
        except Exception as exc:
            if not self._wait_for_database(exc):
                logger.exception("claim failed; retrying")
                self._stopping.wait(self.poll_interval)
            return False
        try:
            if task is None:
                slot.give_back()  # idle threads hold no slot
                if self.burst and self._queue_is_drained():
                    return True
                self._idle()
                return False
            self._run(task, worker_id, slot)
        except Exception as exc:
            # The database went away mid-task (restart, "database is locked"): keep the
            # thread; the task's lease expires and it is retried.
            if not self._wait_for_database(exc):
                logger.exception("worker %s: database error; going on", worker_id)
                self._stopping.wait(self.poll_interval)
        return False

    def _wait_for_database(self, exc: BaseException) -> bool:
        """When ``exc`` means the database cannot be reached: wait until it can, trying again
        with backoff and one log line per try, and return True (False for any other error).

        Every thread of the pool meets the outage; the first probes and logs, the others queue
        behind it and go on once it has seen the database back. With ``give_up_after`` the pool
        stops after that long (``cacheworker --exit-on-db-loss``)."""
        if not isinstance(exc, database.UNREACHABLE_ERRORS):
            return False
        failed_at = time.monotonic()
        with self._database_lock:
            if self._database_back_at > failed_at or self._stopping.is_set():
                return True  # another thread waited it out meanwhile, or we are stopping
            why = database.unreachable()
            if why is None:
                return False  # reachable: a real error of the query, logged as such
            delay, attempt = 1.0, 1
            while why is not None and not self._stopping.is_set():
                waited = time.monotonic() - failed_at
                if self.give_up_after is not None and waited >= self.give_up_after:
                    self.gave_up = f"{database.message(why)}; gave up after {waited:.0f} s"
                    logger.error("worker pool %s: %s", self.name, self.gave_up)
                    self.stop()
                    return True
                if self.give_up_after is not None:
                    delay = min(delay, max(0.1, self.give_up_after - waited))
                logger.warning(
                    "worker pool %s: %s; try %d, next in %.0f s", self.name, database.message(why), attempt, delay
                )
                self._stopping.wait(delay)
                delay, attempt = min(delay * 2, 30.0), attempt + 1
                why = database.unreachable()
            if why is None:
                self._database_back_at = time.monotonic()
                logger.warning(
                    "worker pool %s: the database is back after %.0f s; going on",
                    self.name,
                    self._database_back_at - failed_at,
                )
        return True

    def _idle(self) -> None:
        """Wait for a ring, at most one poll interval. The bell is shared by every worker of the
        pool: one that clears it must not swallow the ring of ``stop()``, or another worker would
        sleep a whole interval before it notices (stop sets ``_stopping`` before it rings)."""
        self._wakeup.wait(self.poll_interval)
        if not self._stopping.is_set():
            self._wakeup.clear()
            if self._stopping.is_set():
                self._wakeup.set()

    def _queue_is_drained(self) -> bool:
        """Burst mode ends when nothing is pending or running (a retry waiting for its backoff
        counts; a task waiting for the machine to be fixed does not: it could wait for days)."""
        return (
            not CacheTask.objects.filter(status__in=CacheTask.ACTIVE_STATUSES)
            .exclude(status=CacheTask.Status.PENDING, error__startswith=tasks.WAITING_PREFIX)
            .exists()
        )

    def _housekeeping(self) -> None:
        interval = max(0.5, settings.AUDIO_CACHE_LEASE_SECONDS / 4)
        try:
            while not self._stopping.wait(interval):
                close_old_connections()
                try:
                    with self._lock:
                        held = dict(self._running)
                    for lost in tasks.heartbeat({pk: r.worker_id for pk, r in held.items()}):
                        logger.info("task %s was cancelled or taken over; stopping its ffmpeg", lost)
                        held[lost].stop.set()
                    tasks.reclaim_expired(self.cache_dir)
                except database.UNREACHABLE_ERRORS as exc:  # the workers report the outage
                    logger.debug("lease housekeeping: %s", database.reason(exc))
                except Exception:
                    logger.exception("lease housekeeping failed; will retry")
        finally:
            connection.close()

    def _run(self, task: CacheTask, worker_id: str, slot: _HeldSlot) -> None:
        running = _Running(worker_id)
        with self._lock:
            self._running[task.pk] = running
        try:
            outcome = run_task(
                task,
                worker_id,
                cancelled=running.stop.is_set,
                shutting_down=self._stopping.is_set,
                cache_dir=self.cache_dir,
                machine_delay=tasks.machine_retry_delay(self._machine_failures + 1),
                on_encoder_exit=slot.give_back,
            )
        finally:
            with self._lock:
                if self._running.get(task.pk) is running:  # the task may have come back to another thread
                    del self._running[task.pk]
            self.processed += 1
        if outcome.ffmpeg_missing:
            self.stop()  # not the task's fault: run_task handed it back; stop this pool loudly
        with self._lock:
            if outcome.machine_trouble and self.burst:
                # Nothing more can be done now: the task waits for the machine, --burst does not.
                logger.warning("worker pool %s: the cache folder failed; ending the burst", self.name)
                self._stopping.set()
                self._wakeup.set()
            elif outcome.machine_trouble:
                self._machine_failures += 1
                delay = tasks.machine_retry_delay(self._machine_failures).total_seconds()
                self._paused_until = time.monotonic() + delay
            elif outcome.status == CacheTask.Status.DONE:
                self._machine_failures = 0


def run_batch_inline(batch, workers: int, on_progress=None, *, ffmpeg_version: str | None = None):
    """Run a pool in this process until ``batch`` is finished (it may help with other queued
    work too); returns the batch's counts. Raises ``FFmpegMissing``/``CacheUnwritable`` before
    any work when the pool cannot start."""
    pool = WorkerPool(workers, name=f"inline-{batch.pk.hex[:8]}").start(ffmpeg_version=ffmpeg_version)
    try:
        return batches.follow(batch, on_progress)
    finally:
        pool.stop()
        pool.join(timeout=30)
