"""Accessibility: axe-core (vendored under tests/e2e/vendor/, never served by the app) checks the
pages people use, in the light and the dark colour mode. No violation of impact "serious" or
"critical" is allowed.

axe is loaded through the browser's debugging protocol (``evaluate``), which the page's Content
Security Policy does not govern, so the policy stays the one users get.
"""

import json
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from audiocache.queue import batches
from mixtapes.library import scan_library
from mixtapes.models import ShareLink, Track
from tests.e2e.conftest import wait_in_page
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
}"""


def violations(page) -> list[dict]:
    page.evaluate(AXE)
    return page.evaluate(RUN_AXE)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations(browser, client, make_audio, static_root, uvicorn_server, scheme):
    for n in (1, 2):
        make_audio(f"Band/Album/0{n}.flac", duration=2, cover=True, tags={"title": f"Song {n}", "artist": "Band"})
    scan_library()
    owner = UserFactory(username="owner")
    mixtape = MixtapeFactory(owner=owner, title="Accessible", liner_notes="Notes", is_public=True)
    for position, track in enumerate(Track.objects.order_by("path"), start=1):
        MixtapeTrackFactory(mixtape=mixtape, track=track, position=position)
    live = ShareLink.objects.create(mixtape=mixtape, token="L" * 22, label="Sam", allow_download=True)
    ShareLink.objects.create(mixtape=mixtape, token="R" * 22, label="Old", revoked_at=timezone.now())
    batch = batches.create_batch(Track.objects.all(), ["low"], label="a11y", user=owner, mixtape=mixtape)
    base = uvicorn_server(AUDIO_CACHE_MAX_WORKERS="1", STATIC_ROOT=str(static_root))
    client.force_login(owner)
    found = {}
    try:
        visitor = browser.new_context(color_scheme=scheme)
        page = visitor.new_page()
        # A live link's page (with its download form) and a revoked one's "no longer shared".
        pages = ("/accounts/login/", f"/share/{mixtape.slug}/", f"/listen/{live.token}/", f"/listen/{'R' * 22}/")
        for path in (*pages, "/no-such-page/"):
            page.goto(base + path)
            found[path] = violations(page)

        member = browser.new_context(color_scheme=scheme)
        member.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}])
        page = member.new_page()
        for path in ("/", "/mixtapes/", "/editor/new/", "/account/", "/account/apps/"):
            page.goto(base + path)
            found[path] = violations(page)
        page.goto(f"{base}/editor/{mixtape.slug}/?batch={batch.pk}")  # its links, the progress window open
        page.wait_for_selector("#cache-progress.show")
        wait_in_page(page, "document.getElementById('cache-progress-status').dataset.state === 'completed'")
        page.wait_for_timeout(400)  # the window's fade-in
        found["editor with the progress window"] = violations(page)
    finally:
        connections.close_all()
    failing = {where: v for where, v in found.items() if v}
    assert failing == {}, json.dumps(failing, indent=1)
