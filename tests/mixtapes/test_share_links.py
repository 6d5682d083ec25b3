"""Share links (#19 item 6): a token that opens one mixtape, private or not, with an expiry,
revocation and re-issue, a visit counter, an M3U8 of stream URLs valid for the link and a
streamed zip download."""

import asyncio
import io
import re
import zipfile
from datetime import timedelta

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.urls import reverse
from django.utils import timezone
from mutagen.id3 import ID3

from audiocache import services as cache_services
from audiocache.models import CacheTask
from mixtapes import downloads, services, sharing
from mixtapes.models import ShareLink
from tests.conftest import body, url
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tape(library):
    """A private mixtape of bob's: lossless.flac, then lossy.mp3, then wave.wav."""
    bob = UserFactory(username="bob")
    mixtape = MixtapeFactory(owner=bob, title="Night Drive", slug="night-drive", is_public=False, liner_notes="Loud.")
    for position, name in enumerate(["lossless.flac", "lossy.mp3", "wave.wav"], start=1):
        MixtapeTrackFactory(mixtape=mixtape, track=library[name], position=position)
    return mixtape


@pytest.fixture
def link(tape):
    return services.create_link(tape, label="Sam", allow_download=True)


def page(client, token):
    return client.get(reverse("link", args=[token]))


# --- Making, revoking, re-issuing -------------------------------------------------------------------


def test_the_owner_makes_a_link_from_the_editor(client, tape):
    client.force_login(tape.owner)
    response = client.post(
        reverse("link-create", args=[tape.slug]), {"label": "Sam", "lifetime": "7", "allow_download": "on"}
    )
    assert response.status_code == 302 and response["Location"].endswith("#share-links")
    link = ShareLink.objects.get(mixtape=tape)
    assert (link.label, link.allow_download) == ("Sam", True)
    assert sharing.looks_like_token(link.token)
    assert timedelta(days=6, hours=23) < link.expires_at - timezone.now() <= timedelta(days=7)
    editor = client.get(reverse("editor", args=[tape.slug])).content.decode()
    assert f"/listen/{link.token}/" in editor and "Download allowed" in editor and "0 visits" in editor


def test_tokens_are_unguessable_and_distinct(tape):
    tokens = {services.create_link(tape).token for _ in range(20)}
    assert len(tokens) == 20 and all(sharing.looks_like_token(t) for t in tokens)


def test_nobody_else_makes_or_revokes_links(client, tape, link):
    client.force_login(UserFactory(username="mallory"))
    assert client.post(reverse("link-create", args=[tape.slug])).status_code == 404
    assert client.post(reverse("link-revoke", args=[tape.slug, link.pk])).status_code == 404
    assert client.post(reverse("link-reissue", args=[tape.slug, link.pk])).status_code == 404
    client.logout()
    assert client.post(reverse("link-create", args=[tape.slug])).status_code == 302  # to the login page
    assert ShareLink.objects.filter(mixtape=tape).count() == 1
    assert page(client, link.token).status_code == 200


def test_links_are_changed_by_post_only(client, tape, link):
    client.force_login(tape.owner)
    assert client.get(reverse("link-revoke", args=[tape.slug, link.pk])).status_code == 405
    assert page(client, link.token).status_code == 200


def test_a_mixtape_has_a_bounded_number_of_live_links(client, tape, settings, monkeypatch):
    monkeypatch.setattr(services, "MAX_LIVE_LINKS", 3)
    client.force_login(tape.owner)
    for _ in range(4):
        response = client.post(reverse("link-create", args=[tape.slug]), follow=True)
    assert ShareLink.objects.filter(mixtape=tape).count() == 3
    assert "A mixtape can have 3 live links" in response.content.decode()
    services.revoke_link(ShareLink.objects.filter(mixtape=tape).first())
    client.post(reverse("link-create", args=[tape.slug]))
    assert ShareLink.objects.filter(mixtape=tape).count() == 4  # revoked ones do not count


