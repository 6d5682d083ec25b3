"""The pages that exist so far: home, login, health, admin."""

import pytest
from django.urls import reverse

from tests.factories import MixtapeFactory, TrackFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_home_for_anonymous_users_shows_no_library(client):
    TrackFactory(title="Private Song")
    response = client.get("/")
    assert response.status_code == 200
    assert b"Log in" in response.content
    assert b"Private Song" not in response.content


def test_home_for_a_user_shows_library_and_own_mixtapes(client):
    user = UserFactory()
    TrackFactory(title="Known Song", duration=120)
    TrackFactory(title="Gone Song", missing_since="2026-01-01T00:00Z")
    MixtapeFactory(owner=user, title="Mine")
    MixtapeFactory(title="Someone else's")
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "Known Song" in page and "Gone Song" not in page
    assert "Mine" in page and "Someone else" not in page


def test_login_page_and_csrf(client):
    user = UserFactory(username="ann")
    assert client.get(reverse("login")).status_code == 200
    strict = client.__class__(enforce_csrf_checks=True)
    response = strict.post(reverse("login"), {"username": "ann", "password": "correct horse battery staple"})
    assert response.status_code == 403
    response = client.post(reverse("login"), {"username": "ann", "password": "correct horse battery staple"})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_healthz(client, settings, tmp_path, file_track):
    settings.AUDIO_CACHE_DIR = tmp_path / "cache"
    from tests.factories import CacheTaskFactory

    CacheTaskFactory(track=file_track(), status="pending")
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    checks = body["checks"]
    assert checks["database"]["ok"] and checks["cache_dir"]["ok"] and checks["cache_dir"]["free_bytes"] > 0
    assert checks["ffmpeg"] == {"ok": True, "version": checks["ffmpeg"]["version"], "libmp3lame": True}
    assert checks["queue"]["pending"] == 1 and checks["queue"]["oldest_pending_seconds"] >= 0
    assert "redis" not in checks  # not configured
    assert response["Cache-Control"].startswith("max-age=0")
    assert client.post("/healthz").status_code == 405


def test_healthz_names_what_fails(client, settings, tmp_path, monkeypatch):
    from audiocache import selectors

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings.AUDIO_CACHE_DIR = blocker / "cache"  # cannot be created
    settings.AUDIO_CACHE_FFMPEG = "/nonexistent/ffmpeg"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    monkeypatch.setattr(selectors, "_ffmpeg_checked", {})
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["failing"] == ["cache_dir", "ffmpeg", "redis"]
    assert "not writable" in body["checks"]["cache_dir"]["error"]
    assert "was not found" in body["checks"]["ffmpeg"]["error"]
    assert "redis://" not in response.content.decode()  # no URLs or secrets in the answer
    monkeypatch.setattr(selectors, "_ffmpeg_checked", {})


def test_admin_requires_staff(client):
    assert client.get("/admin/mixtapes/track/").status_code == 302
    client.force_login(UserFactory())
    assert client.get("/admin/mixtapes/track/").status_code == 302


@pytest.mark.parametrize(
    "url",
    ["/admin/mixtapes/track/", "/admin/mixtapes/mixtape/", "/admin/audiocache/cachedrendition/",
     "/admin/audiocache/cachetask/", "/admin/audiocache/cachebatch/"],
)  # fmt: skip
def test_admin_changelists(admin_client, url):
    from tests.factories import CacheBatchItemFactory, CachedRenditionFactory, MixtapeTrackFactory

    MixtapeTrackFactory(track__title="Listed Song")
    CachedRenditionFactory()
    item = CacheBatchItemFactory()
    assert admin_client.get(f"/admin/audiocache/cachebatch/{item.batch.pk}/change/").status_code == 200
    response = admin_client.get(url)
    assert response.status_code == 200
    if "track" in url:
        assert b"Listed Song" in response.content
