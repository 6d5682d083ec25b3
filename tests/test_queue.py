"""The queue: enqueue, claim, lease, retry, cancel, batches; and the pool running in-process."""

import os
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audiocache.models import CacheBatch, CachedRendition, CacheTask
from audiocache.queue import batches, tasks
from audiocache.queue.pool import WorkerPool, run_batch_inline
from audiocache.seed_api import AudioCache, CacheWorker, schedule_mixtape_caching, wait_for_batch
from audiocache.transcode.ffmpeg import ENCODER_PROFILE
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.factories import CacheTaskFactory, MixtapeTrackFactory

Status = CacheTask.Status


def library(make_audio, *names, **spec):
    for name in names:
        make_audio(name, **spec)
    scan_library()
    return [Track.objects.get(path=name) for name in names]


# --- enqueue -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_enqueue_is_idempotent_and_upgrades_priority(file_track):
    track = file_track()
    first = tasks.enqueue([track], ["medium"])[(track.pk, "medium")]
    again = tasks.enqueue([track], ["medium"], priority=CacheTask.PRIORITY_PLAY)[(track.pk, "medium")]
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
        (lossy.pk, "medium"): "lossy source, streamed as is",
        (missing.pk, "medium"): "source missing (rescan the library?)",
        (cached.pk, "medium"): "already cached",
    }
    assert CacheTask.objects.count() == 0
    forced = tasks.enqueue([cached], ["medium"], force=True)
    assert isinstance(forced[(cached.pk, "medium")], CacheTask)


@pytest.mark.django_db
def test_failed_sources_are_quarantined_until_they_change(file_track):
    track = file_track()
    CacheTaskFactory(
        track=track, status=Status.FAILED, error="ffmpeg: Invalid data\n", source_size=track.file_size,
        source_mtime_ns=track.file_mtime_ns,
    )  # fmt: skip
    result = tasks.enqueue([track], ["medium"], priority=CacheTask.PRIORITY_PLAY)[(track.pk, "medium")]
    assert result.startswith("failed before") and "Invalid data" in result
    path = track.absolute_path()
    os.utime(path, ns=(track.file_mtime_ns, track.file_mtime_ns + 10**9))  # the file changed
    assert isinstance(tasks.enqueue([track], ["medium"])[(track.pk, "medium")], CacheTask)