def test_a_link_is_not_made_where_its_owner_may_not_publish(client, tape, settings):
    settings.MIXTAPES_PUBLIC_SHARING = "staff"
    client.force_login(tape.owner)
    response = client.post(reverse("link-create", args=[tape.slug]), follow=True)
    assert not ShareLink.objects.exists()
    assert "only staff accounts may make a mixtape public" in response.content.decode()


# --- What a link opens ----------------------------------------------------------------------------


def test_a_link_opens_a_private_mixtape_and_counts_its_visits(client, tape, link):
    assert client.get(reverse("share", args=[tape.slug])).status_code == 404  # private by its slug
    first = page(client, link.token)
    html = first.content.decode()
    assert first.status_code == 200 and "Night Drive" in html
    assert "Private: only you can see it" not in html
    assert '<meta name="robots" content="noindex, nofollow">' in html
    assert f'data-share="{link.token}"' in html
    assert f"/listen/{link.token}/cover/" in html and f"&amp;share={link.token}" in html  # cover, track pictures
    assert f'content="http://testserver/listen/{link.token}/"' in html  # the link card points at the link
    assert first["Cache-Control"] == "private, no-cache"
    page(client, link.token)
    client.head(reverse("link", args=[link.token]))  # not a visit: HEAD is refused
    link.refresh_from_db()
    assert link.visits == 2 and link.last_visited_at is not None


def test_a_links_token_opens_the_tracks_of_its_mixtape_only(client, tape, link, library):
    flac = library["lossless.flac"]
    assert client.get(url(flac, "original")).status_code == 404
    assert client.get(f"{url(flac, 'original')}&share={link.token}").status_code == 200
    assert client.get(f"/tracks/{flac.pk}/cover/?size=64&share={link.token}").status_code in (200, 302)
    assert client.get(f"/tracks/{flac.pk}/cover/?size=64").status_code == 404
    other = library["aiff.aiff"]  # in the library, not on the mixtape
    assert client.get(f"{url(other, 'original')}&share={link.token}").status_code == 404
    for token in ["x" * 22, link.token[:-1], link.token + "a", "../" * 8, ""]:
        assert client.get(f"{url(flac, 'original')}&share={token}").status_code == 404
    assert client.get(reverse("link-cover", args=[link.token])).status_code in (200, 302)


def test_an_unknown_token_is_not_found(client, link):
    assert page(client, "A" * 22).status_code == 404
    assert client.get("/listen/short/").status_code == 404
    assert client.get(f"/listen/{'A' * 4000}/").status_code == 404


@pytest.mark.parametrize("end", ["expire", "revoke", "withdraw"])
def test_a_dead_link_says_the_mixtape_is_no_longer_shared(client, tape, link, library, settings, end):
    if end == "expire":
        ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        reason = "has expired"
    elif end == "revoke":
        client.force_login(tape.owner)
        client.post(reverse("link-revoke", args=[tape.slug, link.pk]))
        client.logout()
        reason = "stopped sharing"
    else:
        settings.MIXTAPES_PUBLIC_SHARING = "none"
        reason = "turned off"
    for path in ["link", "link-cover", "link-playlist", "link-download"]:
        response = client.get(reverse(path, args=[link.token]))
        assert response.status_code == 410, path
        assert "This mixtape is no longer shared" in response.content.decode() and reason in response.content.decode()
        assert 'href="/"' in response.content.decode()  # a way home
    assert client.get(f"{url(library['lossless.flac'], 'original')}&share={link.token}").status_code == 404
    link.refresh_from_db()
    assert link.visits == 0


