"""Constraints the database itself enforces (run on SQLite and on PostgreSQL by `make test`)."""

import pytest
from django.db.models.deletion import ProtectedError

from audiocache.models import CachedRendition, CacheTask
from mixtapes.models import Mixtape, MixtapeTrack, Track
from tests.conftest import violates
from tests.factories import (
    CachedRenditionFactory,
    CacheTaskFactory,
    MixtapeFactory,
    MixtapeTrackFactory,
    TrackFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

Status = CacheTask.Status


def test_track_path_is_unique():
    TrackFactory(path="a/b.flac")
    assert violates(TrackFactory, path="a/b.flac")
    TrackFactory(path="a/B.flac")  # paths are case-sensitive, like the file system


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


def test_mixtape_positions_are_unique_within_a_mixtape():
    mixtape = MixtapeFactory()
    MixtapeTrackFactory(mixtape=mixtape, position=0)
    assert violates(MixtapeTrackFactory, mixtape=mixtape, position=0)
    MixtapeTrackFactory(position=0)  # another mixtape may use position 0


def test_the_same_track_may_appear_twice_in_a_mixtape():
    mixtape, track = MixtapeFactory(), TrackFactory()
    MixtapeTrackFactory(mixtape=mixtape, track=track, position=0)
    MixtapeTrackFactory(mixtape=mixtape, track=track, position=1)
    assert list(mixtape.tracks.all()) == [track, track]


def test_deleting_a_track_that_is_in_a_mixtape_is_refused():
    entry = MixtapeTrackFactory()
    with pytest.raises(ProtectedError):
        entry.track.delete()
    assert MixtapeTrack.objects.filter(pk=entry.pk).exists()


def test_deleting_a_track_removes_its_renditions_and_tasks():
    track = TrackFactory()
    CachedRenditionFactory(track=track)
    CacheTaskFactory(track=track)
    track.delete()
    assert CachedRendition.objects.count() == CacheTask.objects.count() == 0


def test_mixtape_slugs_are_unique_and_made_from_the_title():
    owner = UserFactory()
    first = Mixtape.objects.create(owner=owner, title="Road Trip: Summer '26!")
    second = Mixtape.objects.create(owner=owner, title="Road trip summer 26")
    third = Mixtape.objects.create(owner=owner, title="★★★")
    assert first.slug == "road-trip-summer-26"
    assert second.slug == "road-trip-summer-26-2"
    assert third.slug == "mixtape"
    assert violates(Mixtape.objects.create, owner=owner, title="x", slug=first.slug)


def test_track_display_and_paths(settings, tmp_path):
    settings.MUSIC_ROOT = tmp_path
    track = Track(path="Artist/Album/01 - Song.flac", title="", artist="")
    assert track.display_title == "01 - Song"
    assert str(track) == "01 - Song.flac"
    assert track.absolute_path() == tmp_path / "Artist/Album/01 - Song.flac"
    track.title, track.artist = "Song", "Artist"
    assert str(track) == "Artist – Song"
