"""The Redis doorbell (audiocache/queue/doorbell.py): only a wake-up call, never in the way of an enqueue."""

import time

import pytest

from audiocache.models import CacheTask
from audiocache.qualities import Variant
from audiocache.queue import tasks

MP3_medium = Variant("mp3", "medium")


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
        task = tasks.enqueue([track], ["medium"], priority=CacheTask.PRIORITY_PLAY)[(track.pk, MP3_medium)]
    assert isinstance(task, CacheTask)
    assert time.monotonic() - started < 1  # the doorbell has a thread of its own
    wait_until(lambda: "workers elsewhere find new work by polling" in caplog.text, 15, 0.05, "the warning")
    assert doorbell._down_until > time.monotonic()  # no new attempt for a while
    monkeypatch.setattr(doorbell, "_client", None)
