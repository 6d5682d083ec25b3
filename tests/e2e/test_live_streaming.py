"""Real clients against a live uvicorn (and nginx in front of it): curl, ffprobe, raw ranges."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from audiocache.seed_api import AudioCache
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.e2e.conftest import curl, ffprobe, headers_of
from tests.factories import MixtapeFactory, MixtapeTrackFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shared_track(make_audio):
    """A lossless track with a medium rendition, on a public mixtape (so anonymous clients may play it)."""
    make_audio("Ünïcode Artist/01 spaced & odd #1.flac", duration=3, tags={"title": "Live"})
    scan_library()
    track = Track.objects.get()
    rendition = AudioCache().transcode_file(track, "medium")
    MixtapeTrackFactory(track=track, mixtape=MixtapeFactory(is_public=True))
    return track, rendition


@pytest.mark.parametrize("plain", [False, True], ids=["zero-copy", "plain-uvicorn"])
def test_curl_and_ffprobe_read_a_rendition_from_uvicorn(uvicorn_server, shared_track, tmp_path, plain):
    track, rendition = shared_track
    base = uvicorn_server(plain=plain)
    address = f"{base}/stream/{track.pk}/?quality=medium"
    data = rendition.read_bytes()

    out = tmp_path / "part.bin"
    result = curl("-r", "100-4195", "-o", str(out), "-D", str(tmp_path / "h.txt"), address)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == data[100:4196]
    head = headers_of((tmp_path / "h.txt").read_bytes())
    assert head["content-range"] == f"bytes 100-4195/{len(data)}"
    assert head["x-audio-cache"] == "hit"

    whole = curl("-o", str(tmp_path / "whole.mp3"), address)
    assert whole.returncode == 0 and (tmp_path / "whole.mp3").read_bytes() == data

    info = ffprobe(address)
    assert info["streams"][0]["codec_name"] == "mp3"
    assert float(info["format"]["duration"]) == pytest.approx(3.0, abs=0.1)
    # ffprobe seeks with ranges; decoding the whole stream must also work.
    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-ss", "1.5", "-i", address, "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert decode.returncode == 0, decode.stderr


@pytest.mark.parametrize("plain", [False, True], ids=["zero-copy", "plain-uvicorn"])
def test_clients_that_hang_up_mid_body_release_their_files(uvicorn_server, make_audio, tmp_path, plain):
    # About 35 MB: far more than the loopback socket buffers can hold for a slow client.
    make_audio("big.flac", kind="flac24", sample_rate=96000, duration=60, noise=True)
    scan_library()
    track = Track.objects.get()
    MixtapeTrackFactory(track=track, mixtape=MixtapeFactory(is_public=True))
    base = uvicorn_server(plain=plain)
    address = f"{base}/stream/{track.pk}/?quality=original"
    pid = uvicorn_server.pids[base]

    def open_audio_files() -> int:
        fds = Path(f"/proc/{pid}/fd")
        return sum(1 for fd in fds.iterdir() if os.path.realpath(fd).endswith("big.flac"))

    hung_up = [subprocess.Popen(["curl", "-s", "--limit-rate", "20k", "-o", os.devnull, address]) for _ in range(5)]
    deadline = time.monotonic() + 30  # generous: CI machines may be busy
    while open_audio_files() < 5:
        assert time.monotonic() < deadline, "the server never opened the files"
        time.sleep(0.1)
    for client in hung_up:
        client.kill()  # gone mid-body
        client.wait()
    deadline = time.monotonic() + 30  # generous: CI machines may be busy
    while open_audio_files():
        assert time.monotonic() < deadline, "the server kept reading for clients that left"
        time.sleep(0.1)
    # The next listener gets every byte (by sendfile, with the zero-copy protocol), and a seek too.
    result = curl("-o", str(tmp_path / "whole.flac"), "-w", "%{http_code}", address)
    assert result.stdout == b"200"
    original = track.absolute_path().read_bytes()
    assert (tmp_path / "whole.flac").read_bytes() == original
    result = curl("-r", "1000001-", "-o", str(tmp_path / "rest.flac"), "-w", "%{http_code}", address)
    assert result.stdout == b"206" and (tmp_path / "rest.flac").read_bytes() == original[1000001:]


def test_nginx_sends_the_bytes_with_x_accel_redirect(uvicorn_server, nginx, shared_track, tmp_path, settings):
    track, rendition = shared_track
    opus, aac = (AudioCache().transcode_file(track, variant) for variant in ("opus:medium", "aac:medium"))
    app = uvicorn_server(AUDIO_CACHE_SENDFILE="nginx")
    front = nginx(app)
    data = rendition.read_bytes()
    original = track.absolute_path().read_bytes()

    # The app alone answers with an empty body and the internal location.
    direct = curl("-D", "-", "-o", os.devnull, f"{app}/stream/{track.pk}/?quality=medium")
    assert "x-accel-redirect: /_protected/cache/" in direct.stdout.decode().lower()

    for quality, expected, cache_state, content_type in [
        ("medium", data, "hit", "audio/mpeg"),
        # nginx keeps the app's Content-Type (its location's default_type is only a fallback).
        ("medium&format=opus", opus.read_bytes(), "hit", "audio/ogg; codecs=opus"),
        ("medium&format=aac", aac.read_bytes(), "hit", "audio/mp4"),
        ("original", original, "bypass", "audio/flac"),
    ]:
        address = f"{front}/stream/{track.pk}/?quality={quality}"
        result = curl("-D", str(tmp_path / "h.txt"), "-o", str(tmp_path / "b.bin"), address)
        assert result.returncode == 0, result.stderr
        head = headers_of((tmp_path / "h.txt").read_bytes())
        assert (tmp_path / "b.bin").read_bytes() == expected, quality
        assert head["x-audio-cache"] == cache_state
        assert head["content-type"] == content_type
        assert "x-accel-redirect" not in head
        ranged = curl("-r", "10-109", "-D", str(tmp_path / "h2.txt"), "-o", str(tmp_path / "r.bin"), address)
        assert ranged.returncode == 0
        assert (tmp_path / "r.bin").read_bytes() == expected[10:110]
        assert headers_of((tmp_path / "h2.txt").read_bytes())["content-range"] == f"bytes 10-109/{len(expected)}"

    # The internal locations cannot be reached from outside.
    name = rendition.name
    assert curl("-o", os.devnull, "-w", "%{http_code}", f"{front}/_protected/cache/{name}").stdout == b"404"
    # Access rules still apply: a private track is not found for an anonymous client.
    Track.objects.filter(pk=track.pk).update()
    track.mixtapes.update(is_public=False)
    assert curl("-o", os.devnull, "-w", "%{http_code}", f"{front}/stream/{track.pk}/").stdout == b"404"


def test_the_short_stream_path_applies_the_same_rules(uvicorn_server, make_audio, client, tmp_path):
    """Under uvicorn, /stream/ runs Django's own middleware chain in one thread hop: every answer
    is the one Django's usual stack gives (here the test client's, with CSRF checks on, as a
    browser meets them): sessions, access, CSRF, allowed hosts and errors."""
    from django.test import Client

    from tests.factories import UserFactory

    make_audio("private.flac", duration=1)
    scan_library()
    track = Track.objects.get()
    base = uvicorn_server()
    path = f"/stream/{track.pk}/?quality=original"
    address = base + path
    django = Client(enforce_csrf_checks=True)

    def status(*args) -> bytes:
        return curl("-o", os.devnull, "-w", "%{http_code}", *args).stdout

    assert status(address) == b"404" == b"%d" % django.get(path).status_code  # anonymous, not public
    client.force_login(UserFactory())
    django.cookies = client.cookies
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    assert status("-b", cookie, address) == b"200" == b"%d" % django.get(path).status_code
    assert status("-b", "sessionid=forged", address) == b"404"
    ultra = f"/stream/{track.pk}/?quality=ultra"
    assert status("-b", cookie, base + ultra) == b"400" == b"%d" % django.get(ultra).status_code
    # CSRF runs before the view's method check, on this URL as on every other.
    assert status("-b", cookie, "-X", "POST", address) == b"403" == b"%d" % django.post(path).status_code
    assert status("-b", cookie, f"{base}/stream/999999/") == b"404"
    assert status("-b", cookie, f"{base}/stream/abc/") == b"404"
    assert status("-b", cookie, "-H", "Host: evil.example", address) == b"400"  # ALLOWED_HOSTS
    head = curl("-I", "-b", cookie, address).stdout.decode().lower()
    assert "200" in head.splitlines()[0]
    assert "x-content-type-options: nosniff" in head
    assert "vary: cookie" in head and "cache-control: private" in head
    ranged = curl("-b", cookie, "-r", "0-9", address).stdout
    assert ranged == track.absolute_path().read_bytes()[:10]


def test_the_short_stream_path_reuses_one_database_connection(uvicorn_server, shared_track, settings):
    """Stream requests share one connection in uvicorn (not one per request, none left behind)."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("counts the server's open SQLite database files")
    track, rendition = shared_track
    database = os.path.realpath(connection.settings_dict["NAME"])
    base = uvicorn_server()
    pid = uvicorn_server.pids[base]
    address = f"{base}/stream/{track.pk}/?quality=medium"

    def open_database_files() -> int:
        return sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir() if os.path.realpath(fd) == database)

    data = rendition.read_bytes()
    clients = [subprocess.Popen(["curl", "-s", "-r", "0-999", "-o", os.devnull, address]) for _ in range(10)]
    for client in clients:
        assert client.wait(timeout=60) == 0
    for n in range(10):
        assert curl("-r", f"{n}-{n + 99}", address).stdout == data[n : n + 100]
    assert open_database_files() == 1
