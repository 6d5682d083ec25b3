"""The progress event's payload (audiocache/events/payload.py): the seed's schema."""

import uuid
from datetime import datetime

import pytest

from audiocache.events.payload import Counts, payload

pytestmark = pytest.mark.django_db


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
