"""Sending progress events (audiocache/events/sending.py): throttled ticks, outcomes and the end always
sent and stored, a batch with nothing to do ending at once.
"""

import uuid

import pytest
from django_eventstream.models import Event

from audiocache.events import sending
from audiocache.events.payload import Counts, channel_for, decode_stored
from audiocache.queue import batches
from audiocache.seed_api import ProgressCallback, ProgressTracker

pytestmark = pytest.mark.django_db


def stored(batch_id) -> list[dict]:
    return [
        decode_stored(e.data) for e in Event.objects.filter(channel=channel_for(batch_id), eid__gt=0).order_by("eid")
    ]


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
    track = type("T", (), {"pk": 1, "display_name": "Song"})()
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
    # The lossy track's line (as a page opened later shows it), then the end.
    assert [e["status"] for e in events] == ["pending", "skipped", "completed"]
    assert events[1]["message"].startswith("Skipped ") and events[1]["track_id"] == lossy.pk
    assert events[-1]["message"] == "0 cached, 1 skipped, 0 failed"
    assert events[-1]["current"] == events[-1]["total"] == 1
