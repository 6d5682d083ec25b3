"""Fixtures and helpers shared by the whole suite.

pytest finds the fixtures without an import; plain helpers are imported from here
(``from tests.conftest import body, url``), never from another test module. What only one
folder's tests share lives in that folder's conftest.py (``tests/e2e/conftest.py``, ...).
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction

from audiocache.delivery.zerocopy import UVICORN_OPTIONS
from mixtapes.demo import FORMATS, AudioSpec, render_audio, render_cover

REPO = Path(__file__).resolve().parent.parent

# --- audio files and tracks ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def audio_templates(tmp_path_factory):
    """Where rendered audio is kept for the session: each distinct spec runs ffmpeg once."""
    return tmp_path_factory.mktemp("audio-templates")


@pytest.fixture
def music_root(tmp_path, settings):
    """An empty MUSIC_ROOT (and cache folder) for one test."""
    root = tmp_path / "music"
    root.mkdir()
    settings.MUSIC_ROOT = root
    settings.AUDIO_CACHE_DIR = tmp_path / "cache"
    settings.ARTWORK_DIR = tmp_path / "artwork"
    return root


@pytest.fixture
def make_audio(music_root, audio_templates):
    """``make_audio("Artist/01 x.flac", kind="flac", duration=1, tags={...}, cover=True)``: a real file.

    Files are rendered with ffmpeg's generators (never committed) and copied from a session
    cache, so a test can make dozens cheaply. Returns the absolute path.
    """

    def make(relative: str, *, cover: bool = False, **spec_fields) -> Path:
        key = hashlib.sha256(json.dumps([spec_fields, cover], sort_keys=True).encode()).hexdigest()[:16]
        spec = AudioSpec(**spec_fields)
        # The template keeps its format's own extension (ffmpeg picks the muxer by it); the copy may lie.
        template = audio_templates / f"{key}{FORMATS[spec.kind][0]}"
        if not template.exists():
            if cover:
                picture = audio_templates / "cover.jpg"
                if not picture.exists():
                    render_cover(picture, size=64)
                spec.cover = picture
            render_audio(template, spec)
        target = music_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)
        return target

    return make


def scanned(make_audio, name, **spec):
    """The Track row of a real file made with ``make_audio(name, **spec)`` and scanned."""
    from mixtapes.library import scan_library
    from mixtapes.models import Track

    make_audio(name, **spec)
    scan_library()
    return Track.objects.get(path=name)


@pytest.fixture
def file_track(music_root):
    """``file_track(**fields)``: a Track row whose file exists (a few bytes, not audio).

    Enough for the queue, which looks at a file's size and mtime but never decodes it.
    """
    from mixtapes.models import Track
    from tests.factories import TrackFactory

    def make(**fields) -> Track:
        track = TrackFactory(**fields)
        path = music_root / track.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 100)
        st = path.stat()
        Track.objects.filter(pk=track.pk).update(file_size=st.st_size, file_mtime_ns=st.st_mtime_ns)
        track.refresh_from_db()
        return track

    return make


# --- the cache folder ------------------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    """``small_tmpfs("64k")``: a tmpfs of that size, mounted for the test (a disk that fills up;
    needs root: skipped otherwise), unmounted after it."""
    mounted = []

    def mount(size: str, name: str = "small-fs"):
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip("cannot mount a small tmpfs here (needs root): " + done.stderr.decode().strip())
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def cache_dir(settings, music_root):
    """The (empty) cache folder, created."""
    settings.AUDIO_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return settings.AUDIO_CACHE_DIR


@pytest.fixture
def music_snapshot(music_root):
    """A file in MUSIC_ROOT and a way to check nothing there changed."""
    (music_root / "Artist").mkdir()
    (music_root / "Artist" / "song.flac").write_bytes(b"fLaC" + b"\0" * 1000)

    def state():
        return {
            str(p.relative_to(music_root)): (
                p.stat().st_size,
                p.stat().st_mtime_ns,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
            for p in music_root.rglob("*")
            if p.is_file()
        }

    before = state()
    yield lambda: state() == before


def rendition(cache_dir, *, size=1000, days_since_play=None, days_old=0, quality="medium", **fields):
    """A fresh rendition row with its file (``size`` bytes) in ``cache_dir``, made ``days_old``
    days ago and last played ``days_since_play`` days ago (never, by default)."""
    from django.utils import timezone

    from audiocache.models import CachedRendition
    from audiocache.transcode.ffmpeg import ENCODER_PROFILE
    from tests.factories import CachedRenditionFactory

    r = CachedRenditionFactory(size=size, quality=quality, encoder_profile=ENCODER_PROFILE, **fields)
    (cache_dir / r.file_name).write_bytes(b"\xff" * size)
    now = timezone.now()
    CachedRendition.objects.filter(pk=r.pk).update(
        created_at=now - timedelta(days=days_old),
        last_accessed_at=None if days_since_play is None else now - timedelta(days=days_since_play),
    )
    r.refresh_from_db()
    return r


def file_names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def age(path, seconds):
    """Set ``path``'s times ``seconds`` into the past."""
    old = time.time() - seconds
    os.utime(path, (old, old))


