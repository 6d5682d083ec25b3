"""Queued tasks (audiocache/queue/tasks.py): enqueue (idempotent, skipping what needs no work,
quarantine), leases and heartbeats, retry with backoff, reclaiming expired tasks, cancel and hand back.
"""

import os
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audiocache.models import CachedRendition, CacheTask
from audiocache.qualities import Variant
from audiocache.queue import tasks
from audiocache.queue.pool import WorkerPool
from audiocache.transcode.ffmpeg import ENCODER_PROFILE
from tests.factories import CacheTaskFactory
from tests.queue.conftest import scanned_tracks

MP3_medium = Variant("mp3", "medium")

Status = CacheTask.Status


# --- enqueue -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_enqueue_is_idempotent_and_upgrades_priority(file_track):
    track = file_track()
    first = tasks.enqueue([track], ["medium"])[(track.pk, MP3_medium)]
    again = tasks.enqueue([track], ["medium"], priority=CacheTask.PRIORITY_PLAY)[(track.pk, MP3_medium)]
    assert first.pk == again.pk
    assert CacheTask.objects.get().priority == CacheTask.PRIORITY_PLAY
    tasks.enqueue([track], ["medium"], priority=CacheTask.PRIORITY_PRECACHE)
    assert CacheTask.objects.get().priority == CacheTask.PRIORITY_PLAY  # never downgraded


@pytest.mark.django_db
def test_enqueue_skips_what_needs_no_work(file_track, settings):
    lossy = file_track(is_lossless=False, codec="mp3")
    missing = file_track(missing_since=timezone.now())
    cached = file_track()
    CachedRendition.objects.create(
        track=cached, quality="medium", bitrate=192, file_name="x.mp3", size=1,
        source_size=cached.file_size, source_mtime_ns=cached.file_mtime_ns, encoder_profile=ENCODER_PROFILE,
    )  # fmt: skip
    settings.AUDIO_CACHE_DIR.mkdir()
    (settings.AUDIO_CACHE_DIR / "x.mp3").write_bytes(b"mp3")
    results = tasks.enqueue([lossy, missing, cached], ["medium"])
    assert results == {
        (lossy.pk, MP3_medium): "lossy source, streamed as is",
        (missing.pk, MP3_medium): "source missing (rescan the library?)",
        (cached.pk, MP3_medium): "already cached",
    }
    assert CacheTask.objects.count() == 0
    forced = tasks.enqueue([cached], ["medium"], force=True)
    assert isinstance(forced[(cached.pk, MP3_medium)], CacheTask)


@pytest.mark.django_db
def test_failed_sources_are_quarantined_until_they_change(file_track):
    track = file_track()
    CacheTaskFactory(
        track=track, status=Status.FAILED, error="ffmpeg: Invalid data\n", source_size=track.file_size,
        source_mtime_ns=track.file_mtime_ns,
    )  # fmt: skip
    result = tasks.enqueue([track], ["medium"], priority=CacheTask.PRIORITY_PLAY)[(track.pk, MP3_medium)]
    assert result.startswith("failed before") and "Invalid data" in result
    path = track.absolute_path()
    os.utime(path, ns=(track.file_mtime_ns, track.file_mtime_ns + 10**9))  # the file changed
    assert isinstance(tasks.enqueue([track], ["medium"])[(track.pk, MP3_medium)], CacheTask)


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_enqueues_give_one_task_and_one_ffmpeg_run(make_audio):
    (track,) = scanned_tracks(make_audio, "a.flac")
    barrier = threading.Barrier(20)
    task_ids, errors = [], []

    def ask():
        try:
            barrier.wait()
            result = tasks.enqueue([track.pk], ["medium"], priority=CacheTask.PRIORITY_PLAY)
            task_ids.append(result[(track.pk, MP3_medium)].pk)
        except Exception as exc:  # collected: an exception in a thread would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(task_ids)) == 1
    assert CacheTask.objects.count() == 1

    pool = WorkerPool(4, burst=True, poll_interval=0.1).start()
    assert pool.join(timeout=60)
    task = CacheTask.objects.get()
    assert (task.status, task.attempts) == (Status.DONE, 1)
    assert pool.processed == 1  # one ffmpeg run
    assert CachedRendition.objects.count() == 1


# --- lease, retry, cancel ---------------------------------------------------------------------


