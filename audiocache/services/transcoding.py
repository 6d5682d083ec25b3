"""Making renditions: one transcode now (``make_rendition``), and one queued task run by a
worker from start to outcome (``run_task``).

``run_task`` is the policy the pool applies to every task it claims: lossy and missing
sources are settled without ffmpeg, a fresh rendition is not made twice, ffmpeg's failures
are retried with backoff and then quarantined, a source that changed mid-transcode is tried
again, a full or unwritable cache folder makes the task wait without spending its attempts
(the source is not to blame), a pool shutting down hands its tasks back; then the batches waiting for the task hear
how it ended, and the cache's size cap and age limit are applied.
"""

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from mixtapes.files import SourceState, SourceUnavailable, source_state
from mixtapes.models import Track
from mixtapes.probe import last_line
from mixtapes.tags import SourceTags, read_source_tags

from ..events.sending import BatchEvents
from ..models import CachedRendition, CacheTask
from ..qualities import Variant, allowed_variant
from ..queue import batches, tasks
from ..renditions import cache_file_name, check_planned_size, is_fresh, planned_frames, rendition_path
from ..transcode import tags
from ..transcode.ffmpeg import (
    ENCODER_PROFILES,
    CacheUnwritable,
    FFmpegMissing,
    SourceFacts,
    TranscodeError,
    TranscodeTimeout,
    rendition_rate,
    transcode,
)
from . import cleanup

logger = logging.getLogger(__name__)
Status = CacheTask.Status

PROGRESS_INTERVAL = 1.0  # seconds between progress writes of one task


class SourceChanged(SourceUnavailable):
    """The file changed during the transcode: worth another attempt, unlike a missing file."""


def fresh_rendition(track: Track, variant: Variant | str, source: SourceState | None = None, cache_dir=None):
    """The rendition of ``variant`` if it is fresh, else None; ``source`` spares a stat when known."""
    rendition = CachedRendition.objects.filter(track=track, **Variant.of(variant).lookup).first()
    if rendition is None:
        return None
    try:
        source = source or source_state(track)
    except SourceUnavailable:
        return None
    return rendition if is_fresh(rendition, source, cache_dir) else None


def make_rendition(
    track: Track,
    variant: Variant | str,
    *,
    overwrite: bool = False,
    cache_dir: Path | None = None,
    still_allowed: Callable[[], bool] | None = None,
    on_output: Callable[[Path, int | None], None] | None = None,
    **transcode_options,
) -> Path:
    """Make (or re-make with ``overwrite``) the rendition now, in this thread; returns its path.

    Raises ``SourceUnavailable`` or ``TranscodeError``; a failure never removes a good rendition.
    ``still_allowed`` (a worker's "do I still hold this task?") is asked just before the new
    file would replace the old one. ``on_output(temporary path, planned frames or None)`` is
    called once ffmpeg runs (listeners may follow that file while it grows).
    """
    variant = allowed_variant(variant)  # ValueError for an unknown one, or one turned off
    cache_dir = Path(cache_dir or settings.AUDIO_CACHE_DIR)
    if not overwrite:
        rendition = fresh_rendition(track, variant, cache_dir=cache_dir)
        if rendition is not None:
            return rendition_path(rendition, cache_dir)
    before = source_state(track)
    destination = cache_dir / cache_file_name(track.path, variant)
    # Planned only for listeners who may follow the file (progressive streaming), and only for a
    # format whose length follows from its frames (MP3); the others are followed without one.
    frames = planned_frames(track, before) if settings.AUDIO_CACHE_PROGRESSIVE and variant.spec.planned_length else None
    facts = SourceFacts(track.sample_rate, track.channels, track.has_cover, track.duration)
    source_tags = _with_scanned(read_source_tags(before.path), track)

    def check_before_publish() -> None:
        # Checked before the rename, so a stale result never replaces a newer rendition.
        if source_state(track) != before:
            raise SourceChanged("the source file changed while it was being transcoded")
        if still_allowed is not None and not still_allowed():
            raise TranscodeError("stopped: the task was taken over by another worker")

    size = transcode(
        before.path,
        destination,
        variant,
        facts,
        before_publish=check_before_publish,
        on_output=None if on_output is None else lambda temp: on_output(temp, frames),
        finish=lambda path: _carry_tags(path, variant, track, source_tags),
        reserve=tags.mp3_reserve(source_tags) if variant.format == "mp3" else 0,
        **transcode_options,
    )
    # Its old file name, if it had one: a file of the seed's naming is left to remove.
    old_name = CachedRendition.objects.filter(track=track, **variant.lookup).values_list("file_name", flat=True).first()
    CachedRendition.objects.update_or_create(
        track=track,
        **variant.lookup,
        defaults={
            "bitrate": variant.bitrate,
            "file_name": destination.name,
            "size": size,
            "source_size": before.size,
            "source_mtime_ns": before.mtime_ns,
            "encoder_profile": ENCODER_PROFILES[variant.format],
            "created_at": timezone.now(),
        },
    )
    if old_name and old_name != destination.name:
        replaced = rendition_path(CachedRendition(file_name=old_name), cache_dir)  # checked: inside the cache folder
        if replaced is not None:
            replaced.unlink(missing_ok=True)
    logger.info("rendition track=%s variant=%s bytes=%s", track.pk, variant, size)
    if frames is not None:
        check_planned_size(destination, size, frames, track)
    return destination