# --- the stream view ---------------------------------------------------------------------------------


def body(response) -> bytes:
    """All of a (streaming) response's body."""
    with warnings.catch_warnings():
        # The test client is synchronous; under uvicorn the body is consumed asynchronously.
        warnings.simplefilter("ignore")
        return b"".join(response)


def url(track, quality=None):
    return f"/stream/{track.pk}/" + (f"?quality={quality}" if quality else "")


@pytest.fixture
def library(make_audio):
    """Five scanned tracks, one of each kind, by file name: lossless.flac, lossy.mp3, other.m4a
    (ALAC), wave.wav and aiff.aiff."""
    from mixtapes.library import scan_library
    from mixtapes.models import Track

    make_audio("Artist/lossless.flac", duration=2, tags={"title": "Lossless"})
    make_audio("Artist/lossy.mp3", kind="mp3", duration=2)
    make_audio("Artist/other.m4a", kind="alac", duration=1)
    make_audio("Artist/wave.wav", kind="wav", duration=1)
    make_audio("Artist/aiff.aiff", kind="aiff", duration=1)
    scan_library()
    return {t.path.split("/")[-1]: t for t in Track.objects.all()}


@pytest.fixture
def user_client(client):
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    return client


@pytest.fixture
def hit(user_client, library):
    """(stream URL, rendition bytes) of lossless.flac's medium rendition, made."""
    from audiocache.seed_api import AudioCache

    track = library["lossless.flac"]
    path = AudioCache().transcode_file(track, "medium")
    return url(track, "medium"), path.read_bytes()


def same_but_the_xing_frame(streamed: bytes, final: bytes) -> bool:
    """ffmpeg fills in the Xing frame when it ends, and the full tags replace ffmpeg's in the
    same room (transcode/tags.py); every other byte is the finished file's, at the same offset."""
    from audiocache.transcode import mp3

    layout = mp3.read_layout(final)
    return (
        len(streamed) == len(final)
        and mp3.id3v2_length(streamed) == mp3.id3v2_length(final)
        and streamed[layout.audio_offset :] == final[layout.audio_offset :]
    )


# --- the database ---------------------------------------------------------------------------------


def violates(callable_, *args, **kwargs) -> bool:
    """Whether the database refuses what ``callable_(*args, **kwargs)`` writes."""
    try:
        with transaction.atomic():
            callable_(*args, **kwargs)
    except IntegrityError:
        return True
    return False


# --- real processes (tests/e2e, tests/stress, and the progressive tests) ------------------------------

# The app served as `make run` and the Docker image serve it.
UVICORN = [sys.executable, "-m", "uvicorn", "config.asgi:application", *UVICORN_OPTIONS]
# ffmpeg reading its input at $SLOW_FFMPEG_RATE x real time: a transcode lasts long enough to
# act while it is being written.
SLOW_FFMPEG = str(REPO / "tests" / "e2e" / "slow-ffmpeg")


def dying_ffmpeg(folder: Path, seconds: float) -> str:
    """An ffmpeg (slowed as SLOW_FFMPEG) killed ``seconds`` into every transcode, as a crash would."""
    wrapper = folder / "dying-ffmpeg"
    wrapper.write_text(
        f'#!/bin/sh\n[ "$1" = "-version" ] && exec ffmpeg "$@"\nexec timeout -s KILL {seconds:g} {SLOW_FFMPEG} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def database_url() -> str:
    """A DATABASE_URL for the database this test run uses (the test database, not the real one)."""
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    name = s["NAME"]
    if "memory" in str(name):
        pytest.skip("needs a database file that other processes can open")
    return f"sqlite:///{name}"


@pytest.fixture
def manage_env(settings, tmp_path, music_root):
    """Environment for a ``manage.py`` subprocess sharing this test's database, library and cache."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AUDIO_CACHE_", "LIBRARY_"))}
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url(),
        DATA_ROOT=str(tmp_path / "data"),
        MUSIC_ROOT=str(settings.MUSIC_ROOT),
        AUDIO_CACHE_DIR=str(settings.AUDIO_CACHE_DIR),
        AUDIO_CACHE_LEASE_SECONDS=str(settings.AUDIO_CACHE_LEASE_SECONDS),
        AUDIO_CACHE_RETRY_DELAY="0",
        LIBRARY_WATCH="false",  # tests that watch the library turn it on
        SECRET_KEY=settings.SECRET_KEY,  # sessions made by the test client must verify in the server
        PYTHONUNBUFFERED="1",
    )
    return environment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout} s") from None
            time.sleep(0.2)


def wait_until(condition, timeout=60, interval=0.1, message="condition"):
    """Poll ``condition`` until it is true; fail naming ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")
