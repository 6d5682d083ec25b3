"""The pages in a real browser: Debian's Chromium driven by Playwright, against uvicorn running
the app and its worker pool (the single-node topology), with static files collected by the
production storage.

One long test walks the whole story, as a user would: log in, build a mixtape from the demo
library by search and drag and drop, save, watch the progress modal (also across a reload),
open the share page, play, seek, switch quality. Screenshots of each page go to
``tests/e2e/screenshots/`` (or ``$BROWSER_ARTIFACTS``).
"""

import shutil

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connections

from mixtapes.demo import make_demo_library
from mixtapes.library import scan_library
from mixtapes.models import Mixtape
from tests.e2e.conftest import wait_in_page
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def slow_ffmpeg(tmp_path):
    """An ffmpeg that waits a moment before each transcode, so a batch lasts long enough to
    reload the page in the middle of it. Version checks are answered at once."""
    wrapper = tmp_path / "slow-ffmpeg"
    real = shutil.which("ffmpeg")
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = "-version" ] || sleep 1.5\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def test_build_save_follow_and_play_a_mixtape(
    browser, artifacts, music_root, static_root, slow_ffmpeg, uvicorn_server, settings
):
    make_demo_library(music_root)
    scan_library(music_root)
    # The server runs the real settings: a hash its hashers know (the test settings use MD5).
    user = UserFactory(username="dj")
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    user.save(update_fields=["password"])
    base = uvicorn_server(
        AUDIO_CACHE_MAX_WORKERS="1",
        AUDIO_CACHE_FFMPEG=str(slow_ffmpeg),
        AUDIO_CACHE_PRECACHE_QUALITIES="medium",
        STATIC_ROOT=str(static_root),
    )
    problems = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 500 else None)
    page.set_default_timeout(20_000)
    try:
        _walk_through(page, browser, base, artifacts, problems)
    except Exception:
        # Whatever the page showed when it went wrong, for whoever reads the CI output folder.
        for n, open_page in enumerate(p for c in browser.contexts for p in c.pages):
            open_page.screenshot(path=artifacts / f"failure-{n}.png", full_page=True)
            (artifacts / f"failure-{n}.html").write_text(open_page.content())
        raise
    finally:
        # Queries made while Playwright's loop runs get their own connection (asgiref keys
        # connections by context); close it, or PostgreSQL cannot drop the test database.
        connections.close_all()
    assert problems == []


def assert_accessible_names(page):
    """Every visible control has a name a screen reader can read (label, aria-label or text)."""
    unnamed = page.evaluate(
        """() => Array.from(document.querySelectorAll('input, select, textarea, button, a[href]'))
            .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
            .filter(el => !((el.labels && el.labels.length) || el.getAttribute('aria-label')
                || el.getAttribute('aria-labelledby') || el.textContent.trim() || el.title))
            .map(el => el.outerHTML.slice(0, 120))"""
    )
    assert unnamed == [], unnamed


def drop_at_end(page, item):
    """Drag ``item`` onto the lower edge of the track list, so it lands last."""
    tracklist = page.locator("#tracklist")
    box = tracklist.bounding_box()
    item.drag_to(tracklist, target_position={"x": box["width"] / 2, "y": box["height"] - 3})


