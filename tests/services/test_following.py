"""Progressive streaming: a miss streams the MP3 while ffmpeg makes it (audiocache/services/following.py).

Real worker threads run real ffmpeg, slowed to a few times real time (tests/e2e/slow-ffmpeg)
so requests arrive while the rendition is still being written. The test client waits for
the transcode in its own thread; tests/e2e/test_progressive_live.py does the same through
uvicorn, where the wait happens on the event loop.
"""

import asyncio
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from audiocache.models import CachedRendition, CacheTask
from audiocache.qualities import Variant
from audiocache.queue import tasks
from audiocache.queue.pool import WorkerPool
from audiocache.renditions import planned_frames
from audiocache.seed_api import AudioCache
from audiocache.services import following
from audiocache.transcode import mp3
from mixtapes.files import source_state
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import SLOW_FFMPEG, body, dying_ffmpeg, same_but_the_xing_frame, wait_until
from tests.factories import CacheTaskFactory, MixtapeTrackFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
MP3_medium = Variant("mp3", "medium")


Status = CacheTask.Status


@pytest.fixture
def public_track(make_audio):
    """``public_track(seconds)``: a scanned FLAC of pink noise on a public mixtape."""

    def make(seconds=6.0, name="song.flac"):
        make_audio(name, kind="flac", duration=seconds, noise=True, cover=True)
        scan_library()
        track = Track.objects.get(path=name)
        MixtapeTrackFactory(track=track, mixtape__is_public=True)
        return track

    return make


@pytest.fixture
def pool(settings, monkeypatch):
    """``pool(rate=3, ffmpeg=SLOW_FFMPEG)``: one worker thread transcoding at ``rate`` x real time."""
    pools = []

    def start(rate=3, ffmpeg=SLOW_FFMPEG):
        monkeypatch.setenv("SLOW_FFMPEG_RATE", str(rate))
        settings.AUDIO_CACHE_FFMPEG = ffmpeg  # after the test audio was made with the real one
        settings.AUDIO_CACHE_PROGRESSIVE_WAIT = 10
        pools.append(WorkerPool(1, poll_interval=0.05).start())
        return pools[-1]

    yield start
    for running in pools:
        running.stop()
        running.join(20)


def stream(client, track, quality="medium", **meta):
    return client.get(f"/stream/{track.pk}/", {"quality": quality}, **meta)


def finished_rendition(track, quality="medium") -> str:
    """The rendition's file name, once the worker has made it."""
    wait_until(lambda: CachedRendition.objects.filter(track=track, quality=quality).exists(), 60, 0.05, "rendition")
    return CachedRendition.objects.get(track=track, quality=quality).file_name


def rendition_bytes(settings, track, quality="medium") -> bytes:
    name = finished_rendition(track, quality)
    return (settings.AUDIO_CACHE_DIR / name).read_bytes()


def still_transcoding(track, quality="medium") -> bool:
    running = CacheTask.objects.filter(track=track, quality=quality, status=Status.RUNNING).exists()
    return running and not CachedRendition.objects.filter(track=track, quality=quality).exists()


# --- the whole file ---------------------------------------------------------------------------


def test_a_miss_streams_the_mp3_while_it_is_made(settings, public_track, pool, tmp_path):
    track = public_track(6)
    pool(rate=3)
    response = stream(Client(), track)

    assert response.status_code == 200
    assert response["X-Audio-Cache"] == "progressive"
    assert response["Content-Type"] == "audio/mpeg"
    assert response["ETag"].startswith('W/"')  # not byte-identical to the finished file: weak
    assert "Last-Modified" not in response
    assert response["Cache-Control"] == "public, no-cache"
    assert response["X-Accel-Buffering"] == "no"
    assert still_transcoding(track), "the answer should come while ffmpeg is still writing"
    streamed = body(response)

    final = rendition_bytes(settings, track)
    assert int(response["Content-Length"]) == len(streamed) == len(final)  # announced at the start
    assert same_but_the_xing_frame(streamed, final)
    copy = tmp_path / "streamed.mp3"
    copy.write_bytes(streamed)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name", "-of", "csv=p=0",
         f"file:{copy}"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert "mp3" in probe.stdout
    duration = float([line for line in probe.stdout.split() if "." in line][-1])
    assert duration == pytest.approx(6.0, abs=0.15)

    # Finished: the usual hit with the file's strong validators.
    hit = stream(Client(), track)
    assert hit["X-Audio-Cache"] == "hit" and not hit["ETag"].startswith("W/")
    assert body(hit) == final


