"""Progress events: payloads, throttling, the tracker API, channel authorization, the SSE view."""

import json
import uuid
from datetime import datetime

import pytest
from django_eventstream.models import Event

from audiocache.events import sending
from audiocache.events.access import BatchChannelManager
from audiocache.events.payload import Counts, channel_for, decode_stored, payload
from audiocache.models import CacheBatch
from audiocache.queue import batches
from audiocache.seed_api import ProgressCallback, ProgressTracker
from tests.factories import CacheBatchFactory, UserFactory

pytestmark = pytest.mark.django_db


def stored(batch_id) -> list[dict]:
    return [
        decode_stored(e.data) for e in Event.objects.filter(channel=channel_for(batch_id), eid__gt=0).order_by("eid")
    ]


def test_payload_has_the_seed_schema():
    batch_id = uuid.uuid4()
    data = payload(batch_id, "track", "in_progress", "Caching track 3 of 15", Counts(1, 1, 0, 15), track_id=7,
                   quality="medium")  # fmt: skip
    assert data["task_id"] == str(batch_id)
    assert (data["step"], data["status"], data["message"]) == ("track", "in_progress", "Caching track 3 of 15")
    assert (data["current"], data["total"], data["track_id"], data["quality"]) == (2, 15, 7, "medium")
    assert (data["cached"], data["skipped"], data["failed"]) == (1, 1, 0)
    assert datetime.fromisoformat(data["timestamp"]).tzinfo is not None
    assert "track_id" not in payload(batch_id, "done", "completed", "x", Counts())


def test_ticks_are_throttled_but_outcomes_and_the_end_are_not(monkeypatch):
    tracker = ProgressTracker()
    batch_id = uuid.uuid4()
    clock = [100.0]
    monkeypatch.setattr(sending.time, "monotonic", lambda: clock[0])
    sent = [tracker.emit(batch_id, "track", "in_progress", f"tick {n}", Counts(total=3)) for n in range(10)]
    assert sum(s is not None for s in sent) == 1
    clock[0] += sending.MIN_TICK_INTERVAL
    assert tracker.emit(batch_id, "track", "in_progress", "later tick", Counts(total=3)) is not None
    callback = ProgressCallback(batch_id, tracker)
    track = type("T", (), {"pk": 1, "__str__": lambda self: "Song"})()
    for _ in range(3):
        callback.track_cached(track, "medium", Counts(cached=1, total=3))
    callback.finished(Counts(cached=2, failed=1, total=3))
    events = stored(batch_id)
    assert [e["status"] for e in events] == ["in_progress", "in_progress", "completed", "completed", "completed",
                                             "failed"]  # fmt: skip
    assert events[-1]["message"] == "2 cached, 0 skipped, 1 failed"
    assert [eid for eid, _ in tracker.listen(batch_id)] == sorted(eid for eid, _ in tracker.listen(batch_id))
    assert len(list(tracker.listen(batch_id))) == 6


def test_a_batch_with_nothing_to_do_ends_at_once(file_track):
    lossy = file_track(is_lossless=False, codec="mp3")
    batch = batches.create_batch([lossy], ["medium"], label="nothing")
    events = stored(batch.pk)
    assert [e["status"] for e in events] == ["pending", "completed"]
    assert events[-1]["message"] == "0 cached, 1 skipped, 0 failed"
    assert events[-1]["current"] == events[-1]["total"] == 1


def test_channel_manager_lets_owners_and_staff_read():
    owner, other, staff = UserFactory(), UserFactory(), UserFactory(is_staff=True)
    batch = CacheBatchFactory(created_by=owner)
    manager, channel = BatchChannelManager(), channel_for(batch.pk)
    assert manager.can_read_channel(owner, channel)
    assert manager.can_read_channel(staff, channel)
    assert not manager.can_read_channel(other, channel)
    assert not manager.can_read_channel(None, channel)
    assert not manager.can_read_channel(owner, "batch-not-a-uuid")
    assert not manager.can_read_channel(staff, "something-else")
    assert not manager.can_read_channel(staff, channel_for(uuid.uuid4()))
    assert manager.is_channel_reliable(channel)


def test_event_view_permissions(client):
    owner, other = UserFactory(), UserFactory()
    batch = CacheBatchFactory(created_by=owner)
    address = f"/events/batches/{batch.pk}/"
    assert client.get(address).status_code == 403
    client.force_login(other)
    assert client.get(address).status_code == 403
    assert client.get(f"/events/batches/{uuid.uuid4()}/").status_code == 404
    assert client.get("/events/batches/not-a-uuid/").status_code == 404


def test_a_late_client_first_gets_a_snapshot_of_the_batch(async_client, file_track):
    from asgiref.sync import async_to_sync

    owner = UserFactory()
    lossy = file_track(is_lossless=False, codec="mp3")
    batch = batches.create_batch([lossy], ["medium"], label="done already", user=owner)

    async def first_event() -> bytes:
        await async_client.aforce_login(owner)
        response = await async_client.get(f"/events/batches/{batch.pk}/")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/event-stream")
        text = b""
        stream = response.streaming_content
        async for chunk in stream:
            text += chunk
            if b"\n\n" in text:
                break
        await stream.aclose()
        return text

    text = async_to_sync(first_event)()
    assert text.startswith(b"event: progress\ndata: ")
    snapshot = json.loads(text.split(b"data: ", 1)[1].split(b"\n", 1)[0])
    assert (snapshot["step"], snapshot["status"], snapshot["message"]) == (
        "snapshot", "completed", "0 cached, 1 skipped, 0 failed"
    )  # fmt: skip
    assert snapshot["current"] == snapshot["total"] == 1
    assert CacheBatch.objects.get(pk=batch.pk).finished_at is not None


def test_a_page_follows_a_batch_from_where_it_read_it(async_client, file_track):
    """The editor reads the batch's state and event position together; what is sent while the
    page loads is replayed when its stream opens from that position (no gap, no snapshot)."""
    from asgiref.sync import async_to_sync

    from audiocache.events.payload import Counts
    from audiocache.seed_api import ProgressCallback
    from audiocache.selectors import batch_page_state

    owner = UserFactory()
    track = file_track()
    batch = batches.create_batch([track], ["medium"], label="live", user=owner)
    state = batch_page_state(batch)
    assert state["snapshot"]["step"] == "snapshot" and state["snapshot"]["status"] == "in_progress"
    assert state["log"] == []
    ProgressCallback(batch.pk).track_cached(track, "medium", Counts(cached=1, total=1))  # "while loading"

    async def first_event() -> bytes:
        await async_client.aforce_login(owner)
        response = await async_client.get(state["events_url"])
        assert response.status_code == 200
        text = b""
        stream = response.streaming_content
        async for chunk in stream:
            text += chunk
            if b"data: " in text and text.endswith(b"\n\n"):
                break
        await stream.aclose()
        return text

    text = async_to_sync(first_event)()
    event = json.loads(text.split(b"data: ", 1)[1].split(b"\n", 1)[0])
    assert (event["step"], event["status"], event["track_id"]) == ("track", "completed", track.pk)
