"""Progressive streaming in a real browser (issue 10): Debian's Chromium, driven by Playwright,
plays a track on the share page while its MP3 is still being made, and a seek to the middle works.

uvicorn runs the app with its worker pool (the single-node topology) and an ffmpeg slowed to
``READ_RATE`` times real time (``tests/e2e/slow-ffmpeg``), so the transcode outlasts everything
the test does before the seek. What it proves, as a listener would notice it:

- playback starts at once from the growing file (``X-Audio-Cache: progressive``), with the
  finished rendition's exact size as the response's total: the browser knows the duration
  before the file is done;
- dragging the seek bar to the middle, to bytes ffmpeg has not written yet, plays on from
  there (the range waits for the writer) without a media error;
- the finished rendition has the size the browser was promised.
"""

from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from audiocache.models import CachedRendition, CacheTask
from audiocache.qualities import BITRATES
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import SLOW_FFMPEG, dying_ffmpeg, wait_until
from tests.e2e.conftest import wait_in_page
from tests.factories import MixtapeFactory, MixtapeTrackFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TRACK_SECONDS = 24
# ffmpeg reads the FLAC at 1.5 x real time, so the MP3 takes 16 s to make: the seek (about 3 s
# after play) asks for bytes it will write only some 4 s later, even on a slow machine.
READ_RATE = 1.5
QUALITY = "medium"
AUDIO = "document.getElementById('player-audio')"


@pytest.fixture
def shared_track(make_audio):
    """A lossless track with no rendition yet, on a public mixtape (so a visitor may play it)."""
    # Pink noise compresses like music, so the MP3's bytes are spread over the whole track.
    make_audio("Slow Artist/01 Long Noise.flac", duration=TRACK_SECONDS, noise=True, tags={"title": "Long Noise"})
    scan_library()
    track = Track.objects.get()
    mixtape = MixtapeFactory(title="Half Made", is_public=True)
    MixtapeTrackFactory(mixtape=mixtape, track=track, position=0)
    return track, mixtape


def test_a_visitor_plays_and_seeks_while_the_mp3_is_being_made(
    browser,
    artifacts,
    shared_track,
    static_root,
    uvicorn_server,
):
    track, mixtape = shared_track
    base = uvicorn_server(
        AUDIO_CACHE_MAX_WORKERS="1",
        AUDIO_CACHE_FFMPEG=SLOW_FFMPEG,
        SLOW_FFMPEG_RATE=str(READ_RATE),
        STATIC_ROOT=str(static_root),
    )
    problems = []
    streams = []  # the audio element's GET responses from /stream/ (the player's HEAD probes aside)
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = context.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", lambda r: streams.append(r) if "/stream/" in r.url and r.request.method == "GET" else None)
    page.set_default_timeout(20_000)
    try:
        _listen(page, base, track, mixtape, streams, shots=artifacts)
    except Exception:
        page.screenshot(path=artifacts / "failure.png", full_page=True)
        (artifacts / "failure.html").write_text(page.content())
        raise
    finally:
        context.close()
        # Queries made while Playwright's loop runs get their own connection (asgiref keys
        # connections by context); close it, or PostgreSQL cannot drop the test database.
        connections.close_all()
    assert problems == []


def _listen(page, base, track, mixtape, streams, shots):
    page.goto(f"{base}/share/{mixtape.slug}/")
    assert page.locator(".cache-badge").text_content() == "Not cached yet"
    page.get_by_label("Quality").select_option(QUALITY)
    page.get_by_label("Format", exact=True).select_option("mp3")  # an MP3's planned length lets the player seek in it
    page.get_by_role("button", name="Play Long Noise").click()
    wait_in_page(page, f"{AUDIO}.currentTime > 0.5")
    assert page.evaluate(f"{AUDIO}.error") is None
    # The player asks the server (HEAD) what it streams and says so.
    wait_in_page(page, "document.getElementById('player-source').textContent !== ''")
    label = f"MP3 {BITRATES[QUALITY]}k"
    assert page.locator("#player-source").text_content() == f"Streaming the {label} as it is being made."

    first = streams[0]
    assert first.url.endswith(f"/stream/{track.pk}/?quality={QUALITY}&format=mp3")
    assert first.header_value("x-audio-cache") == "progressive"
    promised = total_size(first)
    # Chromium reads the length from the promised size (the MP3's Xing frame is only filled in
    # when ffmpeg ends): the honest total is what lets it show the duration and map a seek.
    duration = page.evaluate(f"{AUDIO}.duration")
    assert duration == pytest.approx(TRACK_SECONDS, abs=0.5)
    page.screenshot(path=shots / "01-playing-while-made.png", full_page=True)

    # Right before the seek (and so also when the duration was read): ffmpeg is still at work
    # and nothing is cached yet.
    task = CacheTask.objects.get(track=track, quality=QUALITY)
    assert task.status == CacheTask.Status.RUNNING
    assert not CachedRendition.objects.filter(track=track, quality=QUALITY).exists()
    written = written_bytes(task)

    middle = duration / 2
    seek_to(page, middle)
    wait_in_page(page, f"{AUDIO}.currentTime > {middle + 0.5}")
    assert page.evaluate(f"{AUDIO}.error") is None and not page.evaluate(f"{AUDIO}.paused")
    # The seek was a range request beyond what ffmpeg had written when the listener seeked.
    ranged = [r for r in streams[1:] if range_start(r) > written]
    assert ranged, (written, [(r.status, r.request.headers.get("range")) for r in streams])
    assert all(r.status == 206 and total_size(r) == promised for r in streams)
    page.screenshot(path=shots / "02-after-seek.png", full_page=True)

    # Still playing a few seconds on, past the seek's first buffered bytes.
    position = page.evaluate(f"{AUDIO}.currentTime")
    wait_in_page(page, f"{AUDIO}.currentTime > {position + 2}")

    wait_until(
        lambda: CacheTask.objects.get(pk=task.pk).status == CacheTask.Status.DONE, timeout=30, message="the transcode"
    )
    rendition = CachedRendition.objects.get(track=track, quality=QUALITY)
    assert rendition.size == promised
    assert page.evaluate(f"{AUDIO}.error") is None


