"""Fixtures and helpers for the end-to-end tests: real ``manage.py``, uvicorn and nginx processes
against the test database, curl, ffprobe, a browser, and Server-Sent Events read from a live server.

What tests/stress and the in-process tests share with these (``manage_env``, ``wait_until``,
``SLOW_FFMPEG``...) is in tests/conftest.py.
"""

import json
import os
import shutil
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, UVICORN, free_port, wait_for_http


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
            log = stop(process)
            if "Traceback" in log or " 500 " in log:
                print(f"--- the server's log (it failed a request) ---\n{log[-30000:]}")  # shown when a test fails


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


# --- clients ------------------------------------------------------------------------------------------


def curl(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "--silent", "--show-error", *args], capture_output=True, timeout=60, check=False)


def ffprobe(address: str) -> dict:
    """What ffprobe reads of the format and streams at ``address`` (it must read it)."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", address],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout)


def headers_of(output: bytes) -> dict[str, str]:
    lines = output.decode("latin-1").split("\r\n")
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)}


# --- a browser ----------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def artifacts(request):
    folder = Path(os.environ.get("BROWSER_ARTIFACTS", REPO / "tests" / "e2e" / "screenshots")) / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


class PolicyWatchedBrowser:
    """Playwright's browser, whose every context reports Content Security Policy violations:
    the browser test of any page then fails on one (the app sends a strict policy, config/settings.py)."""

    def __init__(self, browser):
        self._browser = browser
        self.csp_violations: list[str] = []

    def new_context(self, **options):
        context = self._browser.new_context(**options)
        context.on("console", self._console)
        return context

    def _console(self, message):
        if "Content Security Policy" in message.text:
            self.csp_violations.append(f"{message.page.url if message.page else '?'}: {message.text}")

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # plain synchronous code all the same (Django's documented escape hatch for this case).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (make test installs it)")
    with sync_api.sync_playwright() as playwright:
        instance = PolicyWatchedBrowser(playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS))
        yield instance
        instance.close()
    assert instance.csp_violations == [], "the page broke its Content Security Policy"


def wait_in_page(page, expression: str, *, timeout: float = 30.0, interval: float = 0.05):
    """Wait until a JavaScript expression is true in ``page``.

    Playwright's ``wait_for_function`` builds a function from the text inside the page, which a
    policy without 'unsafe-eval' refuses; ``evaluate`` runs through the debugging protocol and is
    not subject to it."""
    deadline = time.monotonic() + timeout
    while True:
        if page.evaluate(expression):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(interval * 1000)


# --- Redis and Server-Sent Events ---------------------------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        return True
    except Exception:
        return False


def read_events(url: str, cookie: str, headers=(), until_final=True, timeout=90) -> list[tuple[str | None, dict]]:
    """(id, payload) of the SSE events of ``url`` until the batch's final event."""
    command = ["curl", "-sN", "--max-time", str(timeout), "-b", cookie]
    for header in headers:
        command += ["-H", header]
    process = subprocess.Popen([*command, url], stdout=subprocess.PIPE, text=True)
    events, event_id, event_type, data = [], None, None, None
    try:
        for line in process.stdout:
            line = line.rstrip("\n")
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                event_type = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "":
                if event_type != "progress" or data is None:  # stream-open, keep-alive...
                    event_id, event_type, data = None, None, None
                    continue
                payload = json.loads(data)
                events.append((event_id, payload))
                event_id, event_type, data = None, None, None
                if until_final and payload.get("step") in ("done", "snapshot") and payload["status"] in (
                    "completed", "failed"
                ):  # fmt: skip
                    break
    finally:
        process.kill()
        process.wait()
    return events
