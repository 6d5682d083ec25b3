"""/healthz (config/health.py): what it checks, and what it names when something fails."""

import subprocess

import pytest

pytestmark = pytest.mark.django_db


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
    # The version ffmpeg itself reports ("ffmpeg version 5.1.6-0+deb12u1 Copyright ...").
    version = subprocess.run(
        [settings.AUDIO_CACHE_FFMPEG, "-version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()[2]
    assert checks["ffmpeg"] == {"ok": True, "version": version, "libmp3lame": True}
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


def test_redis_away_is_degraded_not_down(client, settings, tmp_path):
    """A load balancer keeps the app in service without Redis (it answered 503, and Compose's
    nginx, which waits for a healthy web service, kept the whole site down); monitoring asks
    with ?strict=1 and hears about it."""
    settings.AUDIO_CACHE_DIR = tmp_path / "cache"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["failing"] == ["redis"]
    assert body["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}
    strict = client.get("/healthz?strict=1")
    assert strict.status_code == 503 and strict.json()["status"] == "degraded"
    settings.REDIS_URL = ""
    assert client.get("/healthz?strict=1").status_code == 200