def test_many_listeners_share_one_ffmpeg_run(settings, public_track, pool):
    track = public_track(5)
    workers = pool(rate=3)
    results = [None] * 4

    def listen(n):
        try:
            response = stream(Client(), track)
            results[n] = (response["X-Audio-Cache"], body(response))
        finally:
            connections.close_all()  # this thread's own connection (PostgreSQL drops the test database)

    threads = [threading.Thread(target=listen, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    final = rendition_bytes(settings, track)

    assert {state for state, _ in results} == {"progressive"}
    assert all(same_but_the_xing_frame(streamed, final) for _, streamed in results)
    # The rendition is published before its task is marked done: a listener may finish first.
    wait_until(lambda: workers.processed >= 1, 10, 0.02, "the worker to finish the task")
    task = CacheTask.objects.get(track=track, quality="medium")
    assert (task.status, task.attempts) == (Status.DONE, 1)
    # One ffmpeg run: the pool counts a task once run_task has also told its batches.
    assert workers.processed == 1


# --- ranges -----------------------------------------------------------------------------------


def test_ranges_while_the_file_is_written(settings, public_track, pool):
    track = public_track(8)
    pool(rate=2)
    client = Client()
    first = stream(client, track, HTTP_RANGE="bytes=0-99")
    assert first.status_code == 206 and first["X-Audio-Cache"] == "progressive"
    size = int(first["Content-Range"].rpartition("/")[2])
    start_bytes = body(first)

    # A seek towards the end: the headers at once, the bytes as ffmpeg reaches them.
    far = stream(client, track, HTTP_RANGE=f"bytes={size - 5000}-{size - 4001}")
    assert still_transcoding(track)
    assert far.status_code == 206
    assert far["Content-Range"] == f"bytes {size - 5000}-{size - 4001}/{size}"
    far_bytes = body(far)
    suffix = stream(client, track, HTTP_RANGE="bytes=-10")
    assert suffix["Content-Range"] == f"bytes {size - 10}-{size - 1}/{size}"
    suffix_bytes = body(suffix)
    beyond = stream(client, track, HTTP_RANGE=f"bytes={size}-")
    weak_if_range = stream(client, track, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=first["ETag"])
    head = client.head(f"/stream/{track.pk}/", {"quality": "medium"})

    final = rendition_bytes(settings, track)
    assert size == len(final)
    # The tag keeps its length (the full tags fill ffmpeg's room): every later byte is where it was.
    assert mp3.id3v2_length(final) > 100 and start_bytes[:10] == final[:10]
    assert far_bytes == final[size - 5000 : size - 4000]
    assert suffix_bytes == final[-10:]
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{size}"
    # A weak validator never satisfies If-Range: the whole representation instead of a part.
    assert weak_if_range.status_code == 200 and int(weak_if_range["Content-Length"]) == size
    weak_if_range.close()
    assert head.status_code == 200 and int(head["Content-Length"]) == size and body(head) == b""


# --- failures and fallbacks -------------------------------------------------------------------


def test_a_transcode_failing_mid_stream_ends_the_response_then_the_original_is_served(
    settings, public_track, pool, tmp_path
):
    settings.AUDIO_CACHE_MAX_ATTEMPTS = 1  # the first failure quarantines the source
    track = public_track(8)
    pool(rate=2, ffmpeg=dying_ffmpeg(tmp_path, 1))
    response = stream(Client(), track)
    assert response["X-Audio-Cache"] == "progressive"
    started = time.monotonic()
    streamed = body(response)

    assert 0 < len(streamed) < int(response["Content-Length"])  # ended where the bytes ended
    assert time.monotonic() - started < 10  # promptly, not after a stall timeout
    wait_until(lambda: CacheTask.objects.filter(status=Status.FAILED).exists(), 30, 0.05, "the failure")
    assert CacheTask.objects.get().error.strip()  # why, for the admin
    assert not any(settings.AUDIO_CACHE_DIR.iterdir())  # nothing half-made is left or published

    after = stream(Client(), track)
    assert (after["X-Audio-Cache"], after["Content-Type"]) == ("miss", "audio/flac")
    assert body(after) == (settings.MUSIC_ROOT / "song.flac").read_bytes()


def test_with_progressive_off_a_miss_serves_the_original(settings, public_track, pool):
    track = public_track(3)
    pool(rate=3)
    settings.AUDIO_CACHE_PROGRESSIVE = False
    response = stream(Client(), track)
    assert (response["X-Audio-Cache"], response["Content-Type"]) == ("miss", "audio/flac")
    response.close()
    finished_rendition(track)  # queued all the same, for the next listener


def test_the_wait_for_a_busy_queue_is_bounded(settings, public_track):
    track = public_track(2)
    settings.AUDIO_CACHE_PROGRESSIVE_WAIT = 0.5  # no worker runs: the transcode never starts
    started = time.monotonic()
    response = stream(Client(), track)
    waited = time.monotonic() - started
    assert response["X-Audio-Cache"] == "miss" and response["Content-Type"] == "audio/flac"
    assert 0.3 <= waited < 3  # it waited, about AUDIO_CACHE_PROGRESSIVE_WAIT, not 10 s or more
    assert CacheTask.objects.get().status == Status.PENDING
    response.close()


def test_no_wait_when_the_length_cannot_be_planned(settings, public_track):
    track = public_track(2)
    Track.objects.filter(pk=track.pk).update(duration=None)  # e.g. a FLAC that does not state its length
    settings.AUDIO_CACHE_PROGRESSIVE_WAIT = 10
    started = time.monotonic()
    response = stream(Client(), track)
    assert response["X-Audio-Cache"] == "miss" and time.monotonic() - started < 2
    response.close()


def test_seeks_into_an_original_and_tasks_in_backoff_never_wait(settings, public_track):
    """No worker runs here, so any wait would last AUDIO_CACHE_PROGRESSIVE_WAIT (10 s)."""
    track = public_track(2)
    settings.AUDIO_CACHE_PROGRESSIVE_WAIT = 10
    started = time.monotonic()
    seek = stream(Client(), track, HTTP_RANGE="bytes=1000-1999")  # a player seeking in the original
    assert (seek.status_code, seek["X-Audio-Cache"], seek["Content-Type"]) == (206, "miss", "audio/flac")
    assert body(seek) == (settings.MUSIC_ROOT / "song.flac").read_bytes()[1000:2000]
    task = CacheTask.objects.get()
    task.available_at = timezone.now() + timedelta(minutes=5)  # a retry waiting for its backoff
    task.save()
    play = stream(Client(), track)
    assert play["X-Audio-Cache"] == "miss"
    play.close()
    assert time.monotonic() - started < 3


@pytest.fixture
def running_output(settings, public_track):
    """``running_output(lease_seconds)``: a running task whose temporary file holds a real MP3 start."""
    track = public_track(2)
    made = AudioCache().transcode_file(track, "medium")
    temp = settings.AUDIO_CACHE_DIR / ".tmp-t1a1-test.part"
    temp.write_bytes(made.read_bytes()[:50_000])
    CachedRendition.objects.all().delete()
    made.unlink()
    frames = planned_frames(track, source_state(track))

    def make(lease_seconds, temp_name=temp.name):
        CacheTask.objects.all().delete()
        CacheTaskFactory(
            track=track,
            quality="medium",
            status=Status.RUNNING,
            temp_name=temp_name,
            planned_frames=frames,
            lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds),
        )
        return track

    make.temp = temp
    return make


def test_a_seek_as_the_transcode_is_published_gets_the_mp3_not_the_original(running_output, settings):
    """Between the rename into place and the rendition's row, the task still runs but its file
    is gone: a listener's range request then waits for the row, and gets the finished MP3."""
    settings.AUDIO_CACHE_PROGRESSIVE_WAIT = 10
    track = running_output(30, temp_name=".tmp-t1a1-already-renamed.part")

    def publish():
        try:
            AudioCache().transcode_file(track, "medium")
            CacheTask.objects.update(status=Status.DONE)
        finally:
            connections.close_all()

    threading.Timer(0.3, publish).start()
    response = stream(Client(), track, HTTP_RANGE="bytes=-10")
    assert (response.status_code, response["X-Audio-Cache"]) == (206, "hit")
    final = (settings.AUDIO_CACHE_DIR / CachedRendition.objects.get().file_name).read_bytes()
    assert body(response) == final[-10:]


def test_a_live_transcode_is_followed_and_a_dead_workers_is_not(running_output):
    track = running_output(30)
    growing = following.follow_task(tasks.active_task(track.pk, MP3_medium))
    assert growing is not None and growing.size > 50_000
    growing.file.close()
    track = running_output(-1)  # its worker died: the lease ran out
    assert following.follow_task(tasks.active_task(track.pk, MP3_medium)) is None


def test_listeners_waiting_for_one_task_share_one_watch(running_output, settings, monkeypatch):
    """Under ASGI, a burst of listeners of one track costs one look per interval, not one each
    (each look is a query on the process's one shared thread)."""
    settings.AUDIO_CACHE_PROGRESSIVE_WAIT = 10
    running_output(30)
    task = CacheTask.objects.get()
    output = following.TranscodeOutput(task.temp_name, task.planned_frames, task.pk, "test")
    looks = []

    async def check_output(task_id):
        looks.append(task_id)
        return (output, False) if len(looks) > 5 else (None, True)  # ffmpeg writes after 5 looks

    monkeypatch.setattr(following, "_check_output", check_output)

    async def burst():
        return await asyncio.gather(*[following.await_followable(task.pk) for _ in range(20)])

    assert asyncio.run(burst()) == [True] * 20
    assert looks == [task.pk] * 6


def test_a_hostile_temporary_name_is_never_opened(running_output, tmp_path):
    outside = tmp_path / "secret.mp3"
    outside.write_bytes(running_output.temp.read_bytes())  # looks like an MP3
    link = running_output.temp.with_name(".tmp-link.part")
    link.symlink_to(outside)
    for name in ("../secret.mp3", str(outside), ".tmp-/../../secret.mp3", "song.flac", link.name):
        track = running_output(30, temp_name=name)
        assert following.follow_task(tasks.active_task(track.pk, MP3_medium)) is None, name
    # SQLite can store a NUL in a name (PostgreSQL refuses it): never a 500.
    assert following.TranscodeOutput(".tmp-\x00.part", 10, 1, "test").open() is None
