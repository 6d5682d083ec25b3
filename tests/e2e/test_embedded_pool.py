"""Single-node topology: uvicorn serves the app and runs the worker pool in the same process."""

import signal
import subprocess
import sys
import time

import pytest

from audiocache.models import CachedRendition, CacheTask
from mixtapes.library import scan_library
from tests.conftest import REPO, UVICORN, free_port, wait_for_http

pytestmark = pytest.mark.django_db(transaction=True)


def test_uvicorn_runs_the_pool_and_stops_it_cleanly(make_audio, manage_env):
    for n in range(3):
        make_audio(f"{n}.flac", duration=1)
    scan_library()
    port = free_port()
    server = subprocess.Popen(
        [*UVICORN, "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env={**manage_env, "AUDIO_CACHE_MAX_WORKERS": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")

        # Queue work from another process (as a mixtape save or cron would); the server's pool does it.
        queued = subprocess.run(
            [sys.executable, "manage.py", "precache", "--all", "--quality", "low"],
            cwd=REPO, env=manage_env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert queued.returncode == 0, queued.stderr
        deadline = time.monotonic() + 60
        while CacheTask.objects.filter(status=CacheTask.Status.DONE).count() < 3:
            assert time.monotonic() < deadline, "the embedded pool did not transcode"
            time.sleep(0.2)
        assert CachedRendition.objects.count() == 3
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so its exit status tells how it ended.
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "worker pool" in output and "2 workers" in output
    assert "Traceback" not in output
