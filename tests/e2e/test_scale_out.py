"""The scale-out topology on this machine, without Docker: PostgreSQL and Redis, two uvicorn
web processes, three ``cacheworker`` processes, and nginx in front with deploy/nginx.conf.

It runs in the PostgreSQL pass of ``make test`` (skipped on SQLite, and when Redis is down).
"""

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from audiocache.models import CachedRendition, CacheTask
from audiocache.queue import batches
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import wait_until
from tests.e2e.conftest import REDIS_URL, read_events, redis_available
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
Status = CacheTask.Status


def curl(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-s", *args], capture_output=True, timeout=60)


def test_two_web_processes_three_workers_postgres_redis_nginx(
    make_audio, uvicorn_server, nginx, spawn, client, settings
):
    if connection.vendor != "postgresql":
        pytest.skip("the scale-out topology runs on PostgreSQL (the second pass of make test)")
    if not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")

    for n in range(30):
        make_audio(f"Album {n // 10}/{n:02d}.flac", duration=20, channels=1)
    scan_library()
    tracks = list(Track.objects.order_by("path"))
    shared = {"REDIS_URL": REDIS_URL, "AUDIO_CACHE_SENDFILE": "nginx"}
    web_a = uvicorn_server(**shared)  # AUDIO_CACHE_MAX_WORKERS=0: the web processes transcode nothing
    web_b = uvicorn_server(**shared)
    front = nginx(web_a, web_b)

    user = UserFactory()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    batch = batches.create_batch(tracks, ["medium"], label="scale-out", user=user)
    events_url = f"/events/batches/{batch.pk}/"
    since_start = [f"Last-Event-ID: batch-{batch.pk}:0"]

    with ThreadPoolExecutor(3) as readers:
        # One listener on each web process, one through nginx (unbuffered /events/ location); the
        # events come from the worker processes through Redis.
        on_a = readers.submit(read_events, web_a + events_url, cookie, since_start, True, 180)
        on_b = readers.submit(read_events, web_b + events_url, cookie, since_start, True, 180)
        via_nginx = readers.submit(read_events, front + events_url, cookie, since_start, True, 180)
        time.sleep(1)  # both streams open before the work starts
        workers = [spawn("cacheworker", "--workers", "1", "--name", f"w{n}", **shared) for n in range(3)]

        # Kill one worker (and its ffmpeg) in the middle of a transcode, as a power cut would.
        def victim_is_busy():
            return CacheTask.objects.filter(status=Status.RUNNING, worker_id__startswith="w0/").exists()

        wait_until(victim_is_busy, 60, 0.05, "worker w0 to be transcoding")
        killed = CacheTask.objects.get(status=Status.RUNNING, worker_id__startswith="w0/")
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait(timeout=10)

        wait_until(lambda: CacheTask.objects.filter(status=Status.DONE).count() == 30, 180, 0.2, "every task to finish")
        events_a, events_b = on_a.result(timeout=60), on_b.result(timeout=60)
        events_front = via_nginx.result(timeout=60)

    # Every task done; none ran twice except the one whose worker died (taken over after its lease).
    task_rows = CacheTask.objects.all()
    assert task_rows.count() == 30 and set(task_rows.values_list("status", flat=True)) == {Status.DONE}
    attempts = dict(task_rows.values_list("pk", "attempts"))
    assert attempts.pop(killed.pk) == 2
    assert set(attempts.values()) == {1}
    assert CachedRendition.objects.count() == 30
    assert len(list(settings.AUDIO_CACHE_DIR.glob("*.mp3"))) == 30
    assert not list(settings.AUDIO_CACHE_DIR.glob(".tmp-*"))  # the dead attempt's partial file was removed

    # Both web processes relayed the workers' progress, ending with the batch's summary.
    for events in (events_a, events_b, events_front):
        final = events[-1][1]
        assert (final["step"], final["status"], final["message"]) == (
            "done",
            "completed",
            "30 cached, 0 skipped, 0 failed",
        )
        cached = {p["track_id"] for _id, p in events if p["step"] == "track" and p["status"] == "completed"}
        assert cached == {t.pk for t in tracks}

    # Ranges through nginx, from the cache volume the workers filled (X-Accel-Redirect).
    rendition = CachedRendition.objects.select_related("track").first()
    data = (settings.AUDIO_CACHE_DIR / rendition.file_name).read_bytes()
    for start, end in [(0, 99), (1000, 65535), (len(data) - 10, len(data) - 1)]:
        result = curl("-b", cookie, "-r", f"{start}-{end}", "-D", "-", "-o", "-",
                      f"{front}/stream/{rendition.track_id}/?quality=medium")  # fmt: skip
        head, _sep, body = result.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 206"), head
        assert b"x-audio-cache: hit" in head.lower()
        assert body == data[start : end + 1]
    for worker in workers[1:]:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
