"""Batches (audiocache/queue/batches.py): many tracks in bulk queries, overlapping batches sharing tasks."""

import pytest

from audiocache.models import CacheTask
from audiocache.queue import batches
from audiocache.queue.pool import WorkerPool
from audiocache.seed_api import wait_for_batch
from mixtapes.models import Track
from tests.queue.conftest import scanned_tracks


@pytest.mark.django_db
def test_enqueueing_thousands_of_tracks_takes_bulk_queries(django_assert_max_num_queries, file_track):
    [file_track() for _ in range(2000)]
    ids = list(Track.objects.values_list("id", flat=True))
    # Per chunk of 500 and quality: fresh, quarantined, insert, upgrade, read back; then the
    # batch's items, its counts and its first event. Django splits a bulk insert to stay under
    # SQLite's 999 bound parameters, hence a few more; still about one query per 16
    # renditions, not one per track.
    with django_assert_max_num_queries(4000 // 16):
        batch = batches.create_batch(ids, ["medium", "low"], label="big")
    assert CacheTask.objects.count() == 4000
    assert batch.items.count() == 4000


@pytest.mark.django_db(transaction=True)
def test_overlapping_batches_both_complete(make_audio):
    a, b, c = scanned_tracks(make_audio, "a.flac", "b.flac", "c.flac")
    first = batches.create_batch([a, b], ["medium", "low"], label="first")
    second = batches.create_batch([b, c], ["medium"], label="second")
    assert CacheTask.objects.count() == 5  # b@medium is shared
    pool = WorkerPool(2, burst=True, poll_interval=0.1).start()
    assert pool.join(timeout=60)
    assert str(wait_for_batch(first, timeout=5)) == "4 cached, 0 skipped, 0 failed"
    assert str(wait_for_batch(second, timeout=5)) == "2 cached, 0 skipped, 0 failed"
    third = batches.create_batch([a, b, c], ["medium"], label="third")
    assert str(batches.announce_if_finished(third)) == "0 cached, 3 skipped, 0 failed"
    assert third.finished_at is not None
