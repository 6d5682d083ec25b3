"""The worker pool running in-process (audiocache/queue/pool.py): a batch with failures and skips,
its bound on ffmpeg runs (encoder slots handed on at ffmpeg's exit), cancelling and stopping.
"""

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from audiocache.models import CachedRendition, CacheTask
from audiocache.qualities import Variant
from audiocache.queue import batches, tasks
from audiocache.queue.pool import WorkerPool, run_batch_inline
from tests.queue.conftest import scanned_tracks

MP3_medium = Variant("mp3", "medium")

Status = CacheTask.Status


@pytest.mark.django_db(transaction=True)
def test_pool_processes_a_batch_with_failures_and_skips(make_audio, settings, file_track):
    good = scanned_tracks(make_audio, "g1.flac", "g2.wav", "g3.m4a", duration=1)
    lossy = scanned_tracks(make_audio, "lossy.mp3", kind="mp3")[0]
    broken = file_track(path="broken.flac")
    (settings.MUSIC_ROOT / "broken.flac").write_text("not audio")
    vanished = file_track(path="vanished.flac")
    (settings.MUSIC_ROOT / "vanished.flac").unlink()

    batch = batches.create_batch([*good, lossy, broken, vanished], ["medium"], label="test")
    summary = run_batch_inline(batch, 2)

    assert str(summary) == "3 cached, 1 skipped, 2 failed"
    assert summary.total == 6 and summary.finished
    batch.refresh_from_db()
    assert batch.finished_at is not None
    failed = {t.track.path: t for t in CacheTask.objects.filter(status=Status.FAILED).select_related("track")}
    assert set(failed) == {"broken.flac"}  # the vanished file never got a task
    assert failed["broken.flac"].attempts == settings.AUDIO_CACHE_MAX_ATTEMPTS  # retried, then quarantined
    assert failed["broken.flac"].error.strip()
    vanished_item = batch.items.get(track=vanished)
    assert vanished_item.note == "source unavailable: source file not found (moved or deleted since the last scan?)"
    assert not [p for p in settings.AUDIO_CACHE_DIR.iterdir() if not p.name.endswith(".mp3")]
    assert CachedRendition.objects.count() == 3

    # Playing the broken track again does not queue it again.
    again = tasks.enqueue([broken], ["medium"], priority=CacheTask.PRIORITY_PLAY)
    assert again[(broken.pk, MP3_medium)].startswith("failed before")