def test_reissue_replaces_the_token_and_keeps_the_rest(client, tape):
    old = services.create_link(tape, label="Club", expires_in=timedelta(days=30), allow_download=True)
    ShareLink.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=40), expires_at=timezone.now() - timedelta(days=10)
    )
    old.refresh_from_db()
    client.force_login(tape.owner)
    client.post(reverse("link-reissue", args=[tape.slug, old.pk]))
    client.logout()
    new = ShareLink.objects.exclude(pk=old.pk).get()
    assert new.token != old.token and (new.label, new.allow_download) == ("Club", True)
    # The lifetime (30 days) counts again from now, though the old link had run out.
    assert timedelta(days=29, hours=23) < new.expires_at - timezone.now() <= timedelta(days=30)
    assert page(client, old.token).status_code == 410 and page(client, new.token).status_code == 200


def test_staff_revoke_links_in_the_admin(client, tape, link):
    client.force_login(UserFactory(username="admin", is_staff=True, is_superuser=True))
    listing = client.get(reverse("admin:mixtapes_sharelink_changelist"))
    assert listing.status_code == 200 and "Night Drive" in listing.content.decode()
    client.post(reverse("admin:mixtapes_sharelink_changelist"), {"action": "revoke", "_selected_action": [link.pk]})
    assert sharing.link_state(ShareLink.objects.get(pk=link.pk)) == sharing.REVOKED


# --- M3U8 -------------------------------------------------------------------------------------------


def test_the_m3u8_lists_stream_urls_that_work_for_the_link(client, tape, link):
    response = client.get(reverse("link-playlist", args=[link.token]) + "?quality=original")
    assert response.status_code == 200 and response["Content-Type"].startswith("audio/x-mpegurl")
    assert 'filename="Night Drive.m3u8"' in response["Content-Disposition"]
    lines = response.content.decode().splitlines()
    assert lines[:2] == ["#EXTM3U", "#PLAYLIST:Night Drive"]
    urls = [line for line in lines if not line.startswith("#")]
    expected = [entry.track_id for entry in tape.entries.order_by("position")]
    assert [int(re.search(r"/stream/(\d+)/", u)[1]) for u in urls] == expected
    assert all(u.startswith("http://testserver/stream/") and u.endswith(f"&share={link.token}") for u in urls)
    assert lines[2].startswith("#EXTINF:2,")
    for u in urls:  # each plays for a listener with no account
        assert client.get(u.removeprefix("http://testserver")).status_code == 200


def test_the_m3u8_refuses_an_unknown_quality(client, link):
    assert client.get(reverse("link-playlist", args=[link.token]) + "?quality=ultra").status_code == 404


# --- The zip ----------------------------------------------------------------------------------------


def download(client, link, quality):
    return client.get(reverse("link-download", args=[link.token]) + f"?quality={quality}")


def unzip(response) -> zipfile.ZipFile:
    data = body(response)
    assert int(response["Content-Length"]) == len(data)
    return zipfile.ZipFile(io.BytesIO(data))


def test_no_download_unless_the_link_allows_it(client, tape):
    link = services.create_link(tape, allow_download=False)
    assert download(client, link, "original").status_code == 404
    assert "Download zip" not in page(client, link.token).content.decode()


def test_the_originals_zip_holds_the_files_in_order_byte_for_byte(client, tape, link, music_root):
    html = page(client, link.token).content.decode()
    assert "Download zip" in html and "Open in another player (M3U8)" in html
    response = download(client, link, "original")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="Night Drive.zip"'
    archive = unzip(response)
    names = archive.namelist()
    assert names == [
        "Night Drive/01 - Lossless.flac",
        "Night Drive/02 - lossy.mp3",
        "Night Drive/03 - wave.wav",
        "Night Drive/Night Drive.m3u8",
        "Night Drive/Liner notes.txt",
    ]
    for name, entry in zip(names, tape.entries.order_by("position"), strict=False):
        assert archive.read(name) == (music_root / entry.track.path).read_bytes()
    assert archive.read("Night Drive/Night Drive.m3u8").decode().splitlines()[2] == "01 - Lossless.flac"
    assert archive.testzip() is None