@pytest.mark.django_db
def test_heartbeat_reports_lost_tasks(file_track):
    a, b = [file_track() for _ in range(2)]
    tasks.enqueue([a, b], ["medium"])
    ta, tb = tasks.claim("pool/0"), tasks.claim("pool/1")
    before = CacheTask.objects.get(pk=ta.pk).lease_expires_at
    tasks.cancel([tb])
    lost = tasks.heartbeat({ta.pk: "pool/0", tb.pk: "pool/1"})
    assert lost == {tb.pk}
    assert CacheTask.objects.get(pk=ta.pk).lease_expires_at >= before
    # A thread of the same pool that is not the holder does not keep the lease alive.
    assert tasks.heartbeat({ta.pk: "pool/7"}) == {ta.pk}


@pytest.mark.django_db
def test_retry_with_backoff_then_failed(settings, file_track):
    settings.AUDIO_CACHE_MAX_ATTEMPTS = 3
    settings.AUDIO_CACHE_RETRY_DELAY = 10
    track = file_track()
    tasks.enqueue([track], ["medium"])
    task = tasks.claim("w/0")
    assert tasks.fail(task, "w/0", "boom 1") == Status.PENDING
    task.refresh_from_db()
    assert task.available_at > timezone.now() + timedelta(seconds=9)
    assert tasks.claim("w/0") is None  # still backing off
    CacheTask.objects.update(available_at=timezone.now())
    task = tasks.claim("w/0")
    assert tasks.fail(task, "w/0", "boom 2") == Status.PENDING
    assert CacheTask.objects.get().available_at > timezone.now() + timedelta(seconds=19)  # doubled
    CacheTask.objects.update(available_at=timezone.now())
    task = tasks.claim("w/0")
    assert tasks.fail(task, "w/0", "boom 3") == Status.FAILED
    task.refresh_from_db()
    assert (task.status, task.attempts, task.error) == (Status.FAILED, 3, "boom 3")


@pytest.mark.django_db
def test_a_worker_that_lost_its_task_cannot_touch_it(file_track):
    track = file_track()
    tasks.enqueue([track], ["medium"])
    task = tasks.claim("old/0")
    CacheTask.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.reclaim_expired() == [task.pk]
    newer = tasks.claim("new/0")
    assert newer.pk == task.pk and newer.attempts == 2
    assert not tasks.finish(task, "old/0", Status.DONE)
    assert tasks.fail(task, "old/0", "late error") == ""
    assert not tasks.set_progress(task, "old/0", 0.5)
    assert CacheTask.objects.get().worker_id == "new/0"


@pytest.mark.django_db
def test_reclaim_removes_partial_files_and_fails_after_the_last_attempt(settings, tmp_path, file_track):
    settings.AUDIO_CACHE_DIR = tmp_path
    settings.AUDIO_CACHE_MAX_ATTEMPTS = 2
    track = file_track()
    tasks.enqueue([track], ["medium"])
    task = tasks.claim("dead/0")
    partial = tmp_path / f".tmp-{tasks.temp_tag(task.pk, task.attempts)}abc-x_medium_192k.mp3.part"
    next_attempt = tmp_path / f".tmp-{tasks.temp_tag(task.pk, task.attempts + 1)}def-x_medium_192k.mp3.part"
    next_attempt.write_bytes(b"the next attempt, already writing")
    partial.write_bytes(b"half an mp3")
    other = tmp_path / ".tmp-t999999-abc-y.mp3.part"
    other.write_bytes(b"someone else's")
    CacheTask.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    tasks.reclaim_expired()
    assert not partial.exists() and other.exists() and next_attempt.exists()
    task = tasks.claim("dead/0")
    CacheTask.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    tasks.reclaim_expired()
    task.refresh_from_db()
    assert task.status == Status.FAILED and "stopped responding" in task.error


@pytest.mark.django_db
def test_cancel_and_hand_back(file_track):
    a, b = [file_track() for _ in range(2)]
    tasks.enqueue([a, b], ["medium"])
    running = tasks.claim("w/0")
    assert tasks.hand_back(running, "w/0")
    running.refresh_from_db()
    assert (running.status, running.attempts, running.worker_id) == (Status.PENDING, 0, "")
    assert tasks.cancel(CacheTask.objects.all()) == 2
    assert set(CacheTask.objects.values_list("status", flat=True)) == {Status.CANCELLED}
    assert tasks.cancel(CacheTask.objects.all()) == 0  # finished tasks stay as they are
