"""The worker pool running in-process (audiocache/queue/pool.py): a batch with failures and skips,
its bound on ffmpeg runs, cancelling and stopping.
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
