"""Helpers for tests that run real ``manage.py`` processes against the test database."""

import os
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]

from audiocache.delivery.zerocopy import UVICORN_OPTIONS  # noqa: E402

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
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AUDIO_CACHE_"))}
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url(),
        DATA_ROOT=str(tmp_path / "data"),
        MUSIC_ROOT=str(settings.MUSIC_ROOT),
        AUDIO_CACHE_DIR=str(settings.AUDIO_CACHE_DIR),
        AUDIO_CACHE_LEASE_SECONDS=str(settings.AUDIO_CACHE_LEASE_SECONDS),
        AUDIO_CACHE_RETRY_DELAY="0",
        SECRET_KEY=settings.SECRET_KEY,  # sessions made by the test client must verify in the server
        PYTHONUNBUFFERED="1",
    )
    return environment


@pytest.fixture
def spawn(manage_env):
    """``spawn("cacheworker", "--burst", **env)``: start a manage.py process; all are killed at the end."""
    processes = []

    def start(*args, **extra_env):
        process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env={**manage_env, **extra_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


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


@pytest.fixture
def uvicorn_server(manage_env):
    """``uvicorn_server(**env)`` -> base URL of a uvicorn process serving the app on the test database
    (``plain=True``: uvicorn's defaults, without zero-copy sends); ``uvicorn_server.stop(base)``
    stops one and returns its log."""
    servers = []

    def start(*, plain: bool = False, **extra_env) -> str:
        port = free_port()
        command = UVICORN[:4] if plain else UVICORN
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env={**manage_env, "AUDIO_CACHE_MAX_WORKERS": "0", **extra_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        servers.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/healthz")
        start.pids[base] = process.pid
        return base

    def stop(process) -> str:
        """Stop the server; returns everything it logged."""
        process.terminate()
        try:
            return process.communicate(timeout=20)[0] or ""
        except subprocess.TimeoutExpired:
            process.kill()
            return process.communicate()[0] or ""

    start.pids = {}
    start.stop = lambda base: stop(next(p for p in servers if p.pid == start.pids[base]))
    yield start
    for process in servers:
        if process.returncode is None:
            stop(process)


def wait_until(condition, timeout=60, interval=0.1, message="condition"):
    """Poll ``condition`` until it is true; fail naming ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


@pytest.fixture
def static_root(tmp_path, manage_env):
    """collectstatic with the production storage (hashed names, compressed copies)."""
    root = tmp_path / "static"
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=REPO, env={**manage_env, "STATIC_ROOT": str(root)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root


NGINX_MAIN = string.Template("""
daemon off;
pid $work/nginx.pid;
error_log $work/error.log warn;
$user
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    access_log $work/access.log;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    include $work/mixtapes.conf;
}
""")


@pytest.fixture
def nginx(settings):
    """``nginx(app_base_url, ...)`` -> base URL of a real nginx running deploy/nginx.conf in front
    of the app, balancing over every web process given."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        pytest.skip("nginx is not installed (make test installs nginx-light)")
    processes = []
    work = Path(tempfile.mkdtemp(prefix="nginx-test-"))

    def start(*app_bases: str) -> str:
        port = free_port()
        servers = ";\n    server ".join(base.removeprefix("http://") for base in app_bases)  # one `server` line each
        server_block = string.Template((REPO / "deploy" / "nginx.conf").read_text()).safe_substitute(
            LISTEN=f"127.0.0.1:{port}",
            APP_UPSTREAM=servers,
            STATIC_ROOT=str(work / "static"),
            AUDIO_CACHE_DIR=str(settings.AUDIO_CACHE_DIR),
            MUSIC_ROOT=str(settings.MUSIC_ROOT),
        )
        (work / "mixtapes.conf").write_text(server_block)
        # As root, nginx's workers would run as "nobody", who cannot enter pytest's private tmp folders.
        user = "user root;" if os.geteuid() == 0 else ""
        (work / "nginx.conf").write_text(NGINX_MAIN.substitute(work=work, user=user))
        process = subprocess.Popen(
            [binary, "-c", str(work / "nginx.conf"), "-e", str(work / "error.log")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/healthz", timeout=15)
        return base

    yield start
    for process in processes:
        process.terminate()
        process.communicate(timeout=20)
    shutil.rmtree(work, ignore_errors=True)