@pytest.mark.django_db
def test_enqueueing_thousands_of_tracks_takes_bulk_queries(django_assert_max_num_queries, file_track):
    [file_track() for _ in range(2000)]
    ids = list(Track.objects.values_list("id", flat=True))
    # Per chunk of 500 and quality: fresh, quarantined, insert, upgrade, read back; then the
    # batch's items, its counts and its first event. Django splits a bulk insert to stay under
    # SQLite's 999 bound parameters, hence a few more; still about one query per 16
    # renditions, not one per track.
    with django_assert_max_num_queries(4000 // 16):
        batch = batches.create_batch(ids, ["medium", "low"], label="big")
    assert CacheTask.objects.count() == 4000
    assert batch.items.count() == 4000


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_enqueues_give_one_task_and_one_ffmpeg_run(make_audio):
    (track,) = library(make_audio, "a.flac")
    barrier = threading.Barrier(20)
    task_ids, errors = [], []

    def ask():
        try:
            barrier.wait()
            result = tasks.enqueue([track.pk], ["medium"], priority=CacheTask.PRIORITY_PLAY)
            task_ids.append(result[(track.pk, "medium")].pk)
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


# --- claim, lease, retry -----------------------------------------------------------------------


@pytest.mark.django_db
def test_claim_order_priority_then_age(file_track):
    old, new, urgent = [file_track() for _ in range(3)]
    tasks.enqueue([old], ["medium"])
    tasks.enqueue([new], ["medium"])
    tasks.enqueue([urgent], ["medium"], priority=CacheTask.PRIORITY_PLAY)
    later = file_track()
    CacheTaskFactory(track=later, available_at=timezone.now() + timedelta(hours=1))  # waiting for a retry
    claimed = [tasks.claim("w/0").track_id for _ in range(3)]
    assert claimed == [urgent.pk, old.pk, new.pk]
    assert tasks.claim("w/0") is None
    task = CacheTask.objects.get(track=urgent)
    assert (task.status, task.worker_id, task.attempts) == (Status.RUNNING, "w/0", 1)
    assert task.lease_expires_at > timezone.now()


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_take_the_same_task(file_track):
    tracks = [file_track() for _ in range(30)]
    tasks.enqueue(tracks, ["medium"])
    claims: dict[str, list[int]] = {}

    def claimer(name):
        mine = claims.setdefault(name, [])
        try:
            while (task := tasks.claim(f"{name}/0")) is not None:
                mine.append(task.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [pk for mine in claims.values() for pk in mine]
    assert len(everything) == len(set(everything)) == 30


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


# --- the pool and batches ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_pool_processes_a_batch_with_failures_and_skips(make_audio, settings, file_track):
    good = library(make_audio, "g1.flac", "g2.wav", "g3.m4a", duration=1)
    lossy = library(make_audio, "lossy.mp3", kind="mp3")[0]
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
    assert again[(broken.pk, "medium")].startswith("failed before")


@pytest.mark.django_db(transaction=True)
def test_overlapping_batches_both_complete(make_audio):
    a, b, c = library(make_audio, "a.flac", "b.flac", "c.flac")
    first = batches.create_batch([a, b], ["medium", "low"], label="first")
    second = batches.create_batch([b, c], ["medium"], label="second")
    assert CacheTask.objects.count() == 5  # b@medium is shared
    pool = WorkerPool(2, burst=True, poll_interval=0.1).start()
    assert pool.join(timeout=60)
    assert str(wait_for_batch(first, timeout=5)) == "4 cached, 0 skipped, 0 failed"
    assert str(wait_for_batch(second, timeout=5)) == "2 cached, 0 skipped, 0 failed"
    third = batches.create_batch([a, b, c], ["medium"], label="third")
    assert str(batches.announce_if_finished(third)) == "0 cached, 3 skipped, 0 failed"
    assert third.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_pool_never_runs_more_ffmpeg_than_workers(make_audio, settings, monkeypatch):
    tracks = library(make_audio, *[f"t{n}.flac" for n in range(6)], duration=2, noise=True)
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
    (track,) = library(make_audio, "long.flac", duration=300, channels=1, noise=True)
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
    (track,) = library(make_audio, "long.flac", duration=300, channels=1, noise=True)
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


# --- the seed's CacheWorker API ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_seed_cache_worker_api(make_audio, settings):
    library(make_audio, "a.flac", "b.wav", "c.mp3", kind="flac")
    worker = CacheWorker(AudioCache(), max_workers=2)

    assert worker.cache_single_file("a.flac", ["high", "low"]) == {"high": True, "low": True}
    calls = []
    results = worker.cache_mixtape_async(
        ["a.flac", "b.wav", "c.mp3"], ["medium"], progress_callback=lambda d, t: calls.append((d, t))
    )
    assert results == {"a.flac": {"medium": True}, "b.wav": {"medium": True}, "c.mp3": {"medium": True}}
    assert calls[-1] == (3, 3)
    assert worker.verify_mixtape_cache(["a.flac", "b.wav"], "medium") == {"a.flac": True, "b.wav": True}

    source = settings.MUSIC_ROOT / "b.wav"
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert worker.verify_mixtape_cache(["b.wav"], "medium") == {"b.wav": False}
    assert worker.regenerate_outdated_cache(["a.flac", "b.wav"], ["medium"])["b.wav"] == {"medium": True}
    assert worker.verify_mixtape_cache(["b.wav"], "medium") == {"b.wav": True}
    assert worker.cache_mixtape(["a.flac"], ["low"]) == {"a.flac": {"low": True}}


@pytest.mark.django_db
def test_schedule_mixtape_caching_queues_a_batch(settings, file_track):
    settings.AUDIO_CACHE_PRECACHE_QUALITIES = ["medium", "low"]
    entry = MixtapeTrackFactory(track=file_track())
    MixtapeTrackFactory(mixtape=entry.mixtape, track=file_track(is_lossless=False, codec="mp3"))
    result = schedule_mixtape_caching(entry.mixtape)
    assert result["total"] == 4 and not result["finished"]
    assert result["summary"] == "0 cached, 2 skipped, 0 failed"
    batch = CacheBatch.objects.get(pk=result["batch_id"])
    assert batch.mixtape == entry.mixtape
    assert CacheTask.objects.filter(status=Status.PENDING).count() == 2


@pytest.mark.django_db
def test_an_unreachable_redis_never_fails_or_slows_an_enqueue(
    file_track, settings, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from audiocache.queue import doorbell
    from tests.conftest import wait_until

    monkeypatch.setattr(doorbell, "_client", None)
    monkeypatch.setattr(doorbell, "_down_until", 0.0)
    settings.REDIS_URL = "redis://10.255.255.1:6379/0"  # unroutable: connecting would hang 2 s
    track = file_track()
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):  # the doorbell rings after the commit
        task = tasks.enqueue([track], ["medium"], priority=CacheTask.PRIORITY_PLAY)[(track.pk, "medium")]
    assert isinstance(task, CacheTask)
    assert time.monotonic() - started < 1  # the doorbell has a thread of its own
    wait_until(lambda: "workers elsewhere find new work by polling" in caplog.text, 15, 0.05, "the warning")
    assert doorbell._down_until > time.monotonic()  # no new attempt for a while
    monkeypatch.setattr(doorbell, "_client", None)
