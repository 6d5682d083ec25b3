"""/stream/<id>/ (audiocache/views.py): HEAD, who may play what, which files are ever served, and one
query per request.
"""

import os

import pytest
from django.utils import timezone

from audiocache.seed_api import AudioCache
from audiocache.services import play_counts
from mixtapes.models import Track
from tests.conftest import body, url
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_head_has_the_headers_and_no_body(user_client, hit):
    address, data = hit
    response = user_client.head(address)
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(data))
    assert body(response) == b""
    ranged = user_client.head(address, HTTP_RANGE="bytes=0-9")  # Range is defined for GET only
    assert ranged.status_code == 200 and ranged["Content-Length"] == str(len(data))
    assert user_client.post(address).status_code == 405


# --- access --------------------------------------------------------------------------------------


def test_anonymous_visitors_only_reach_tracks_of_public_mixtapes(client, library):
    shared, private, loose = library["lossless.flac"], library["lossy.mp3"], library["other.m4a"]
    MixtapeTrackFactory(track=shared, mixtape=MixtapeFactory(is_public=True))
    MixtapeTrackFactory(track=private, mixtape=MixtapeFactory(is_public=False))
    public_response = client.get(url(shared, "original"))
    assert public_response.status_code == 200
    assert public_response["Cache-Control"].startswith("public")
    assert "Vary" not in public_response
    assert client.get(url(private, "original")).status_code == 404
    assert client.get(url(loose, "original")).status_code == 404
    client.force_login(UserFactory())
    private_response = client.get(url(private, "original"))
    assert private_response.status_code == 200
    assert private_response["Cache-Control"].startswith("private")
    assert private_response["Vary"] == "Cookie"


def test_unknown_ids_and_bad_paths_are_404(user_client, library):
    assert user_client.get("/stream/999999/").status_code == 404
    assert user_client.get("/stream/abc/").status_code == 404
    assert user_client.get("/stream/-1/").status_code == 404
    assert user_client.get("/stream/1/../../etc/passwd").status_code == 404


def test_huge_track_ids_are_unknown(user_client, library):
    for number in (2**63 - 1, 2**63, 2**64, 10**40):
        assert user_client.get(f"/stream/{number}/").status_code == 404


# --- which files are served -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_only_regular_files_are_served(user_client, library, settings, kind):

    track = library["wave.wav"]
    target = settings.MUSIC_ROOT / "odd.wav"
    if kind == "directory":
        target.mkdir()
    else:
        os.mkfifo(target)  # opening it for reading must not hang the view
    Track.objects.filter(pk=track.pk).update(path="odd.wav")
    assert user_client.get(url(track, "original")).status_code == 404


def test_missing_file_is_404_and_marks_the_track_missing(user_client, library):
    track = library["wave.wav"]
    track.absolute_path().unlink()
    response = user_client.get(url(track, "original"))
    assert response.status_code == 404
    track.refresh_from_db()
    assert track.missing_since is not None


def test_track_missing_since_is_not_set_for_a_good_track(user_client, library):
    user_client.get(url(library["lossless.flac"], "original"))
    assert not Track.objects.filter(missing_since__lte=timezone.now()).exists()


@pytest.mark.parametrize("path", ["../outside.flac", "/etc/passwd", "Artist/../../outside.flac"])
def test_a_track_row_pointing_outside_music_root_is_never_served(user_client, library, tmp_path, path):
    (tmp_path / "outside.flac").write_bytes(b"secret bytes")
    track = library["wave.wav"]
    Track.objects.filter(pk=track.pk).update(path=path)
    for quality in ("original", "medium"):
        response = user_client.get(url(track, quality))
        assert response.status_code == 404
    assert not Track.objects.filter(pk=track.pk, missing_since__isnull=False).exists()


def test_a_symlink_out_of_music_root_is_never_served(user_client, library, tmp_path, settings):
    (tmp_path / "outside.flac").write_bytes(b"secret bytes")
    (settings.MUSIC_ROOT / "sneaky.flac").symlink_to(tmp_path / "outside.flac")
    track = library["wave.wav"]
    Track.objects.filter(pk=track.pk).update(path="sneaky.flac")
    assert user_client.get(url(track, "original")).status_code == 404


# --- one query per request -----------------------------------------------------------------------


def test_a_stream_request_costs_one_query(client, library, django_assert_num_queries):
    track = library["lossless.flac"]
    AudioCache().transcode_file(track, "medium")
    MixtapeTrackFactory(track=track, mixtape=MixtapeFactory(is_public=True))
    play_counts.reset()
    assert client.get(url(track, "medium"))["X-Audio-Cache"] == "hit"  # writes the first hit
    with django_assert_num_queries(1):
        assert client.get(url(track, "medium"))["X-Audio-Cache"] == "hit"
    with django_assert_num_queries(1):
        assert client.get(url(track, "original"))["X-Audio-Cache"] == "bypass"
    with django_assert_num_queries(1):
        assert client.get(url(library["lossy.mp3"], "medium")).status_code == 404  # not public
    play_counts.reset()