def seek_to(page, seconds: float) -> None:
    """Drag the seek bar as a user does: ``input`` while dragging, ``change`` on release."""
    page.locator("#player-seek").fill(str(seconds))


def total_size(response) -> int:
    """The full size a 206's ``Content-Range`` (or a 200's ``Content-Length``) announces."""
    content_range = response.header_value("content-range")
    if content_range:
        return int(content_range.rpartition("/")[2])
    return int(response.header_value("content-length"))


def range_start(response) -> int:
    """Where the request behind ``response`` asked its bytes to start."""
    requested = response.request.header_value("range") or "bytes=0-"
    return int(requested.removeprefix("bytes=").partition("-")[0])


def written_bytes(task: CacheTask) -> int:
    """How much of the MP3 ffmpeg has written so far (the task's temporary file)."""
    return (Path(settings.AUDIO_CACHE_DIR) / task.temp_name).stat().st_size


def test_when_the_mp3_being_made_fails_the_player_goes_on_with_the_original(
    browser,
    artifacts,
    shared_track,
    static_root,
    uvicorn_server,
    tmp_path,
):
    """ffmpeg dies a few seconds in (as on a crash): the stream ends short and the source is
    quarantined. Chromium stops where the bytes stopped (it notices that its retry for the
    rest is another file) and the player asks again from there: it goes on with the FLAC."""
    _track, mixtape = shared_track
    base = uvicorn_server(
        AUDIO_CACHE_MAX_WORKERS="1",
        AUDIO_CACHE_MAX_ATTEMPTS="1",
        AUDIO_CACHE_FFMPEG=dying_ffmpeg(tmp_path, 3),
        SLOW_FFMPEG_RATE=str(READ_RATE),
        STATIC_ROOT=str(static_root),
    )
    problems = []
    context = browser.new_context()
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{base}/share/{mixtape.slug}/")
        page.evaluate(RECORD_EVENTS)
        page.get_by_label("Quality").select_option(QUALITY)
        page.get_by_label("Format", exact=True).select_option("mp3")
        page.get_by_role("button", name="Play Long Noise").click()
        wait_in_page(page, "document.getElementById('player-source').textContent.includes('being made')")
        wait_until(
            lambda: CacheTask.objects.filter(status=CacheTask.Status.FAILED).exists(), timeout=30, message="the failure"
        )
        wait_in_page(
            page, "document.getElementById('player-source').textContent.startsWith('Streaming the original file')"
        )
        # Playing on, past everything the dead ffmpeg wrote (3 s at 1.5 x real time).
        wait_in_page(page, f"{AUDIO}.currentTime > 6 && !{AUDIO}.paused && {AUDIO}.error === null")
        page.screenshot(path=artifacts / "01-original-after-failure.png", full_page=True)
        assert not CachedRendition.objects.exists()
    except Exception:
        page.screenshot(path=artifacts / "failure.png", full_page=True)
        (artifacts / "failure.html").write_text(page.content())
        raise
    finally:
        events = page.evaluate("window.audioEvents || []")
        context.close()
        connections.close_all()
    assert problems == []
    # It went on from where the MP3 stopped, not from the start.
    ended = next(n for n, (name, _) in enumerate(events) if name == "ended")
    heard = max(time for name, time in events[:ended] if name == "timeupdate" and time < TRACK_SECONDS - 1)
    after = [time for name, time in events[ended + 1 :] if name == "timeupdate"]
    assert heard > 2 and after and min(after) >= heard - 0.5, events


# Keeps what the audio element reports, across source changes, in window.audioEvents.
RECORD_EVENTS = f"""
window.audioEvents = [];
for (const name of ["timeupdate", "seeking", "ended", "error", "emptied"]) {{
  {AUDIO}.addEventListener(name, () => window.audioEvents.push([name, {AUDIO}.currentTime]));
}}
"""
