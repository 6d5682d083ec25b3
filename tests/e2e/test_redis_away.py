"""Redis away and back (audiocache/events/fanout.py, config/health.py), with a redis-server of the
test's own that it stops and starts again on the same port.

- Sending an event (a save, a worker's progress) never waits for Redis: not while it is down,
  not while its address swallows packets.
- The web process stays in service (/healthz 200 "degraded"), and a browser following a batch
  gets, once Redis is back and without reconnecting, the events sent while it was away, then
  live ones.
"""

import shutil
import subprocess
import threading
import time

import pytest

from audiocache.events.payload import Counts
from audiocache.events.sending import BatchEvents
from audiocache.queue import batches
from tests.conftest import free_port, wait_until
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


class RedisServer:
    """A redis-server on a port of its own that keeps nothing on disk."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.folder = tmp_path
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.answers, timeout=10, message="redis-server to start")

    def answers(self) -> bool:
        ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
        return ping.stdout.strip() == "PONG"

    def stop(self):
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path):
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


class EventReader:
    """The progress messages of one SSE stream, read by curl as they arrive."""

    def __init__(self, url: str, cookie: str):
        self.messages: list[str] = []
        self.process = subprocess.Popen(["curl", "-sN", "-b", cookie, url], stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            if line.startswith("data:") and '"message"' in line:
                self.messages.append(line)

    def saw(self, text: str) -> bool:
        return any(text in message for message in self.messages)

    def close(self):
        self.process.kill()
        self.process.wait()


def test_events_sent_while_redis_was_away_arrive_when_it_is_back(
    redis_server, uvicorn_server, client, settings, file_track
):
    base = uvicorn_server(REDIS_URL=redis_server.url)
    user = UserFactory()
    batch = batches.create_batch([file_track()], ["low"], label="redis away", user=user)
    client.force_login(user)
    reader = EventReader(f"{base}/events/batches/{batch.pk}/", f"sessionid={client.cookies['sessionid'].value}")
    # This test process plays the cacheworker on another host: its events reach the web process
    # through Redis only.
    settings.REDIS_URL = redis_server.url
    events = BatchEvents(batch.pk)
    try:
        wait_until(lambda: reader.saw("snapshot") or len(reader.messages) > 0, timeout=20, message="the stream")
        time.sleep(0.5)  # the web process subscribes when its first stream opens
        events.emit("track", "in_progress", "before the outage", Counts(total=1))
        wait_until(lambda: reader.saw("before the outage"), timeout=20, message="a live event")

        redis_server.stop()
        started = time.monotonic()
        for n in range(5):
            assert events.emit("track", "in_progress", f"during the outage {n}", Counts(total=1)) is not None
        assert time.monotonic() - started < 1.0, "sending waited for Redis"
        answer = subprocess.run(
            ["curl", "-s", "-w", "\n%{http_code}", f"{base}/healthz"], capture_output=True, text=True, timeout=30
        ).stdout
        assert answer.endswith("\n200") and '"status": "degraded"' in answer, answer
        time.sleep(1)
        assert not reader.saw("during the outage"), "nothing carries them while Redis is away"

        redis_server.start()
        # Both sides come back by themselves: the web process resubscribes and reads what it missed
        # from storage; this process publishes the notes it kept.
        wait_until(lambda: all(reader.saw(f"during the outage {n}") for n in range(5)), timeout=30,
                   message="the events sent during the outage")  # fmt: skip
        events.emit("track", "completed", "after the outage", Counts(total=1, cached=1))
        wait_until(lambda: reader.saw("after the outage"), timeout=20, message="live events again")
        order = [m for m in reader.messages if "outage" in m]
        assert ["before" in order[0], "after" in order[-1], len(order)] == [True, True, 7], order
    finally:
        reader.close()


def test_sending_never_waits_for_a_redis_that_swallows_packets(settings, file_track):
    """An unroutable address makes a connection attempt hang for its whole timeout (2 s): the
    sender hands the note to the fan-out thread and returns."""
    settings.REDIS_URL = "redis://10.255.255.1:6379/0"
    batch = batches.create_batch([file_track()], ["low"], label="black hole", user=UserFactory())
    events = BatchEvents(batch.pk)
    started = time.monotonic()
    for n in range(20):
        assert events.emit("track", "in_progress", f"event {n}", Counts(total=1)) is not None
    assert time.monotonic() - started < 1.0