def _with_scanned(found: SourceTags, track: Track) -> SourceTags:
    """The source's tags as mutagen reads them (bounded), completed by what the scan read with
    ffprobe where mutagen reads nothing (a WAV's RIFF INFO, TTA): a rendition never has fewer
    tags than the library shows."""

    def first(value, fallback):
        return value if value not in (None, "") else fallback

    return dataclasses.replace(
        found,
        title=first(found.title, track.title),
        artist=first(found.artist, track.artist),
        album=first(found.album, track.album),
        album_artist=first(found.album_artist, track.album_artist),
        track=first(found.track, track.track_number),
        disc=first(found.disc, track.disc_number),
        track_gain=first(found.track_gain, track.replaygain_track_gain),
        track_peak=first(found.track_peak, track.replaygain_track_peak),
        album_gain=first(found.album_gain, track.replaygain_album_gain),
        album_peak=first(found.album_peak, track.replaygain_album_peak),
    )


def _carry_tags(rendition: Path, variant: Variant, track: Track, source_tags: SourceTags) -> None:
    """Every tag and the cover of the source, in the rendition's format (transcode/tags.py).
    Tags that cannot be written cost the tags (ffmpeg's stay), never the rendition."""
    samples = None  # AAC's gapless note (iTunSMPB) states the length in samples at the output rate
    if variant.format == "aac" and track.duration and track.sample_rate:
        samples = round(track.duration * (rendition_rate(variant.format, track.sample_rate) or track.sample_rate))
    try:
        tags.write_tags(rendition, variant.format, source_tags, source_samples=samples)
    except tags.TagWriteError as exc:
        logger.warning("track %s: the %s rendition keeps ffmpeg's tags only: %s", track.pk, variant.label, exc)


@dataclass(frozen=True)
class TaskOutcome:
    """How one run of a task ended, for the pool and the log."""

    status: str  # a CacheTask status, or "handed back" / "lost" (another worker holds it now)
    detail: str = ""
    size: int | None = None
    ffmpeg_missing: bool = False  # not the task's fault: the pool should stop
    machine_trouble: bool = False  # the cache folder failed (full, unwritable): the pool should pause

    @property
    def settled(self) -> bool:
        """The task ended for good: the batches waiting for it hear how."""
        return self.status in (Status.DONE, Status.SKIPPED, Status.FAILED, Status.CANCELLED)


def run_task(
    task: CacheTask,
    worker_id: str,
    *,
    cancelled: Callable[[], bool],
    shutting_down: Callable[[], bool],
    cache_dir: Path | None = None,
    machine_delay: timedelta | None = None,
    on_encoder_exit: Callable[[], None] | None = None,
) -> TaskOutcome:
    """Run a claimed task to its outcome (see the module's docstring); never raises.
    ``machine_delay``: how long the task waits if the cache folder fails it (the pool backs off).
    ``on_encoder_exit``: called once ffmpeg has exited, while the rendition is still being
    finished (tags, sync, publish) and its outcome recorded; never called without an ffmpeg."""
    started = time.monotonic()
    try:
        outcome = _execute(task, worker_id, cancelled, shutting_down, cache_dir, machine_delay, on_encoder_exit)
    except Exception as exc:  # never let one task kill the worker thread
        logger.exception("task %s crashed", task.pk)
        outcome = TaskOutcome(tasks.fail(task, worker_id, f"internal error: {exc}") or "lost", str(exc))
    seconds = round(time.monotonic() - started, 2)
    logger.info(
        "transcode task=%s track=%s variant=%s result=%s seconds=%.2f %s",
        task.pk, task.track_id, task.variant, outcome.status, seconds,
        f"bytes={outcome.size}" if outcome.size is not None else outcome.detail,
        extra={"task": task.pk, "track": task.track_id, "quality": str(task.variant), "result": outcome.status,
               "seconds": seconds, "bytes": outcome.size},
    )  # fmt: skip
    if outcome.settled:
        try:
            _announce_outcome(task, outcome)
        except Exception:  # a batch is also finished by whoever reads its progress next
            logger.exception("could not update the batches of task %s", task.pk)
    return outcome


