"""The SSE view of a batch's progress (/events/batches/<id>/): a snapshot for a late client, a replay
from where a page read the batch's state.
"""

import json

import pytest

from audiocache.events.payload import Counts
from audiocache.models import CacheBatch
from audiocache.queue import batches
from audiocache.seed_api import ProgressCallback
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


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
