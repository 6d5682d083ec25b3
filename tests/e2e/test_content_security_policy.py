"""The Content Security Policy (config/settings.py, django-csp) in a real browser: every page of the
app and the admin pages we add to or change, signed out and signed in, used as people use them
(search, save with the progress window, play), reports no violation in the console.

The ``browser`` fixture fails any browser test on a reported violation; this test makes sure every
page is visited, and first proves that a violation is seen at all.
"""

import pytest
from django.db import connections

from mixtapes.models import Mixtape
from tests.e2e.conftest import wait_in_page
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AUDIO = "document.getElementById('player-audio')"


def test_no_page_breaks_the_policy(browser, client, library, static_root, uvicorn_server):
    staff = UserFactory(username="curator", is_staff=True, is_superuser=True)
    mixtape = MixtapeFactory(owner=staff, title="Policy Tape", slug="policy-tape", is_public=True)
    for position, name in enumerate(("lossless.flac", "wave.wav"), start=1):
        MixtapeTrackFactory(mixtape=mixtape, track=library[name], position=position)
    base = uvicorn_server(AUDIO_CACHE_MAX_WORKERS="1", STATIC_ROOT=str(static_root), LOGIN_FAILURE_LIMIT="1")
    try:
        _visit_everything(browser, client, base, staff, mixtape)
    finally:
        connections.close_all()  # Playwright's loop gave the ORM calls a connection of their own


def _visit_everything(browser, client, base, staff, mixtape):
    visitor = browser.new_context()
    page = visitor.new_page()
    page.set_default_timeout(20_000)

    # The policy is there, strict, and the detector sees a violation when one happens.
    response = page.goto(base + "/accounts/login/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe" not in policy
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<div style=\"color: red\">x</div>')")
    wait_in_page(page, "true")  # one turn of the page's loop for the console message
    page.wait_for_timeout(200)
    assert any("inline style" in v for v in browser.csp_violations), browser.csp_violations
    browser.csp_violations.clear()

    # Signed out: the share page, playing; the locked-out page (LOGIN_FAILURE_LIMIT=1 here).
    page.goto(f"{base}/share/{mixtape.slug}/")
    page.get_by_role("button", name=f"Play {mixtape.entries.first().track.display_title}").click()
    wait_in_page(page, f"{AUDIO}.currentTime > 0.3")
    page.goto(base + "/accounts/login/")
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Too many failed logins").first.wait_for()
    page.goto(base + "/admin/login/")

    # Signed in as staff (a session made here, read by the server from the same database).
    client.force_login(staff)
    member = browser.new_context()
    member.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}])
    page = member.new_page()
    page.set_default_timeout(20_000)
    for path in ("/", "/mixtapes/", "/editor/new/", f"/editor/{mixtape.slug}/delete/"):
        page.goto(base + path)
    page.goto(f"{base}/editor/{mixtape.slug}/")
    page.get_by_label("Search the library").fill("lossy")
    page.locator("#search-results .result-item").first.wait_for()
    page.get_by_role("button", name="Save").click()  # queues the batch: the progress window opens
    page.wait_for_selector("#cache-progress-status[data-state=completed]", timeout=60_000)
    admin_pages = [
        "/admin/",
        "/admin/audiocache/cachedrendition/dashboard/",
        "/admin/audiocache/cachedrendition/",
        "/admin/audiocache/cachetask/",
        "/admin/audiocache/cachebatch/",
        f"/admin/mixtapes/mixtape/{Mixtape.objects.get(slug=mixtape.slug).pk}/change/",
        "/admin/mixtapes/track/",
        f"/admin/auth/user/{staff.pk}/change/",
        "/admin/axes/accessattempt/",
    ]
    for path in admin_pages:
        assert page.goto(base + path).status == 200, path
    page.wait_for_timeout(300)  # late console messages of the last page
    assert browser.csp_violations == []
