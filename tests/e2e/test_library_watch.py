"""The watcher where it runs for real: inside uvicorn (single node), and in exactly one of several
``cacheworker`` processes (scale-out), another taking over when that one is killed."""

import os
import shutil
import signal
import time

import pytest

from mixtapes.models import Track
from mixtapes.watcher import Lease
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def holder_pid() -> int | None:
    holder = Lease.current_holder()
    return int(holder.rsplit(":", 1)[1]) if holder else None


@pytest.fixture
def drop_in(make_audio, tmp_path):
    """``drop_in("name.flac")``: a one-second FLAC copied into MUSIC_ROOT, as a user would."""
    template = make_audio("template.flac", duration=1)
    shutil.move(template, tmp_path / "template.flac")

    def drop(name: str):
        shutil.copyfile(tmp_path / "template.flac", template.parent / name)

    return drop


def test_the_web_process_watches_the_library_unless_it_is_a_scale_out_web_process(drop_in, uvicorn_server):
    scale_out_web = uvicorn_server(AUDIO_CACHE_MAX_WORKERS="0", LIBRARY_WATCH="true")
    time.sleep(1)
    assert Lease.current_holder() == ""  # the workers' job in scale-out
    log = uvicorn_server.stop(scale_out_web)
    assert "library watcher" not in log

    single_node = uvicorn_server(AUDIO_CACHE_MAX_WORKERS="1", LIBRARY_WATCH="true")
    wait_until(lambda: holder_pid() == uvicorn_server.pids[single_node], timeout=20, message="uvicorn watching")
    drop_in("new.flac")
    wait_until(lambda: Track.objects.filter(path="new.flac").exists(), timeout=10, message="the new file's track")
    log = uvicorn_server.stop(single_node)
    assert "library watcher: watching" in log and "(inotify)" in log
    assert Lease.current_holder() == ""  # given up on shutdown, for the next process to take at once


def test_one_cacheworker_watches_and_another_takes_over_when_it_is_killed(drop_in, spawn, settings):
    workers = {p.pid: p for p in (spawn("cacheworker", "--workers", "1", LIBRARY_WATCH="true") for _ in range(2))}
    wait_until(lambda: holder_pid() in workers, timeout=30, message="one cacheworker holding the lease")
    first = holder_pid()
    drop_in("one.flac")
    wait_until(lambda: Track.objects.filter(path="one.flac").exists(), timeout=10, message="the first watcher's scan")

    os.kill(first, signal.SIGKILL)
    workers[first].wait(timeout=10)
    (second,) = set(workers) - {first}
    wait_until(
        lambda: holder_pid() == second,
        timeout=settings.AUDIO_CACHE_LEASE_SECONDS + 10,
        message="the other cacheworker taking the watch over",
    )
    drop_in("two.flac")
    wait_until(lambda: Track.objects.filter(path="two.flac").exists(), timeout=10, message="the second watcher's scan")
    assert workers[second].poll() is None
