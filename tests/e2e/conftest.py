"""Helpers for tests that run real ``manage.py`` processes against the test database."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


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
def manage_env(settings, tmp_path):
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
        SECRET_KEY="e2e-test-key-" + "x" * 40,
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