@pytest.mark.django_db(transaction=True)
def test_pool_never_runs_more_ffmpeg_than_workers(make_audio, settings, monkeypatch):
    tracks = scanned_tracks(make_audio, *[f"t{n}.flac" for n in range(6)], duration=2, noise=True)
    from audiocache.transcode import ffmpeg

    running, peak, lock = [0], [0], threading.Lock()
    real = ffmpeg._run_ffmpeg

    def counting(*args, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(ffmpeg, "_run_ffmpeg", counting)
    tasks.enqueue(tracks, ["medium"])
    pool = WorkerPool(2, burst=True, poll_interval=0.05).start()
    assert pool.join(timeout=60)
    assert peak[0] == 2
    assert CacheTask.objects.filter(status=Status.DONE).count() == 6


@pytest.mark.django_db(transaction=True)
def test_the_next_ffmpeg_starts_while_a_finished_one_is_being_published(make_audio, settings, monkeypatch):
    """One encoder slot: the slot goes back when ffmpeg exits, so the second task is encoded
    while the first one's tags, sync and rows are still being written (slowed down here)."""
    tracks = scanned_tracks(make_audio, "a.flac", "b.flac", duration=1)
    from audiocache.transcode import ffmpeg, tags

    log, lock = [], threading.Lock()
    real_run, real_write = ffmpeg._run_ffmpeg, tags.write_tags

    def running(*args, **kwargs):
        with lock:
            log.append(("ffmpeg starts", args[1].name))
        return real_run(*args, **kwargs)

    def slow_tags(path, *args, **kwargs):
        with lock:
            first = not any(event == "tags" for event, _ in log)
            log.append(("tags", None))
        if first:
            time.sleep(1.0)  # the first task's publishing lags: the second must not wait for it
        with lock:
            log.append(("tags written", None))
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(ffmpeg, "_run_ffmpeg", running)
    monkeypatch.setattr(tags, "write_tags", slow_tags)
    tasks.enqueue(tracks, ["medium"])
    pool = WorkerPool(1, burst=True, poll_interval=0.05).start()
    assert pool.join(timeout=60)

    events = [event for event, _ in log]
    assert events.count("ffmpeg starts") == 2
    assert events.index("ffmpeg starts", 1) < events.index("tags written")  # b's ffmpeg ran during a's tags
    assert {name for event, name in log if name} == {"a.flac", "b.flac"}
    assert CacheTask.objects.filter(status=Status.DONE).count() == 2
    assert CachedRendition.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_listeners_task_queued_while_the_encoders_are_busy_is_encoded_next(make_audio, settings, monkeypatch):
    """Tasks are claimed only once an encoder slot is free: the spare threads hold no precache
    task back, so a play request queued meanwhile is the next one encoded."""
    tracks = scanned_tracks(make_audio, *[f"p{n}.flac" for n in range(4)], duration=1)
    listened = scanned_tracks(make_audio, "listened.flac", duration=1)[0]
    from audiocache.transcode import ffmpeg

    order, first_started, release = [], threading.Event(), threading.Event()
    real_run = ffmpeg._run_ffmpeg

    def running(*args, **kwargs):
        order.append(args[1].name)
        first_started.set()
        release.wait(30)  # hold the only encoder until the play request is queued
        return real_run(*args, **kwargs)

    monkeypatch.setattr(ffmpeg, "_run_ffmpeg", running)
    tasks.enqueue(tracks, ["medium"])
    pool = WorkerPool(1, burst=True, poll_interval=0.05).start()
    assert first_started.wait(30)
    time.sleep(0.3)  # the spare thread is waiting for the slot by now, with no task in hand
    tasks.enqueue([listened], ["medium"], priority=CacheTask.PRIORITY_PLAY)
    release.set()
    assert pool.join(timeout=60)
    assert order[1] == "listened.flac", order
    assert CacheTask.objects.filter(status=Status.DONE).count() == 5


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_running_task_stops_ffmpeg(make_audio, settings):
    (track,) = scanned_tracks(make_audio, "long.flac", duration=300, channels=1, noise=True)
    tasks.enqueue([track], ["medium"])
    pool = WorkerPool(1, poll_interval=0.1).start()
    try:
        deadline = timezone.now() + timedelta(seconds=20)
        while not CacheTask.objects.filter(status=Status.RUNNING).exists():
            assert timezone.now() < deadline
            time.sleep(0.05)  # a busy loop would starve the pool's threads of the GIL
        tasks.cancel(CacheTask.objects.all())
        deadline = timezone.now() + timedelta(seconds=20)
        while pool._running:  # stopped at the next heartbeat (lease 3 s / 4)
            assert timezone.now() < deadline
            time.sleep(0.05)
    finally:
        pool.stop()
        pool.join(10)
    assert CacheTask.objects.get().status == Status.CANCELLED
    assert CachedRendition.objects.count() == 0
    assert not any(settings.AUDIO_CACHE_DIR.iterdir())


@pytest.mark.django_db(transaction=True)
def test_stopping_the_pool_hands_running_tasks_back(make_audio, settings):
    (track,) = scanned_tracks(make_audio, "long.flac", duration=300, channels=1, noise=True)
    tasks.enqueue([track], ["medium"])
    pool = WorkerPool(1, poll_interval=0.1).start()
    deadline = timezone.now() + timedelta(seconds=20)
    while not CacheTask.objects.filter(status=Status.RUNNING).exists():
        assert timezone.now() < deadline
        time.sleep(0.05)
    pool.stop()
    assert pool.join(20)
    task = CacheTask.objects.get()
    assert (task.status, task.attempts, task.worker_id) == (Status.PENDING, 0, "")
    assert not any(settings.AUDIO_CACHE_DIR.iterdir())


@pytest.mark.django_db
def test_pool_start_fails_clearly_without_ffmpeg(settings):
    from audiocache.transcode.ffmpeg import FFmpegMissing

    settings.AUDIO_CACHE_FFMPEG = "/nonexistent/ffmpeg"
    with pytest.raises(FFmpegMissing, match="not found"):
        WorkerPool(2).start()
