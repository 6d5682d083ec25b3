"""Constraints the database itself enforces on the cache's tables (audiocache/models.py); run on SQLite
and on PostgreSQL by `make test`.
"""

import pytest

from audiocache.models import CachedRendition, CacheTask
from tests.conftest import violates
from tests.factories import CachedRenditionFactory, CacheTaskFactory, TrackFactory

pytestmark = pytest.mark.django_db


Status = CacheTask.Status


def test_one_rendition_per_track_and_quality():
    track = TrackFactory()
    CachedRenditionFactory(track=track, quality="medium")
    assert violates(CachedRenditionFactory, track=track, quality="medium")
    CachedRenditionFactory(track=track, quality="high", file_name="x_high_256k.mp3")
    assert CachedRendition.objects.filter(track=track).count() == 2


def test_rendition_file_names_are_unique():
    CachedRenditionFactory(file_name="abc_medium_192k.mp3")
    assert violates(CachedRenditionFactory, file_name="abc_medium_192k.mp3")


@pytest.mark.parametrize("active", [Status.PENDING, Status.RUNNING])
@pytest.mark.parametrize("other", [Status.PENDING, Status.RUNNING])
def test_at_most_one_active_task_per_track_and_quality(active, other):
    track = TrackFactory()
    CacheTaskFactory(track=track, quality="medium", status=active)
    assert violates(CacheTaskFactory, track=track, quality="medium", status=other)


def test_finished_tasks_do_not_block_new_ones():
    track = TrackFactory()
    for status in (Status.DONE, Status.FAILED, Status.SKIPPED, Status.CANCELLED, Status.FAILED):
        CacheTaskFactory(track=track, quality="medium", status=status)
    CacheTaskFactory(track=track, quality="medium", status=Status.PENDING)
    CacheTaskFactory(track=track, quality="low", status=Status.RUNNING)
    assert CacheTask.objects.filter(track=track, status__in=CacheTask.ACTIVE_STATUSES).count() == 2


def test_a_finished_task_cannot_be_reactivated_next_to_an_active_one():
    track = TrackFactory()
    old = CacheTaskFactory(track=track, status=Status.FAILED)
    CacheTaskFactory(track=track, status=Status.PENDING)
    old.status = Status.PENDING
    assert violates(old.save)


def test_task_progress_stays_between_zero_and_one():
    assert violates(CacheTaskFactory, progress=1.5)
    assert violates(CacheTaskFactory, progress=-0.1)


def test_deleting_a_track_removes_its_renditions_and_tasks():
    track = TrackFactory()
    CachedRenditionFactory(track=track)
    CacheTaskFactory(track=track)
    track.delete()
    assert CachedRendition.objects.count() == CacheTask.objects.count() == 0
