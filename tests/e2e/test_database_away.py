"""The database unreachable (config/database.py, config/startup.py, audiocache/queue/pool.py):
at start-up every entry point says once, in one line, which database it cannot reach; a
``cacheworker`` tries again with backoff (a line per try), exits after ``--exit-on-db-loss`` when
asked, and goes on by itself when the database comes back.

The outage while a worker runs is made with a TCP relay between the worker and PostgreSQL that
the test cuts and restores (PostgreSQL pass only: an SQLite file cannot be "away" that way).
"""

import contextlib
import socket
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection

from audiocache.models import CacheTask
from audiocache.queue import tasks
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import REPO, free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

NOWHERE = "postgres://mixtapes@127.0.0.1:{port}/mixtapes"


def run(manage_env, *args, timeout=60, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env={**manage_env, **env},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_migrate_says_which_database_it_cannot_reach(manage_env, tmp_path):
    port = free_port()  # nothing listens there
    result = run(manage_env, "migrate", "--noinput", DATABASE_URL=NOWHERE.format(port=port))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f'Error: cannot reach the database (PostgreSQL at 127.0.0.1:{port}, database "mixtapes"; DATABASE_URL): '
    )
    assert "Connection refused" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    sqlite = run(manage_env, "migrate", "--noinput", DATABASE_URL=f"sqlite:///{tmp_path}/no/such/folder/db.sqlite3")
    assert sqlite.returncode == 1 and "Traceback" not in sqlite.stderr
    assert f"cannot reach the database (SQLite file {tmp_path}/no/such/folder/db.sqlite3" in sqlite.stderr


def test_a_missing_table_is_not_called_an_unreachable_database(manage_env, tmp_path):
    """SQLite reports a missing table as an OperationalError too: that one keeps its real message."""
    result = run(
        manage_env, "shell", "-c", "from mixtapes.models import Track; Track.objects.count()",
        DATABASE_URL=f"sqlite:///{tmp_path}/empty.sqlite3",
    )  # fmt: skip
    assert result.returncode == 1 and "no such table" in result.stderr
    assert "cannot reach the database" not in result.stderr


def test_the_web_process_says_it_once_and_serves_on(uvicorn_server, manage_env):
    port = free_port()
    base = uvicorn_server(DATABASE_URL=NOWHERE.format(port=port))
    health = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", f"{base}/healthz"], capture_output=True, text=True, timeout=30
    ).stdout
    assert health.endswith("\n503") and '"database"' in health
    log = uvicorn_server.stop(base)
    assert log.count("cannot reach the database") == 1, log
    assert f"PostgreSQL at 127.0.0.1:{port}" in log and "Traceback" not in log.split("Application startup complete")[0]


def test_a_worker_gives_up_after_exit_on_db_loss(manage_env):
    started = time.monotonic()
    result = run(
        manage_env, "cacheworker", "--workers", "3", "--no-watch", "--exit-on-db-loss", "4",
        DATABASE_URL=NOWHERE.format(port=free_port()),
    )  # fmt: skip
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    assert "Traceback" not in result.stderr
    tries = [line for line in result.stderr.splitlines() if "; try " in line]
    # One line per try for the whole pool (three threads), backing off: 1, 2, then what is left.
    assert 2 <= len(tries) <= 4, result.stderr
    assert "try 1, next in 1 s" in tries[0] and "try 2, next in 2 s" in tries[1]
    assert result.stderr.rstrip().endswith("gave up after 4 s (--exit-on-db-loss)")
    assert run(manage_env, "cacheworker", "--exit-on-db-loss", "0").returncode == 1  # a bad value


class Relay:
    """A TCP relay from a local port to PostgreSQL that the test cuts (every connection dropped,
    new ones refused) and restores."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._listener = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self):
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self):
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()


def test_a_worker_waits_for_the_database_and_goes_on_when_it_is_back(make_audio, spawn, settings):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (the suite's second pass runs with DATABASE_URL=postgres://...)")
    for n in range(2):
        make_audio(f"{n}.flac", duration=1)
    scan_library()
    first, second = Track.objects.order_by("path")
    details = connection.settings_dict
    relay = Relay((details["HOST"] or "127.0.0.1", int(details["PORT"] or 5432)))
    relay.start()
    url = f"postgres://{details['USER']}@127.0.0.1:{relay.port}/{details['NAME']}"
    worker = spawn("cacheworker", "--workers", "2", "--no-watch", "--poll-interval", "0.2", DATABASE_URL=url)
    try:
        tasks.enqueue([first], ["low"])
        wait_until(lambda: CacheTask.objects.filter(status="done").count() == 1, timeout=60, message="the first task")
        relay.cut()
        time.sleep(4)  # the worker notices and tries again, with backoff
        tasks.enqueue([second], ["low"])  # queued while the worker cannot see the database
        relay.start()
        wait_until(lambda: CacheTask.objects.filter(status="done").count() == 2, timeout=60, message="the second task")
    finally:
        worker.terminate()
        _out, err = worker.communicate(timeout=30)
    assert "cannot reach the database" in err and "the database is back after" in err, err
    assert err.count("Traceback") <= 1, err  # at most the query the cut interrupted
