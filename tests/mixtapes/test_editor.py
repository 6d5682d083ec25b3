"""The mixtape pages: list, editor, delete, share page, covers.

Permissions (login, other people's mixtapes, CSRF) and bad input first, then behaviour.
"""

import io
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image

from audiocache.models import CacheBatch, CachedRendition, CacheTask
from audiocache.transcode.ffmpeg import ENCODER_PROFILE
from mixtapes.models import Mixtape, MixtapeTrack, Track
from tests.conftest import body
from tests.factories import (
    CacheBatchFactory,
    CachedRenditionFactory,
    MixtapeFactory,
    MixtapeTrackFactory,
    TrackFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def image_file(fmt="PNG", size=(64, 48), mode="RGB", name=None):
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 30, 30, 128)[: len(mode)] if mode != "P" else 1).save(buffer, fmt)
    buffer.seek(0)
    buffer.name = name or f"cover.{fmt.lower()}"
    return buffer


def save(client, *, slug=None, **fields):
    data = {"title": "Summer", "liner_notes": "", **fields}
    url = reverse("editor", args=[slug]) if slug else reverse("editor-new")
    return client.post(url, data)


# --- Permissions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/mixtapes/", "/editor/new/", "/editor/some-tape/", "/editor/some-tape/delete/", "/library/search/?q=a"],
)
def test_editor_pages_need_login(client, url):
    MixtapeFactory(slug="some-tape")
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_other_peoples_mixtapes_are_404_in_the_editor(client, alice):
    theirs = MixtapeFactory(slug="theirs", is_public=True)
    MixtapeTrackFactory(mixtape=theirs)
    assert client.get("/editor/theirs/").status_code == 404
    assert save(client, slug="theirs", title="Hijacked").status_code == 404
    assert client.get("/editor/theirs/delete/").status_code == 404
    assert client.post("/editor/theirs/delete/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.title != "Hijacked" and theirs.entries.count() == 1


def test_share_page_is_public_only_for_strangers(client):
    owner = UserFactory()
    MixtapeFactory(owner=owner, slug="open", is_public=True, title="Open tape")
    MixtapeFactory(owner=owner, slug="closed", is_public=False, title="Closed tape")
    assert client.get("/share/open/").status_code == 200
    assert client.get("/share/closed/").status_code == 404
    assert client.get("/share/nope/").status_code == 404
    client.force_login(UserFactory())
    assert client.get("/share/closed/").status_code == 404
    client.force_login(owner)
    response = client.get("/share/closed/")
    assert response.status_code == 200
    assert "private" in response["Cache-Control"]


def test_csrf_is_enforced_on_every_post(alice):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    MixtapeFactory(owner=alice, slug="mine")
    assert strict.post("/editor/new/", {"title": "x"}).status_code == 403
    assert strict.post("/editor/mine/", {"title": "x"}).status_code == 403
    assert strict.post("/editor/mine/delete/").status_code == 403
    assert Mixtape.objects.filter(slug="mine").exists()
    # With the token from the page, the same post works.
    page = strict.get("/editor/mine/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert strict.post("/editor/mine/delete/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert not Mixtape.objects.filter(slug="mine").exists()


def test_only_get_and_post(client, alice):
    assert client.put("/editor/new/").status_code == 405
    assert client.post("/library/search/").status_code == 405
    assert client.post("/share/x/").status_code == 405


# --- Creating and editing ----------------------------------------------------------------


def test_create_with_tracks_in_order(client, alice, settings):
    settings.AUDIO_CACHE_PRECACHE_ON_UPLOAD = False
    a, b, c = TrackFactory(), TrackFactory(), TrackFactory()
    response = save(client, title="Road trip", liner_notes="For the drive", is_public="on", track=[c.pk, a.pk, b.pk])
    mixtape = Mixtape.objects.get(title="Road trip")
    assert response.status_code == 302 and response["Location"] == f"/editor/{mixtape.slug}/"
    assert mixtape.owner == alice and mixtape.is_public and mixtape.liner_notes == "For the drive"
    assert list(mixtape.entries.values_list("track_id", "position")) == [(c.pk, 1), (a.pk, 2), (b.pk, 3)]

    # Reorder, remove one, add one twice: the list is replaced as sent.
    d = TrackFactory()
    save(client, slug=mixtape.slug, title="Road trip", track=[b.pk, d.pk, c.pk, d.pk])
    assert list(mixtape.entries.values_list("track_id", flat=True)) == [b.pk, d.pk, c.pk, d.pk]
    assert not Mixtape.objects.get(pk=mixtape.pk).is_public  # unchecked box = private


def test_the_slug_new_is_never_used(client, alice, settings):
    settings.AUDIO_CACHE_PRECACHE_ON_UPLOAD = False
    save(client, title="New")
    assert Mixtape.objects.get().slug == "new-2"  # "new" is the editor's own URL


def test_save_queues_a_precache_batch_and_the_editor_follows_it(client, alice, file_track, settings):
    settings.AUDIO_CACHE_PRECACHE_QUALITIES = ["medium", "low"]
    tracks = [file_track(), file_track()]
    response = save(client, title="Batch me", track=[t.pk for t in tracks])
    batch = CacheBatch.objects.get()
    assert response["Location"].endswith(f"?batch={batch.pk}")
    assert batch.mixtape.title == "Batch me" and batch.created_by == alice
    assert CacheTask.objects.filter(status="pending").count() == 4

    page = client.get(response["Location"]).content.decode()
    assert f"/events/batches/{batch.pk}/?lastEventId=" in page
    assert 'id="cache-progress-state"' in page and "lastEventId=batch-" in page
    # A reload without the parameter still finds the running batch.
    assert f"/events/batches/{batch.pk}/" in client.get(f"/editor/{batch.mixtape.slug}/").content.decode()


def test_nothing_to_cache_means_no_modal_but_a_message(client, alice, settings):
    lossy = TrackFactory(is_lossless=False, codec="mp3")
    response = save(client, title="Already light", track=[lossy.pk])
    assert "?batch=" not in response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert "cache-progress" not in page
    assert "Every track is ready to stream" in page


def test_precache_off_queues_nothing(client, alice, file_track, settings):
    settings.AUDIO_CACHE_PRECACHE_ON_UPLOAD = False
    save(client, title="Quiet", track=[file_track().pk])
    assert not CacheBatch.objects.exists() and not CacheTask.objects.exists()


def test_queue_trouble_never_loses_the_save(client, alice, file_track, monkeypatch):
    from django.db import DatabaseError

    from audiocache.queue import batches

    def broken(*args, **kwargs):
        raise DatabaseError("queue table locked")

    monkeypatch.setattr(batches, "create_batch", broken)
    response = save(client, title="Still saved", track=[file_track().pk])
    assert response.status_code == 302
    assert Mixtape.objects.get(title="Still saved").entries.count() == 1
    assert "caching could not be queued" in client.get(response["Location"]).content.decode()


def test_someone_elses_batch_in_the_url_is_ignored(client, alice):
    mine = MixtapeFactory(owner=alice, slug="mine")
    foreign = CacheBatchFactory(mixtape=mine, created_by=UserFactory())
    page = client.get(f"/editor/mine/?batch={foreign.pk}").content.decode()
    assert str(foreign.pk) not in page
    assert client.get("/editor/mine/?batch=not-a-uuid").status_code == 200


@pytest.mark.parametrize(
    "tracks, message",
    [
        (["abc"], "malformed"),
        (["-1"], "malformed"),
        (["9" * 40], "malformed"),
        (["123456789"], "no longer in the library"),
        (["1"] * 501, "at most 500"),
    ],
)
def test_bad_track_lists_are_refused_with_a_message(client, alice, tracks, message):
    response = save(client, title="Bad", track=tracks)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Mixtape.objects.exists()


def test_blank_title_is_refused_and_the_list_is_kept(client, alice):
    track = TrackFactory(title="Keep me")
    response = save(client, title="   ", track=[track.pk])
    assert response.status_code == 400
    page = response.content.decode()
    assert "Give the mixtape a title" in page
    assert f'name="track" value="{track.pk}"' in page  # the list is not lost


def test_hostile_text_is_escaped(client, alice, settings):
    settings.AUDIO_CACHE_PRECACHE_ON_UPLOAD = False
    track = TrackFactory(title="<img src=x onerror=alert(1)>")
    save(client, title="<script>alert(1)</script>", liner_notes="</script><b>x", is_public="on", track=[track.pk])
    mixtape = Mixtape.objects.get()
    for url in ["/mixtapes/", f"/editor/{mixtape.slug}/", f"/share/{mixtape.slug}/"]:
        page = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in page and "<img src=x" not in page, url


# --- Covers ------------------------------------------------------------------------------


def test_cover_is_reencoded_resized_and_served(client, alice, settings, media_root):
    settings.AUDIO_CACHE_PRECACHE_ON_UPLOAD = False
    settings.COVER_MAX_PIXELS = 100
    save(client, title="Covered", cover_upload=image_file("PNG", size=(400, 200), mode="RGBA"))
    mixtape = Mixtape.objects.get()
    stored = media_root / mixtape.cover.name
    with Image.open(stored) as image:
        assert image.format == "JPEG" and image.size == (100, 50)
    response = client.get(f"/share/{mixtape.slug}/cover/")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert body(response) == stored.read_bytes()

    # Replacing the cover deletes the old file; removing it deletes the new one.
    save(client, slug=mixtape.slug, title="Covered", cover_upload=image_file("WEBP"))
    mixtape.refresh_from_db()
    assert not stored.exists() and (media_root / mixtape.cover.name).exists()
    replaced = media_root / mixtape.cover.name
    save(client, slug=mixtape.slug, title="Covered", remove_cover="on")
    mixtape.refresh_from_db()
    assert not mixtape.cover and not replaced.exists()
    # No cover and no track pictures: the neutral picture (tests/mixtapes/test_artwork.py has the mosaic).
    answer = client.get(f"/share/{mixtape.slug}/cover/")
    assert answer.status_code == 302 and answer["Location"].endswith("img/no-cover.svg")


def test_private_covers_are_not_served_to_strangers(client, settings, media_root):
    settings.AUDIO_CACHE_PRECACHE_ON_UPLOAD = False
    owner = UserFactory()
    client.force_login(owner)
    save(client, title="Secret", cover_upload=image_file("JPEG"))
    slug = Mixtape.objects.get().slug
    assert client.get(f"/share/{slug}/cover/").status_code == 200
    client.logout()
    assert client.get(f"/share/{slug}/cover/").status_code == 404


@pytest.mark.parametrize(
    "upload, message",
    [
        (io.BytesIO(b"just some text, not an image"), "not an image"),
        (io.BytesIO(b""), "empty"),
        (image_file("GIF"), "must be JPEG, PNG or WebP"),
        (io.BytesIO(image_file("PNG", size=(300, 300)).getvalue()[:200]), "could not be read"),
    ],
    ids=["text", "empty", "gif", "truncated-png"],
)
def test_bad_covers_get_a_clear_error(client, alice, upload, message):
    upload.name = "cover.png"
    response = save(client, title="Bad cover", cover_upload=upload)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Mixtape.objects.exists()


def test_oversized_cover_is_refused(client, alice, settings):
    settings.COVER_MAX_UPLOAD_SIZE = 1000
    response = save(client, title="Big", cover_upload=image_file("PNG", size=(300, 300), mode="RGBA"))
    assert response.status_code == 400
    assert "the limit is 1000" in response.content.decode()


def test_pixel_bomb_is_refused_without_decoding(client, alice):
    # A tiny PNG that declares 20000 x 20000 pixels.
    response = save(client, title="Bomb", cover_upload=image_file("PNG", size=(20000, 20000), mode="1"))
    assert response.status_code == 400
    assert "The image has far too many pixels; covers may have at most 16 megapixels." in response.content.decode()


@pytest.mark.parametrize(
    ("fmt", "size", "message"),
    [
        ("PNG", (5000, 5000), "The image is 5000×5000 pixels (25 megapixels); covers may have at most 16 megapixels."),
        ("WEBP", (3000, 3000), "The image is 3000×3000 pixels (9 megapixels); WebP covers may have at most 6 megapixels."),
    ],
)  # fmt: skip
def test_a_cover_over_the_pixel_limit_is_refused_with_the_limit_said(client, alice, fmt, size, message):
    response = save(client, title="Huge", cover_upload=image_file(fmt, size=size, mode="L"))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Mixtape.objects.exists()


# --- Delete ------------------------------------------------------------------------------


def test_delete_asks_then_removes_mixtape_and_cover_but_not_tracks(client, alice, settings, media_root):
    settings.AUDIO_CACHE_PRECACHE_ON_UPLOAD = False
    track = TrackFactory()
    save(client, title="Doomed", cover_upload=image_file("PNG"), track=[track.pk])
    mixtape = Mixtape.objects.get()
    cover = media_root / mixtape.cover.name
    page = client.get(f"/editor/{mixtape.slug}/delete/").content.decode()
    assert "Delete “Doomed”?" in page and "1 track" in page
    assert Mixtape.objects.exists()  # GET only asks
    response = client.post(f"/editor/{mixtape.slug}/delete/")
    assert response.status_code == 302 and response["Location"] == "/mixtapes/"
    assert not Mixtape.objects.exists() and not MixtapeTrack.objects.exists()
    assert Track.objects.filter(pk=track.pk).exists() and not cover.exists()


# --- List --------------------------------------------------------------------------------


def test_list_shows_counts_duration_and_cache_state(client, alice, settings):
    settings.AUDIO_CACHE_DEFAULT_QUALITY = "medium"
    mixtape = MixtapeFactory(owner=alice, title="Stats", is_public=True)
    fresh, stale, missing_rendition = (TrackFactory(duration=60) for _ in range(3))
    lossy = TrackFactory(duration=30, is_lossless=False, codec="mp3")
    for position, track in enumerate([fresh, stale, missing_rendition, lossy], start=1):
        MixtapeTrackFactory(mixtape=mixtape, track=track, position=position)
    CachedRenditionFactory(track=fresh, quality="medium", encoder_profile=ENCODER_PROFILE)
    CachedRenditionFactory(track=stale, quality="medium", encoder_profile=ENCODER_PROFILE, source_size=1)
    CachedRenditionFactory(track=missing_rendition, quality="low", encoder_profile=ENCODER_PROFILE)
    MixtapeFactory(title="Not mine")
    page = client.get("/mixtapes/").content.decode()
    assert "Stats" in page and "Not mine" not in page
    assert "4 tracks · 3:30" in page
    assert "2/4 ready at medium" in page  # the fresh rendition and the lossy source
    assert "Public" in page


def test_list_query_count_does_not_grow_with_mixtapes(client, alice):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/mixtapes/").status_code == 200
        return len(captured)

    MixtapeTrackFactory(mixtape=MixtapeFactory(owner=alice))
    few = queries()
    for _ in range(10):
        MixtapeTrackFactory(mixtape=MixtapeFactory(owner=alice))
    assert queries() == few


# --- Share page --------------------------------------------------------------------------


def test_share_page_lists_tracks_with_their_cached_qualities(client, settings):
    settings.AUDIO_CACHE_DEFAULT_QUALITY = "low"
    mixtape = MixtapeFactory(slug="tape", is_public=True, liner_notes="Line one\nLine two")
    cached = TrackFactory(title="Cached one")
    plain = TrackFactory(title="Plain one")
    MixtapeTrackFactory(mixtape=mixtape, track=cached, position=1)
    MixtapeTrackFactory(mixtape=mixtape, track=plain, position=2)
    CachedRenditionFactory(track=cached, quality="high", encoder_profile=ENCODER_PROFILE)
    CachedRenditionFactory(track=cached, quality="low", encoder_profile=ENCODER_PROFILE)
    CachedRenditionFactory(track=plain, quality="low", encoder_profile="mp3-old-settings")  # stale
    response = client.get("/share/tape/")
    page = response.content.decode()
    assert "Line one<br>Line two" in page
    playlist = response.context["playlist"]
    assert [(p["title"], p["cached"]) for p in playlist] == [("Cached one", ["high", "low"]), ("Plain one", [])]
    assert playlist[0]["stream_url"] == f"/stream/{cached.pk}/"
    assert '<option value="low" selected>' in page and '<option value="original">' in page
    assert CachedRendition.objects.count() == 3  # a page view changes nothing
