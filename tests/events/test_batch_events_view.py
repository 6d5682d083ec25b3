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


@pytest.mark.parametrize(
    ("query", "headers", "message"),
    [
        ("es-meta=x", {}, "es-meta and recover are for a GRIP proxy, which this server does not use."),
        ("recover=true", {}, "es-meta and recover are for a GRIP proxy, which this server does not use."),
        ("", {"Last-Event-ID": "batch-{pk}:abc"}, "Last-Event-ID must be an id this stream sent, such as batch-<id>:12."),
        ("", {"Last-Event-ID": "batch-{pk}"}, "Last-Event-ID must be an id this stream sent, such as batch-<id>:12."),
        ("", {"Last-Event-ID": "batch-{pk}:1:2"}, "Last-Event-ID must be an id this stream sent, such as batch-<id>:12."),
        ("", {"Last-Event-ID": "batch-{pk}:" + "\uff13".encode().decode("latin-1")}, "Last-Event-ID must be an id this stream sent, such as batch-<id>:12."),
        ("", {"Last-Event-ID": "batch-{pk}:" + "9" * 300}, "Last-Event-ID must be an id this stream sent, such as batch-<id>:12."),
        ("lastEventId=batch-{pk}:-1", {}, "Last-Event-ID must be an id this stream sent, such as batch-<id>:12."),
    ],
)  # fmt: skip
def test_malformed_stream_parameters_are_a_clean_400(async_client, file_track, query, headers, message):
    """Before: es-meta and recover were 500s, and a bad Last-Event-ID a 200 cut off by a ValueError."""
    from asgiref.sync import async_to_sync

    owner = UserFactory()
    batch = batches.create_batch([file_track()], ["medium"], label="hostile", user=owner)

    async def ask():
        await async_client.aforce_login(owner)
        address = f"/events/batches/{batch.pk}/?{query.format(pk=batch.pk)}"
        return await async_client.get(address, headers={k: v.format(pk=batch.pk) for k, v in headers.items()})

    response = async_to_sync(ask)()
    assert (response.status_code, response.content.decode()) == (400, message)


def test_a_well_formed_last_event_id_still_resumes(async_client, file_track):
    from asgiref.sync import async_to_sync

    owner = UserFactory()
    batch = batches.create_batch([file_track()], ["medium"], label="resume", user=owner)

    async def ask():
        await async_client.aforce_login(owner)
        response = await async_client.get(
            f"/events/batches/{batch.pk}/", headers={"Last-Event-ID": f"batch-{batch.pk}:0"}
        )
        text = b""
        async for chunk in response.streaming_content:
            text += chunk
            if b"data: " in text and text.endswith(b"\n\n"):
                break
        await response.streaming_content.aclose()
        return response.status_code, text

    status, text = async_to_sync(ask)()
    assert status == 200
    assert (
        json.loads(text.split(b"data: ", 1)[1].split(b"\n", 1)[0])["step"] == "start"
    )  # replayed from storage, no snapshot first
