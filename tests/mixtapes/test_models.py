"""The library's models (mixtapes/models.py): constraints the database itself enforces (run on SQLite and
on PostgreSQL by `make test`), slugs, and how a track shows itself.
"""

import pytest
from django.db.models.deletion import ProtectedError

from mixtapes.models import Mixtape, MixtapeTrack, Track
from tests.conftest import violates
from tests.factories import MixtapeFactory, MixtapeTrackFactory, TrackFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_track_path_is_unique():
    TrackFactory(path="a/b.flac")
    assert violates(TrackFactory, path="a/b.flac")
    TrackFactory(path="a/B.flac")  # paths are case-sensitive, like the file system


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


def test_mixtape_slugs_are_unique_and_made_from_the_title():
    owner = UserFactory()
    first = Mixtape.objects.create(owner=owner, title="Road Trip: Summer '26!")
    second = Mixtape.objects.create(owner=owner, title="Road trip summer 26")
    third = Mixtape.objects.create(owner=owner, title="★★★")
    assert first.slug == "road-trip-summer-26"
    assert second.slug == "road-trip-summer-26-2"
    assert third.slug == "mixtape"
    assert violates(Mixtape.objects.create, owner=owner, title="x", slug=first.slug)


def test_two_mixtapes_with_one_title_at_once_get_two_slugs(monkeypatch, alice):
    """The slug check and the insert are not atomic: when another save takes the slug in
    between, this one retries with the next free slug instead of failing."""
    MixtapeFactory(slug="same")
    calls = []
    original = Mixtape._unique_slug

    def racing(self):
        calls.append(1)
        return "same" if len(calls) == 1 else original(self)  # first answer already taken

    monkeypatch.setattr(Mixtape, "_unique_slug", racing)
    mixtape = Mixtape.objects.create(owner=alice, title="Same")
    assert mixtape.slug == "same-2" and len(calls) == 2


def test_track_display_and_paths(settings, tmp_path):
    settings.MUSIC_ROOT = tmp_path
    track = Track(path="Artist/Album/01 - Song.flac", title="", artist="")
    assert track.display_title == "01 - Song"
    assert str(track) == "01 - Song.flac"
    assert track.absolute_path() == tmp_path / "Artist/Album/01 - Song.flac"
    track.title, track.artist = "Song", "Artist"
    assert str(track) == "Artist – Song"
