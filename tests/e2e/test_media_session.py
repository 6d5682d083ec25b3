"""The share page's player in Chromium: track pictures and the mixtape's mosaic load, and the
Media Session (lock screen, notification shade, media keys) shows the track and drives the player.

The page's action handlers are caught as it registers them (an init script wraps
``setActionHandler``) and called from the test, as the operating system would call them.
"""

import pytest
from django.db import connections

from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.e2e.conftest import wait_in_page
from tests.factories import MixtapeFactory, MixtapeTrackFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AUDIO = "document.getElementById('player-audio')"
CATCH_HANDLERS = """
window.__mediaActions = {};
if (navigator.mediaSession) {
  const register = navigator.mediaSession.setActionHandler.bind(navigator.mediaSession);
  navigator.mediaSession.setActionHandler = (action, handler) => {
    window.__mediaActions[action] = handler;
    register(action, handler);
  };
}
"""


def test_pictures_and_the_media_session(browser, artifacts, make_audio, static_root, uvicorn_server):
    # ReplayGain: the first is to be made quieter (-6.02 dB: half), the second louder (+6.02 dB:
    # double), but its peak (0.8) allows only 1.25.
    gains = [{"replaygain_track_gain": "-6.0206 dB"},
             {"replaygain_track_gain": "+6.0206 dB", "replaygain_track_peak": "0.8"}]  # fmt: skip
    for n, title in enumerate(("First Light", "Second Wind"), start=1):
        make_audio(f"Artist/Album {n}/0{n}.flac", duration=20, noise=True, cover=True,
                   tags={"title": title, "artist": "The Testers", "album": f"Album {n}", **gains[n - 1]})  # fmt: skip
    scan_library()
    mixtape = MixtapeFactory(title="Session Tape", is_public=True)  # no uploaded cover
    for position, track in enumerate(Track.objects.order_by("path"), start=1):
        MixtapeTrackFactory(mixtape=mixtape, track=track, position=position)
    base = uvicorn_server(AUDIO_CACHE_MAX_WORKERS="1", STATIC_ROOT=str(static_root))
    context = browser.new_context()
    context.add_init_script(CATCH_HANDLERS)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(f"{base}/share/{mixtape.slug}/")
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # the track list's pictures load lazily
        loaded = "img => img.complete && img.naturalWidth > 0"
        wait_in_page(page, f"[...document.querySelectorAll('img')].every({loaded})")
        sizes = page.evaluate("[...document.querySelectorAll('.track-cover')].map(i => i.naturalWidth)")
        assert sizes == [64, 64]  # the 64-pixel thumbnails of the embedded pictures
        # No uploaded cover: its albums' pictures (the same one here, so that one, not a mosaic).
        assert page.evaluate("document.querySelector('.cover-large').naturalWidth") == 64

        page.get_by_role("button", name="Play First Light").click()
        wait_in_page(page, f"{AUDIO}.currentTime > 0.3")
        metadata = page.evaluate(
            "(() => { const m = navigator.mediaSession.metadata;"
            " return {title: m.title, artist: m.artist, album: m.album, artwork: m.artwork.map(a => a.sizes)}; })()"
        )
        assert metadata == {"title": "First Light", "artist": "The Testers", "album": "Album 1",
                            "artwork": ["128x128", "256x256", "512x512"]}  # fmt: skip
        assert set(page.evaluate("Object.keys(window.__mediaActions)")) >= {
            "play", "pause", "previoustrack", "nexttrack", "seekbackward", "seekforward", "seekto"
        }  # fmt: skip

        assert page.evaluate(f"{AUDIO}.dataset.gain") == "1.0000"  # the switch is off
        page.get_by_label("Even out loudness (ReplayGain, from the tracks' tags)").check()
        # The scan keeps gains to 0.01 dB, as ReplayGain writes them: -6.02 dB is 0.50003.
        assert page.evaluate(f"{AUDIO}.dataset.gain") == "0.5000" and abs(page.evaluate(f"{AUDIO}.volume") - 0.5) < 1e-4

        page.evaluate("window.__mediaActions.pause({action: 'pause'})")
        wait_in_page(page, f"{AUDIO}.paused && navigator.mediaSession.playbackState === 'paused'")
        page.evaluate("window.__mediaActions.play({action: 'play'})")
        wait_in_page(page, f"!{AUDIO}.paused")
        page.evaluate("window.__mediaActions.seekto({action: 'seekto', seekTime: 12})")
        wait_in_page(page, f"{AUDIO}.currentTime >= 12")
        page.evaluate("window.__mediaActions.seekbackward({action: 'seekbackward'})")
        wait_in_page(page, f"{AUDIO}.currentTime < 6")
        page.evaluate("window.__mediaActions.nexttrack({action: 'nexttrack'})")
        wait_in_page(page, "navigator.mediaSession.metadata.title === 'Second Wind'")
        wait_in_page(page, f"{AUDIO}.currentTime > 0.3")
        assert page.locator("#player-title").text_content() == "Second Wind"
        assert page.evaluate(f"{AUDIO}.dataset.gain") == "1.2500"  # louder, through Web Audio, to the peak
        assert page.evaluate(f"!{AUDIO}.paused && {AUDIO}.volume === 1")
        assert page.evaluate("document.getElementById('player-cover').naturalWidth") == 64
        page.screenshot(path=artifacts / "01-share-with-pictures.png", full_page=True)
    finally:
        connections.close_all()
