"""The worker pool: N threads, each claiming one task at a time and driving one ffmpeg.

The same pool runs inside the web process (single node) and in ``manage.py cacheworker``
processes on any host (scale-out). Threads are enough: the work happens in ffmpeg
processes, and Python only waits on them. A housekeeping thread renews the leases of the
running tasks, stops tasks that were cancelled or taken over, and reclaims tasks whose
worker died.
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
from django.db.models import Q

from . import maintenance, queue, wakeup
from .cache import AudioCache, SourceChanged, SourceUnavailable, source_state
from .models import CacheTask
from .progress import ProgressCallback
from .transcoder import CacheUnwritable, FFmpegMissing, TranscodeError, TranscodeTimeout, check_ffmpeg

logger = logging.getLogger(__name__)
Status = CacheTask.Status

PROGRESS_INTERVAL = 1.0  # seconds between progress writes of one task


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class _Running:
    worker_id: str
    stop: threading.Event = field(default_factory=threading.Event)


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
    ):
        self.size = settings.AUDIO_CACHE_MAX_WORKERS if workers is None else workers
        if self.size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.burst = burst
        self.name = name or default_worker_name()
        self.poll_interval = poll_interval
        self.cache = AudioCache(cache_dir)
        self._stopping = threading.Event()
        self._wakeup = threading.Event()
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle_workers = 0
        self.processed = 0

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> "WorkerPool":
        """Check ffmpeg (raises ``FFmpegMissing``) and the cache folder (raises ``CacheUnwritable``),
        each with a clear message, then start the threads."""
        version = check_ffmpeg()
        try:
            self.cache.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. a regular file where a folder should be: say so, no traceback
            raise CacheUnwritable.from_os_error(self.cache.cache_dir, exc) from None
        logger.info("worker pool %s: %d workers, %s", self.name, self.size, version)
        queue.on_enqueue(self.wake)
        for n in range(self.size):
            thread = threading.Thread(
                target=self._work, args=(f"{self.name}/{n}",), name=f"cacheworker-{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        keeper = threading.Thread(target=self._housekeeping, name="cacheworker-lease", daemon=True)
        keeper.start()
        self._threads.append(keeper)
        wakeup.listen(self.wake, self._stopping)  # enqueues in other processes (with REDIS_URL)
        return self

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        """Stop claiming, kill running ffmpeg processes and hand their tasks back to the queue."""
        self._stopping.set()
        self._wakeup.set()
        queue.remove_enqueue_listener(self.wake)
        with self._lock:
            for running in self._running.values():
                running.stop.set()

    def join(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    # -- the loops ----------------------------------------------------------------------

    def _work(self, worker_id: str) -> None:
        try:
            while not self._stopping.is_set():
                close_old_connections()
                try:
                    task = queue.claim(worker_id)
                except Exception:
                    logger.exception("claim failed; retrying")
                    self._stopping.wait(self.poll_interval)
                    continue
                try:
                    if task is None:
                        if self.burst and self._queue_is_drained():
                            break
                        self._wakeup.wait(self.poll_interval)
                        self._wakeup.clear()
                        continue
                    self._run(task, worker_id)
                except Exception:
                    # The database went away mid-task (restart, "database is locked"): keep the
                    # thread; the task's lease expires and it is retried.
                    logger.exception("worker %s: database error; going on", worker_id)
                    self._stopping.wait(self.poll_interval)
        finally:
            connection.close()
            if self.burst and not self._stopping.is_set():
                with self._lock:
                    self._idle_workers += 1
                    if self._idle_workers >= self.size:
                        self._stopping.set()  # the housekeeper may go too

    def _queue_is_drained(self) -> bool:
        """Burst mode ends when nothing is pending or running (a retry waiting for its backoff counts)."""
        return not CacheTask.objects.filter(status__in=CacheTask.ACTIVE_STATUSES).exists()

    def _housekeeping(self) -> None:
        interval = max(0.5, settings.AUDIO_CACHE_LEASE_SECONDS / 4)
        try:
            while not self._stopping.wait(interval):
                close_old_connections()
                try:
                    with self._lock:
                        held = {pk: r for pk, r in self._running.items()}
                    for lost in queue.heartbeat({pk: r.worker_id for pk, r in held.items()}):
                        logger.info("task %s was cancelled or taken over; stopping its ffmpeg", lost)
                        held[lost].stop.set()
                    queue.reclaim_expired(self.cache.cache_dir)
                except Exception:
                    logger.exception("lease housekeeping failed; will retry")
        finally:
            connection.close()

    # -- one task ---------------------------------------------------------------------------

    def _run(self, task: CacheTask, worker_id: str) -> None:
        running = _Running(worker_id)
        with self._lock:
            self._running[task.pk] = running
        self._announce_start(task)
        started = time.monotonic()
        outcome, detail = "failed", ""
        try:
            outcome, detail = self._execute(task, worker_id, running)
        except Exception as exc:  # never let one task kill the worker thread
            logger.exception("task %s crashed", task.pk)
            outcome = queue.fail(task, worker_id, f"internal error: {exc}") or "lost"
        finally:
            with self._lock:
                if self._running.get(task.pk) is running:  # the task may have come back to another thread
                    del self._running[task.pk]
            self.processed += 1
        seconds = round(time.monotonic() - started, 2)
        size = int(detail.removeprefix("bytes=")) if outcome == Status.DONE and detail.startswith("bytes=") else None
        logger.info(
            "transcode task=%s track=%s quality=%s result=%s seconds=%.2f %s",
            task.pk, task.track_id, task.quality, outcome, seconds, detail,
            extra={"task": task.pk, "track": task.track_id, "quality": task.quality, "result": outcome,
                   "seconds": seconds, "bytes": size},
        )  # fmt: skip
        if outcome in (Status.DONE, Status.SKIPPED, Status.FAILED, Status.CANCELLED):
            try:
                self._announce_outcome(task, outcome, detail)
            except Exception:  # a batch is also finished by whoever reads its progress next
                logger.exception("could not update the batches of task %s", task.pk)

    def _announce_start(self, task: CacheTask) -> None:
        try:
            for batch in queue.batches_of(task):
                # The summary query runs only for ticks that are not throttled away.
                ProgressCallback(batch.pk).track_started(
                    task.track, task.quality, lambda batch=batch: queue.batch_summary(batch)
                )
        except Exception:
            logger.exception("could not announce task %s", task.pk)

    def _announce_outcome(self, task: CacheTask, outcome: str, detail: str) -> None:
        for batch in queue.batches_of(task):
            counts, just_finished = queue.update_batch(batch)
            callback = ProgressCallback(batch.pk)
            if outcome == Status.DONE:
                callback.track_cached(task.track, task.quality, counts)
            elif outcome == Status.FAILED:
                callback.track_failed(task.track, task.quality, counts, detail)
            else:
                callback.track_skipped(task.track, task.quality, counts, detail)
            if just_finished:
                callback.finished(counts)

    def _execute(self, task: CacheTask, worker_id: str, running: _Running) -> tuple[str, str]:
        track = task.track
        if not track.is_lossless:
            queue.finish(task, worker_id, Status.SKIPPED, "lossy source: streamed as is")
            return Status.SKIPPED, "lossy"
        try:
            source = source_state(track)
        except SourceUnavailable as exc:
            return queue.fail(task, worker_id, str(exc), permanent=True), str(exc)
        if not task.force and self.cache.fresh_rendition(track, task.quality, source=source) is not None:
            queue.finish(task, worker_id, Status.SKIPPED, "already cached")
            return Status.SKIPPED, "already cached"

        last_write = [0.0]

        def on_progress(fraction: float) -> None:
            now = time.monotonic()
            if now - last_write[0] >= PROGRESS_INTERVAL:
                last_write[0] = now
                queue.set_progress(task, worker_id, fraction)

        try:
            path = self.cache.transcode_file(
                track,
                task.quality,
                overwrite=True,
                temp_tag=queue.temp_tag(task.pk, task.attempts),
                still_allowed=lambda: queue.still_held(task, worker_id),
                on_progress=on_progress,
                on_output=lambda temp, frames: queue.set_output(task, worker_id, temp.name, frames),
                should_stop=lambda: running.stop.is_set() or self._stopping.is_set(),
            )
        except FFmpegMissing as exc:
            # Not the task's fault: give it back and stop this pool loudly.
            queue.hand_back(task, worker_id)
            logger.error("%s", exc)
            self.stop()
            return "handed back", str(exc)
        except SourceChanged as exc:
            return queue.fail(task, worker_id, str(exc)), str(exc)
        except SourceUnavailable as exc:
            return queue.fail(task, worker_id, str(exc), permanent=True), str(exc)
        except TranscodeTimeout as exc:
            return queue.fail(task, worker_id, str(exc)), str(exc)
        except TranscodeError as exc:
            if running.stop.is_set() or self._stopping.is_set():
                if self._stopping.is_set() and queue.hand_back(task, worker_id):
                    return "handed back", "pool stopping"
                return Status.CANCELLED, "stopped"
            return queue.fail(task, worker_id, str(exc)), (str(exc).splitlines() or [""])[-1]
        if not queue.finish(task, worker_id, Status.DONE):
            return "lost", "task was taken over; rendition kept"
        size = path.stat().st_size
        self._enforce_limits(task)
        return Status.DONE, f"bytes={size}"

    def _enforce_limits(self, task: CacheTask) -> None:
        """Size cap and age limit after each new rendition (never evicting the one just made)."""
        if not (settings.AUDIO_CACHE_MAX_SIZE or settings.AUDIO_CACHE_MAX_AGE_DAYS):
            return
        try:
            maintenance.enforce_limits(keep=Q(track_id=task.track_id, quality=task.quality))
        except Exception:  # eviction trouble must not fail a transcode that worked
            logger.exception("could not apply the cache limits")