def test_an_mp3_zip_waits_for_its_renditions_then_tags_them_as_one_album(client, tape, link, library):
    flac, wav = library["lossless.flac"], library["wave.wav"]
    waiting = download(client, link, "medium")
    assert waiting.status_code == 202 and waiting["Retry-After"] == "3"
    assert "2 of 3 tracks are being converted" in waiting.content.decode()
    assert set(CacheTask.objects.values_list("track_id", "quality", "priority")) == {
        (flac.pk, "medium", CacheTask.PRIORITY_PLAY),
        (wav.pk, "medium", CacheTask.PRIORITY_PLAY),
    }
    assert download(client, link, "medium").status_code == 202  # asking again joins the same tasks
    assert CacheTask.objects.count() == 2

    made = {track.pk: cache_services.make_rendition(track, "medium") for track in (flac, wav)}
    archive = unzip(download(client, link, "medium"))
    names = archive.namelist()
    assert names[:3] == ["Night Drive/01 - Lossless.mp3", "Night Drive/02 - lossy.mp3", "Night Drive/03 - wave.mp3"]
    first = archive.read(names[0])
    tags = ID3(io.BytesIO(first))
    assert str(tags["TALB"]) == "Night Drive" and str(tags["TRCK"]) == "1/3" and str(tags["TIT2"]) == "Lossless"
    assert str(tags["TPE2"]) == "Various Artists"
    rendition = made[flac.pk].read_bytes()
    audio = rendition[ID3(made[flac.pk]).size :]
    assert first[tags.size :] == audio  # the audio itself is the rendition's, untouched
    assert str(ID3(io.BytesIO(archive.read(names[2])))["TRCK"]) == "3/3"
    assert archive.read(names[1]) == (library["lossy.mp3"].absolute_path()).read_bytes()  # lossy: as it is


def test_a_failed_transcode_goes_in_as_its_original(client, tape, link, library, music_root):
    wav = library["wave.wav"]
    for track in (library["lossless.flac"], wav):
        cache_services.plan_download([track.pk], "low")
    CacheTask.objects.filter(track=wav).update(status=CacheTask.Status.FAILED, error="Invalid data")
    cache_services.make_rendition(library["lossless.flac"], "low")
    names = unzip(download(client, link, "low")).namelist()
    assert names[:3] == ["Night Drive/01 - Lossless.mp3", "Night Drive/02 - lossy.mp3", "Night Drive/03 - wave.wav"]


def test_a_track_whose_file_is_gone_is_left_out(client, tape, link, library):
    library["wave.wav"].absolute_path().unlink()
    names = unzip(download(client, link, "original")).namelist()
    assert names[:2] == ["Night Drive/01 - Lossless.flac", "Night Drive/02 - lossy.mp3"]
    assert len(names) == 4  # and the playlist and the notes


def test_entry_names_are_safe_on_every_system():
    assert downloads.safe_name('../../etc/pass:wd*?"<>|\x00\n') == "etc pass wd"
    assert downloads.safe_name("...") == "Untitled"
    assert downloads.safe_name("A" * 500) == "A" * 120
    assert "/" not in downloads.safe_name("AC/DC") and downloads.safe_name("AC/DC") == "AC DC"


def test_under_asgi_the_zip_is_read_one_bounded_chunk_at_a_time(tape, link, library, music_root):
    """Django reads a plain iterator into a list under ASGI; the body must be an async iterator
    whose chunks stay small however large the files are."""
    big = music_root / "Artist" / "wave.wav"
    big.write_bytes(big.read_bytes() * 40)  # a few MB
    items = [(entry.track, entry.track.absolute_path(), False) for entry in tape.entries.order_by("position")]
    archive = downloads.mixtape_zip(tape, items)
    request = ASGIRequest({"type": "http", "method": "GET", "path": "/", "headers": []}, io.BytesIO())
    chunks = downloads.body_for(request, archive)
    assert hasattr(chunks, "__anext__")

    async def collect():
        return [chunk async for chunk in chunks]

    parts = asyncio.run(collect())
    assert max(len(p) for p in parts) <= 256 * 1024
    assert sum(len(p) for p in parts) == len(archive) > big.stat().st_size
