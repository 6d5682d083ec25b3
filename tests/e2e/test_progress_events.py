"""Progress over SSE from a live uvicorn, in both topologies."""

import itertools
import subprocess
import time

import pytest

from audiocache.queue import batches
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.e2e.conftest import REDIS_URL, read_events, redis_available
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def five_tracks(make_audio):
    for n in range(5):
        make_audio(f"album/{n}.flac", duration=1)
    scan_library()
    return list(Track.objects.order_by("path"))


def follow_batch(base, client, tracks):
    user = UserFactory()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    batch = batches.create_batch(tracks, ["low"], label="e2e", user=user)
    channel = f"batch-{batch.pk}"
    # Last-Event-ID 0: everything from the batch's first event on, then live.
    events = read_events(f"{base}/events/batches/{batch.pk}/", cookie, [f"Last-Event-ID: {channel}:0"])
    return batch, cookie, events


def check_batch_events(events, tracks):
    statuses = [payload["status"] for _, payload in events]
    assert statuses[0] == "pending"
    assert statuses[-1] == "completed"
    assert events[-1][1]["message"] == "5 cached, 0 skipped, 0 failed"
    cached = [payload for _, payload in events if payload["step"] == "track" and payload["status"] == "completed"]
    assert sorted(p["track_id"] for p in cached) == sorted(t.pk for t in tracks)
    counts = [p["current"] for p in cached]
    # In order, up to the two workers racing: each worker reads the batch's count, then sends its
    # event, so the other's event (with a count one higher) can go out between the two.
    assert all(later >= earlier - 1 for earlier, later in itertools.pairwise(counts)), counts
    assert max(counts) == 5 and counts[-1] >= 4
    ids = [int(event_id.rsplit(":", 1)[1]) for event_id, _ in events if event_id]
    assert ids == sorted(ids) and len(ids) == len(events)


def test_single_node_events_arrive_live_and_in_order(uvicorn_server, five_tracks, client):
    base = uvicorn_server(AUDIO_CACHE_MAX_WORKERS="2")
    started = time.monotonic()
    batch, cookie, events = follow_batch(base, client, five_tracks)
    assert time.monotonic() - started < 60
    check_batch_events(events, five_tracks)

    # A client that connects afterwards gets the final state at once; one that reconnects
    # with the id of an event it saw gets exactly the events after it.
    late = read_events(f"{base}/events/batches/{batch.pk}/", cookie, timeout=10)
    assert late[0][1]["step"] == "snapshot" and late[0][1]["status"] == "completed"
    middle_id = events[3][0]
    resumed = read_events(f"{base}/events/batches/{batch.pk}/", cookie, [f"Last-Event-ID: {middle_id}"], timeout=10)
    assert [payload for _, payload in resumed] == [payload for _, payload in events[4:]]


def test_a_stranger_gets_403(uvicorn_server, five_tracks, client):
    base = uvicorn_server()
    batch = batches.create_batch(five_tracks[:1], ["low"], label="private", user=UserFactory())
    client.force_login(UserFactory())
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    status = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-b", cookie, f"{base}/events/batches/{batch.pk}/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert status.stdout == "403"


@pytest.mark.skipif(not redis_available(), reason="needs Redis at 127.0.0.1:6379")
def test_scale_out_events_from_a_worker_process_reach_the_web_process(uvicorn_server, five_tracks, client, spawn):
    base = uvicorn_server(REDIS_URL=REDIS_URL, AUDIO_CACHE_MAX_WORKERS="0")
    worker = spawn("cacheworker", "--workers", "2", REDIS_URL=REDIS_URL)
    try:
        _batch, _cookie, events = follow_batch(base, client, five_tracks)
        check_batch_events(events, five_tracks)
    finally:
        worker.terminate()
        worker.communicate(timeout=30)
