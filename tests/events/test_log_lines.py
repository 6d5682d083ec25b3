"""A batch's log line is the same whether the page heard it live or read it back after a reload
(audiocache/events/payload.py ``outcome_line``): the track's display name, no position."""

import pytest

from audiocache import selectors
from audiocache.events import sending
from audiocache.queue import batches
from audiocache.queue.pool import WorkerPool
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_live_and_replayed_lines_are_the_same(make_audio, monkeypatch):
    make_audio("a.flac", duration=1, tags={"title": "Morning", "artist": "The Testers"})
    make_audio("Untagged Song.flac", duration=1)
    make_audio("lossy.mp3", kind="mp3", duration=1, tags={"title": "Lossy", "artist": "Someone"})
    scan_library()
    heard = []
    original_send = sending.send

    def recording_send(batch_id, data):  # listen() needs the batch's id, which create_batch makes
        heard.append(data)
        return original_send(batch_id, data)

    monkeypatch.setattr(sending, "send", recording_send)
    batch = batches.create_batch(Track.objects.order_by("path"), ["low"], label="log", user=UserFactory())
    monkeypatch.undo()
    with sending.listen(batch.pk, heard.append):
        pool = WorkerPool(1, burst=True).start()
        assert pool.join(60)
    live = {
        (e["track_id"], e["status"]): e["message"]
        for e in heard
        if e["step"] == "track" and e["status"] != "in_progress"
    }
    replayed = {(line["track_id"], line["status"]): line["message"] for line in selectors.batch_log(batch)}
    assert live == replayed
    assert sorted(replayed.values()) == [
        "Cached The Testers – Morning @ low",
        "Cached Untagged Song @ low",
        "Skipped Someone – Lossy @ low: lossy source, streamed as is",
    ]