def _execute(
    task, worker_id, cancelled, shutting_down, cache_dir, machine_delay=None, on_encoder_exit=None
) -> TaskOutcome:
    track = task.track
    if not track.is_lossless:
        tasks.finish(task, worker_id, Status.SKIPPED, "lossy source: streamed as is")
        return TaskOutcome(Status.SKIPPED, "lossy")
    try:
        source = source_state(track)
    except SourceUnavailable as exc:
        return TaskOutcome(tasks.fail(task, worker_id, str(exc), permanent=True), str(exc))
    if not task.force and fresh_rendition(track, task.variant, source, cache_dir) is not None:
        tasks.finish(task, worker_id, Status.SKIPPED, "already cached")
        return TaskOutcome(Status.SKIPPED, "already cached")

    # The first write after a second: the task starts at 0 (the claim), and most transcodes of
    # a song end sooner, with no progress write at all.
    last_write = [time.monotonic()]

    def on_progress(fraction: float) -> None:
        now = time.monotonic()
        if now - last_write[0] >= PROGRESS_INTERVAL:
            last_write[0] = now
            tasks.set_progress(task, worker_id, fraction)

    try:
        path = make_rendition(
            track,
            task.variant,
            overwrite=True,
            cache_dir=cache_dir,
            temp_tag=tasks.temp_tag(task.pk, task.attempts),
            still_allowed=lambda: tasks.still_held(task, worker_id),
            on_progress=on_progress,
            on_output=lambda temp, frames: _started(task, worker_id, temp, frames),
            should_stop=lambda: cancelled() or shutting_down(),
            on_encoder_exit=on_encoder_exit,
        )
    except FFmpegMissing as exc:
        tasks.hand_back(task, worker_id)
        logger.error("%s", exc)
        return TaskOutcome("handed back", str(exc), ffmpeg_missing=True)
    except CacheUnwritable as exc:
        # Not the source's fault: it waits, with its attempts intact, until the folder takes
        # files again (an admin frees space, remounts it read-write...).
        delay = machine_delay or tasks.machine_retry_delay()
        status = tasks.postpone(task, worker_id, str(exc), delay) or "lost"
        logger.warning("%s; task %s waits %d s", exc, task.pk, delay.total_seconds())
        return TaskOutcome(status, str(exc), machine_trouble=True)
    except SourceChanged as exc:
        return TaskOutcome(tasks.fail(task, worker_id, str(exc)), str(exc))
    except SourceUnavailable as exc:
        return TaskOutcome(tasks.fail(task, worker_id, str(exc), permanent=True), str(exc))
    except TranscodeTimeout as exc:
        if shutting_down() and tasks.hand_back(task, worker_id):  # the stop, not the source, ran out the clock
            return TaskOutcome("handed back", "pool stopping")
        return TaskOutcome(tasks.fail(task, worker_id, str(exc)), str(exc))
    except TranscodeError as exc:
        if cancelled() or shutting_down():
            if shutting_down() and tasks.hand_back(task, worker_id):
                return TaskOutcome("handed back", "pool stopping")
            return TaskOutcome(Status.CANCELLED, "stopped")
        return TaskOutcome(tasks.fail(task, worker_id, str(exc)), last_line(str(exc)))
    if not tasks.finish(task, worker_id, Status.DONE):
        return TaskOutcome("lost", "task was taken over; rendition kept")
    size = path.stat().st_size
    _enforce_limits(task, cache_dir)
    return TaskOutcome(Status.DONE, size=size)


def _enforce_limits(task: CacheTask, cache_dir) -> None:
    """Size cap and age limit after each new rendition (never evicting the one just made)."""
    if not (settings.AUDIO_CACHE_MAX_SIZE or settings.AUDIO_CACHE_MAX_AGE_DAYS):
        return
    try:
        cleanup.enforce_limits(keep=Q(track_id=task.track_id, **task.variant.lookup), cache_dir=cache_dir)
    except Exception:  # eviction trouble must not fail a transcode that worked
        logger.exception("could not apply the cache limits")


def _started(task: CacheTask, worker_id: str, temp: Path, frames: int | None) -> None:
    """ffmpeg runs: listeners may follow its file, and the batches hear which track is being made."""
    tasks.set_output(task, worker_id, temp.name, frames)
    _announce_start(task)


def _announce_start(task: CacheTask) -> None:
    try:
        for batch in batches.open_batches_of(task):
            # The counts query runs only for ticks that are not throttled away.
            BatchEvents(batch.pk).track_started(
                task.track, str(task.variant), lambda batch=batch: batches.batch_counts(batch)
            )
    except Exception:
        logger.exception("could not announce task %s", task.pk)


def _announce_outcome(task: CacheTask, outcome: TaskOutcome) -> None:
    """This task's line in each open batch, then (from whoever announces the last item) the end.
    The line is sent before the item counts as announced, so the final event, which waits for
    every item to be announced, always comes after every line."""
    for batch in batches.open_batches_of(task):
        counts = batches.batch_counts(batch)
        events = BatchEvents(batch.pk)
        if outcome.status == Status.DONE:
            events.track_cached(task.track, str(task.variant), counts)
        elif outcome.status == Status.FAILED:
            events.track_failed(task.track, str(task.variant), counts, outcome.detail)
        else:
            events.track_skipped(task.track, str(task.variant), counts, outcome.detail)
        batch.items.filter(task=task).update(announced=True)
        counts, just_finished = batches.check_finished(batch, all_announced=True)
        if just_finished:
            events.finished(counts)
