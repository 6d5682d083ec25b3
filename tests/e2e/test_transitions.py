"""From track to track without a wait (static/js/player.js): before a track ends, the player asks
for the next one's first bytes, so its MP3 is queued early and made by the time it plays."""

import pytest
from django.db import connections

from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.e2e.conftest import wait_in_page
from tests.factories import MixtapeFactory, MixtapeTrackFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AUDIO = "document.getElementById('player-audio')"
LOG_FETCHES_AND_ENDS = """
window.__fetches = [];
const originalFetch = window.fetch.bind(window);
window.fetch = (url, options = {}) => {
  window.__fetches.push({url: String(url), range: (options.headers || {}).Range || null, at: performance.now()});
  return originalFetch(url, options);
};
window.__ends = [];
document.addEventListener("ended", () => window.__ends.push(performance.now()), true);
"""


def test_the_next_track_is_prepared_before_this_one_ends(browser, make_audio, static_root, uvicorn_server):
    for n in (1, 2):
        make_audio(f"Album/0{n}.flac", duration=8, noise=True, tags={"title": f"Part {n}", "track": str(n)})
    scan_library()
    first, second = Track.objects.order_by("path")
    mixtape = MixtapeFactory(title="Two Parts", is_public=True)
    MixtapeTrackFactory(mixtape=mixtape, track=first, position=1)
    MixtapeTrackFactory(mixtape=mixtape, track=second, position=2)
    base = uvicorn_server(AUDIO_CACHE_MAX_WORKERS="1", STATIC_ROOT=str(static_root))
    context = browser.new_context()
    context.add_init_script(LOG_FETCHES_AND_ENDS)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{base}/share/{mixtape.slug}/")
        page.get_by_role("button", name="Play Part 1").click()
        wait_in_page(
            page, "window.__ends.length >= 1 && document.getElementById('player-title').textContent === 'Part 2'"
        )
        wait_in_page(page, f"{AUDIO}.currentTime > 0.5")
        prepared = page.evaluate(
            f"window.__fetches.filter(f => f.url.includes('/stream/{second.pk}/') && f.range === 'bytes=0-65535')"
        )
        assert prepared, page.evaluate("window.__fetches")
        assert prepared[0]["at"] < page.evaluate("window.__ends[0]")  # asked for before the first track ended
        # By the time it plays, the prepared track's MP3 is made: it streams from the cache.
        wait_in_page(page, "document.getElementById('player-source').textContent.includes('from the cache')")
    finally:
        connections.close_all()
