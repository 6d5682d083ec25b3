"""Formats in Chromium and over HTTP, against uvicorn with one worker (issue #21): the player
asks the browser what it plays and picks Opus; the quality menu names format and bitrate;
switching to MP3 keeps the position; ffprobe reads each format's rendition from the live server,
and a seek into its middle decodes.
"""

import subprocess

import pytest
from django.db import connections

from audiocache.seed_api import AudioCache
from audiocache.services import set_streaming_format
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.e2e.conftest import wait_in_page
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AUDIO = "document.getElementById('player-audio')"


def test_the_player_picks_opus_and_keeps_the_position_across_formats(
    browser, artifacts, make_audio, static_root, uvicorn_server, client
):
    make_audio("Band/01.flac", duration=20, noise=True, tags={"title": "Long Noise", "artist": "Band"})
    scan_library()
    track = Track.objects.get()
    mixtape = MixtapeFactory(title="Formats", slug="formats", is_public=True)
    MixtapeTrackFactory(mixtape=mixtape, track=track, position=1)
    for variant in ("opus:medium", "medium", "aac:medium"):
        AudioCache().transcode_file(track, variant)
    connections.close_all()
    base = uvicorn_server(AUDIO_CACHE_MAX_WORKERS="1", STATIC_ROOT=str(static_root))

    page = browser.new_context().new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base}/share/formats/")
    assert page.locator("#player").get_attribute("data-best-format") == "opus"  # Chromium plays Opus
    assert page.locator("#player-format option").first.text_content() == "Automatic (Opus)"
    assert page.locator("#player-quality option[value=medium]").text_content() == "Medium · Opus 128k"
    assert page.locator(".cache-badge").text_content() == "From cache"
    page.get_by_role("button", name="Play Long Noise").click()
    wait_in_page(page, f"{AUDIO}.currentTime > 0.5")
    assert page.evaluate(f"{AUDIO}.currentSrc").endswith("?quality=medium&format=opus")
    wait_in_page(page, "document.getElementById('player-source').textContent.includes('Opus 128k from the cache')")
    page.locator("#player-seek").fill("10")
    wait_in_page(page, f"{AUDIO}.currentTime > 10.5")
    page.screenshot(path=artifacts / "01-playing-opus.png", full_page=True)

    position = page.evaluate(f"{AUDIO}.currentTime")
    page.get_by_label("Format", exact=True).select_option("mp3")
    wait_in_page(page, f"{AUDIO}.currentSrc.endsWith('format=mp3') && {AUDIO}.currentTime > {position + 0.3}")
    assert page.evaluate(f"{AUDIO}.currentTime") < position + 5  # went on from there, no restart
    assert page.evaluate(f"{AUDIO}.error") is None and not page.evaluate(f"{AUDIO}.paused")
    assert page.locator("#player-quality option[value=medium]").text_content() == "Medium · MP3 192k"
    page.reload()  # the choice is remembered
    assert page.get_by_label("Format", exact=True).input_value() == "mp3"

    # Each format as an HTTP client reads it: the length and codec, and a seek into the middle.
    for fmt, codec in (("opus", "opus"), ("aac", "aac"), ("mp3", "mp3")):
        url = f"{base}/stream/{track.pk}/?quality=medium&format={fmt}"
        probed = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "csv=p=0", url],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.split()  # fmt: skip
        assert probed[0] == codec and abs(float(probed[-1]) - 20) < 0.2, (fmt, probed)
        middle = subprocess.run(
            ["ffmpeg", "-v", "error", "-ss", "10", "-i", url, "-t", "2", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert middle.returncode == 0 and middle.stderr.strip() == "", (fmt, middle.stderr)

    # A listener whose account says MP3: "Automatic" takes it (a browser that plays Opus or not).
    listener = UserFactory()
    set_streaming_format(listener, "mp3")
    client.force_login(listener)
    connections.close_all()
    signed_in = browser.new_context()
    signed_in.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}])
    page = signed_in.new_page()
    page.goto(f"{base}/share/formats/")
    assert page.locator("#player").get_attribute("data-best-format") == "mp3"
    assert page.locator("#player-format option").first.text_content() == "Automatic (MP3)"
    assert page.locator("#player-quality option[value=medium]").text_content() == "Medium · MP3 192k"
