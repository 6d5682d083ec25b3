"""Share links in Chromium, against uvicorn with one worker: the owner makes a link in the
editor; a listener without an account opens it, plays, takes the M3U8 and the zip (originals,
then MP3s that the worker makes while a page waits); the owner revokes and re-issues it; an
expired link says so.
"""

import io
import urllib.request
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connections
from django.utils import timezone
from mutagen.id3 import ID3

from mixtapes.library import scan_library
from mixtapes.models import ShareLink, Track
from tests.e2e.conftest import wait_in_page
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PASSWORD = "correct horse battery staple"
AUDIO = "document.getElementById('player-audio')"


def test_a_share_link_from_the_editor_to_the_zip(browser, artifacts, make_audio, static_root, uvicorn_server):
    for n, title in enumerate(("Dawn", "Dusk"), start=1):
        make_audio(f"Band/0{n}.flac", duration=3, noise=True, tags={"title": title, "artist": "Band"})
    scan_library()
    owner = UserFactory(username="dj")
    owner.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    owner.save(update_fields=["password"])
    mixtape = MixtapeFactory(owner=owner, title="Small Hours", slug="small-hours", is_public=False)
    for position, track in enumerate(Track.objects.order_by("path"), start=1):
        MixtapeTrackFactory(mixtape=mixtape, track=track, position=position)
    connections.close_all()
    base = uvicorn_server(AUDIO_CACHE_MAX_WORKERS="1", STATIC_ROOT=str(static_root))

    owner_page = browser.new_context().new_page()
    owner_page.set_default_timeout(20_000)
    owner_page.goto(f"{base}/editor/small-hours/")
    owner_page.get_by_label("Username").fill("dj")
    owner_page.get_by_label("Password").fill(PASSWORD)
    owner_page.get_by_role("button", name="Log in").click()
    owner_page.wait_for_url(f"{base}/editor/small-hours/")
    owner_page.get_by_label("For", exact=True).fill("Sam")
    owner_page.get_by_label("Expires").select_option(label="7 days")
    owner_page.get_by_label("Allow download as a zip").check()
    owner_page.get_by_role("button", name="New link").click()
    owner_page.wait_for_url(f"{base}/editor/small-hours/#share-links")
    link_url = owner_page.get_by_label("Link for Sam").input_value()
    assert link_url.startswith(f"{base}/listen/")
    owner_page.screenshot(path=artifacts / "01-editor-share-links.png", full_page=True)

    listener = browser.new_context(accept_downloads=True).new_page()
    listener.set_default_timeout(20_000)
    listener.goto(link_url)
    assert listener.get_by_role("heading", name="Small Hours").is_visible()
    listener.get_by_role("button", name="Play Dawn").click()
    wait_in_page(listener, f"{AUDIO}.currentTime > 0.3")  # a private mixtape's track, through the link
    listener.screenshot(path=artifacts / "02-link-page.png", full_page=True)

    with listener.expect_download() as m3u:
        listener.get_by_role("link", name="Open in another player (M3U8)").click()
    entries = [line for line in Path(m3u.value.path()).read_text().splitlines() if line and not line.startswith("#")]
    assert len(entries) == 2 and all("&share=" in entry for entry in entries)
    for entry in entries:  # every entry plays with no account
        with urllib.request.urlopen(entry, timeout=30) as response:
            assert response.status == 200 and response.read(4)

    listener.get_by_label("Download as").select_option("original")
    with listener.expect_download() as originals:
        listener.get_by_role("button", name="Download zip").click()
    archive = zipfile.ZipFile(originals.value.path())
    assert archive.namelist()[:2] == ["Small Hours/01 - Band – Dawn.flac", "Small Hours/02 - Band – Dusk.flac"]
    assert archive.read(archive.namelist()[0]) == Track.objects.get(title="Dawn").absolute_path().read_bytes()

    # MP3s at a quality the player did not ask for, so nothing is cached yet: a page waits while
    # the worker makes them, then the zip comes.
    listener.goto(link_url)
    listener.get_by_label("Download as").select_option("low")
    with listener.expect_download(timeout=90_000) as mp3s:
        listener.get_by_role("button", name="Download zip").click()
        listener.wait_for_selector("text=being converted for the download")
        listener.screenshot(path=artifacts / "03-preparing-download.png")
    archive = zipfile.ZipFile(mp3s.value.path())
    first = archive.read("Small Hours/01 - Band – Dawn.mp3")
    tags = ID3(io.BytesIO(first))
    assert (str(tags["TALB"]), str(tags["TRCK"]), str(tags["TIT2"])) == ("Small Hours", "1/2", "Dawn")
    with urllib.request.urlopen(f"{link_url}download/?quality=low", timeout=30) as response:
        data = response.read()
        assert int(response.headers["Content-Length"]) == len(data)  # the length was known ahead

    # The owner revokes it: the listener's next visit says so. A re-issued link works.
    owner_page.reload()
    owner_page.get_by_role("button", name="Revoke").click()
    owner_page.wait_for_selector("text=The link no longer works")
    listener.goto(link_url)
    assert listener.get_by_role("heading", name="This mixtape is no longer shared").is_visible()
    listener.screenshot(path=artifacts / "04-no-longer-shared.png")
    owner_page.get_by_role("button", name="Re-issue").click()
    owner_page.wait_for_selector("text=a new one replaces it below")
    new_url = owner_page.get_by_label("Link for Sam").input_value()
    assert new_url != link_url
    listener.goto(new_url)
    assert listener.get_by_role("heading", name="Small Hours").is_visible()
    assert ShareLink.objects.get(token=new_url.rstrip("/").rsplit("/", 1)[1]).visits == 1

    # A link whose week ran out says so too, and why.
    expired = ShareLink.objects.create(
        mixtape=mixtape, token="E" * 22, label="Old", expires_at=timezone.now() - timedelta(minutes=1)
    )
    listener.goto(f"{base}/listen/{expired.token}/")
    assert listener.get_by_role("heading", name="This mixtape is no longer shared").is_visible()
    assert listener.get_by_text("The link to this mixtape has expired.").is_visible()