def _walk_through(page, browser, base, artifacts, problems):
    # Log in.
    page.goto(base + "/editor/new/")
    assert "/accounts/login/" in page.url  # the editor needs a login
    page.get_by_label("Username").fill("dj")
    page.get_by_label("Password").fill(PASSWORD)
    page.screenshot(path=artifacts / "01-login.png")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/editor/new/")

    # Build a mixtape: search and Add, search and drag, reorder by drag and by keyboard.
    page.get_by_label("Title").fill("Night Drive")
    page.get_by_label("Liner notes").fill("Tones for the road.\nSecond line.")
    page.get_by_label("Public: anyone with the link can listen").check()
    assert page.locator("#unsaved-indicator").is_visible()
    search = page.get_by_label("Search the library")
    search.fill("apres")  # accents ignored
    page.get_by_role("button", name="Add Après minuit to the mixtape").click()
    search.fill("morning chord")
    drop_at_end(page, page.locator("#search-results .result-item", has_text="Morning Chord"))
    search.fill("surround")
    drop_at_end(page, page.locator("#search-results .result-item", has_text="Surround Check"))
    tracks = page.locator("#tracklist .track-item .track-title")
    assert tracks.all_text_contents() == ["Après minuit", "Morning Chord", "Surround Check (5.1)"]

    page.locator("#tracklist .track-item").nth(2).drag_to(page.locator("#tracklist .track-item").nth(0))
    assert tracks.all_text_contents()[0] == "Surround Check (5.1)"
    page.locator("#tracklist .track-item").nth(0).focus()
    page.keyboard.press("Alt+ArrowDown")
    assert tracks.all_text_contents() == ["Après minuit", "Surround Check (5.1)", "Morning Chord"]
    assert page.locator("#tracklist-announcer").text_content().startswith("Moved Surround Check")
    page.locator("#tracklist .track-item").nth(1).focus()
    page.keyboard.press("Delete")  # keyboard removal
    assert tracks.all_text_contents() == ["Après minuit", "Morning Chord"]
    assert page.locator("#tracklist-summary").text_content() == "2 tracks · 1:10"
    page.get_by_role("button", name="Preview Morning Chord").click()  # preview plays in the page
    wait_in_page(page, "document.getElementById('preview-player').currentTime > 0.2")
    assert page.evaluate("document.getElementById('preview-player').error") is None
    page.get_by_role("button", name="Stop the preview").click()
    assert_accessible_names(page)
    page.screenshot(path=artifacts / "02-editor.png", full_page=True)

    # Save: the modal opens and follows the batch; reload in the middle, it follows again.
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/editor/night-drive/?batch=*")
    status = page.locator("#cache-progress-status")
    page.wait_for_selector("#cache-progress.show")
    page.wait_for_selector("#cache-progress-status[data-state=in_progress]")  # the stream is connected
    assert status.get_attribute("data-state") != "completed", "the batch should still be running here"
    page.wait_for_timeout(300)  # the modal's fade-in, for the screenshot
    page.screenshot(path=artifacts / "03-progress-modal.png")
    page.reload()
    page.locator("#cache-progress").wait_for(state="visible")
    page.wait_for_selector("#cache-progress-status[data-state=completed]", timeout=60_000)
    # The preview above streamed Morning Chord while its MP3 was made (progressive streaming),
    # so by now that one may be cached already: "skipped", not "cached".
    summary = page.locator("#cache-progress-summary").text_content()
    assert "2 cached, 0 skipped, 0 failed" in summary or "1 cached, 1 skipped, 0 failed" in summary, summary
    log = page.locator("#cache-progress-log li").all_text_contents()
    assert len(log) == 2 and any("Cached" in line for line in log), log
    page.screenshot(path=artifacts / "04-progress-completed.png")
    page.locator("#cache-progress").wait_for(state="hidden", timeout=10_000)  # closes by itself
    assert "batch=" not in page.url  # a later reload does not reopen it
    assert not page.locator("#unsaved-indicator").is_visible()
    mixtape = Mixtape.objects.get(slug="night-drive")
    assert [e.track.title for e in mixtape.entries.order_by("position")] == ["Après minuit", "Morning Chord"]
    assert mixtape.is_public

    page.goto(base + "/mixtapes/")
    assert "2/2 ready at medium" in page.locator(".mixtape-card").text_content()
    page.screenshot(path=artifacts / "05-my-mixtapes.png", full_page=True)

    # Share page, as a visitor who is not logged in: play at medium, seek, switch quality.
    visitor = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    listen = visitor.new_page()
    listen.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    listen.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    listen.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 500 else None)
    listen.set_default_timeout(20_000)
    listen.goto(base + "/share/night-drive/")
    assert_accessible_names(listen)
    listen.get_by_label("Format", exact=True).select_option(
        "mp3"
    )  # what the save precached (Opus: tests/e2e/test_formats_browser.py)
    assert listen.locator(".cache-badge").all_text_contents() == ["From cache", "From cache"]
    listen.get_by_label("Quality").select_option("medium")
    listen.get_by_role("button", name="Play Après minuit").click()
    audio = "document.getElementById('player-audio')"
    wait_in_page(listen, f"{audio}.currentTime > 0.3")
    assert listen.evaluate(f"{audio}.currentSrc").endswith("?quality=medium&format=mp3")
    wait_in_page(listen, "document.getElementById('player-source').textContent.includes('from the cache')")

    duration = listen.evaluate(f"{audio}.duration")
    assert 39 < duration < 41
    middle = duration / 2
    listen.locator("#player-seek").fill(str(middle))  # the seek bar, as a user drags it
    wait_in_page(listen, f"{audio}.currentTime > {middle + 0.5}")
    assert listen.evaluate(f"{audio}.error") is None and not listen.evaluate(f"{audio}.paused")
    listen.screenshot(path=artifacts / "06-share-playing.png", full_page=True)

    position = listen.evaluate(f"{audio}.currentTime")
    listen.get_by_label("Quality").select_option("high")  # not cached: the original FLAC plays meanwhile
    wait_in_page(listen, f"{audio}.currentSrc.includes('quality=high')")
    wait_in_page(listen, f"{audio}.currentTime > {position + 0.5}")
    assert listen.evaluate(f"{audio}.currentTime") < position + 10  # kept the position, no restart
    assert listen.evaluate(f"{audio}.error") is None
    listen.get_by_role("button", name="Next track").click()
    wait_in_page(listen, f"{audio}.currentSrc.includes('/stream/') && {audio}.currentTime > 0.3")
    assert listen.locator("#player-title").text_content() == "Morning Chord"
    listen.get_by_role("button", name="Pause").click()
    assert listen.evaluate(f"{audio}.paused")
    listen.screenshot(path=artifacts / "07-share-after-switch.png", full_page=True)
    visitor.close()
