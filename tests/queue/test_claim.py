"""Claiming tasks (audiocache/queue/claim/, per database): priority then age, never the same task twice."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audiocache.models import CacheTask
from audiocache.queue import tasks
from tests.factories import CacheTaskFactory

Status = CacheTask.Status


@pytest.mark.django_db
def test_claim_order_priority_then_age(file_track):
    old, new, urgent = [file_track() for _ in range(3)]
    tasks.enqueue([old], ["medium"])
    tasks.enqueue([new], ["medium"])
    tasks.enqueue([urgent], ["medium"], priority=CacheTask.PRIORITY_PLAY)
    later = file_track()
    CacheTaskFactory(track=later, available_at=timezone.now() + timedelta(hours=1))  # waiting for a retry
    claimed = [tasks.claim("w/0").track_id for _ in range(3)]
    assert claimed == [urgent.pk, old.pk, new.pk]
    assert tasks.claim("w/0") is None
    task = CacheTask.objects.get(track=urgent)
    assert (task.status, task.worker_id, task.attempts) == (Status.RUNNING, "w/0", 1)
    assert task.lease_expires_at > timezone.now()


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_take_the_same_task(file_track):
    tracks = [file_track() for _ in range(30)]
    tasks.enqueue(tracks, ["medium"])
    claims: dict[str, list[int]] = {}

    def claimer(name):
        mine = claims.setdefault(name, [])
        try:
            while (task := tasks.claim(f"{name}/0")) is not None:
                mine.append(task.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [pk for mine in claims.values() for pk in mine]
    assert len(everything) == len(set(everything)) == 30
