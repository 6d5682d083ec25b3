"""Real cacheworker and precache processes against the test database (SQLite file or PostgreSQL)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db.models import Count

from audiocache.models import CachedRendition, CacheTask
from audiocache.queue import tasks
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import REPO, SLOW_FFMPEG, wait_until
from tests.e2e.conftest import REDIS_URL, redis_available

pytestmark = pytest.mark.django_db(transaction=True)
Status = CacheTask.Status


def test_three_workers_share_thirty_tasks_without_doing_any_twice(make_audio, spawn, settings):
    for n in range(30):
        make_audio(f"album/{n:02d}.flac", duration=1)
    scan_library()
    tasks.enqueue(Track.objects.all(), ["low"])

    workers = [spawn("cacheworker", "--burst", "--workers", "1", "--name", f"w{n}") for n in range(3)]
    outputs = [w.communicate(timeout=180) for w in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err

    task_rows = CacheTask.objects.all()
    assert task_rows.count() == 30
    assert set(task_rows.values_list("status", flat=True)) == {Status.DONE}
    assert set(task_rows.values_list("attempts", flat=True)) == {1}  # nobody ran a task twice
    per_worker = dict(task_rows.values_list("worker_id").annotate(n=Count("id")).values_list("worker_id", "n"))
    assert sum(per_worker.values()) == 30
    assert len(per_worker) >= 2  # the work was shared
    runs = [line for _, err in outputs for line in err.splitlines() if "result=done" in line]
    task_ids = [re.search(r"task=(\d+)", line).group(1) for line in runs]
    assert len(task_ids) == len(set(task_ids)) == 30  # 30 ffmpeg runs in all, one per task
    assert CachedRendition.objects.count() == 30
    assert len(list(settings.AUDIO_CACHE_DIR.glob("*.mp3"))) == 30
    assert not list(settings.AUDIO_CACHE_DIR.glob(".tmp-*"))


def test_sigkill_mid_transcode_loses_nothing(make_audio, spawn, settings):
    make_audio("long.flac", duration=300, channels=1, noise=True)
    scan_library()
    (task,) = tasks.enqueue(Track.objects.all(), ["medium"]).values()

    victim = spawn("cacheworker", "--workers", "1", "--name", "victim")
    wait_until(lambda: list(settings.AUDIO_CACHE_DIR.glob(".tmp-*")), message="ffmpeg to start writing")
    os.killpg(victim.pid, signal.SIGKILL)  # the worker and its ffmpeg, as an OOM kill or power cut would
    victim.wait(timeout=10)
    task.refresh_from_db()
    assert task.status == Status.RUNNING and task.worker_id.startswith("victim/")
    assert CachedRendition.objects.count() == 0  # a half-written file never counts

    # Another worker takes the task over once the lease (3 s in tests) has expired.
    rescuer = spawn("cacheworker", "--burst", "--workers", "1", "--name", "rescuer")
    _out, err = rescuer.communicate(timeout=120)
    assert rescuer.returncode == 0, err
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.DONE, 2)
    assert task.worker_id.startswith("rescuer/")
    assert "lease expired" in task.error or "reclaimed" in err
    rendition = CachedRendition.objects.get()
    assert (settings.AUDIO_CACHE_DIR / rendition.file_name).stat().st_size == rendition.size
    assert not list(settings.AUDIO_CACHE_DIR.glob(".tmp-*"))  # the victim's partial file is gone


def test_sigterm_hands_the_running_task_back(make_audio, spawn, settings):
    make_audio("long.flac", duration=300, channels=1, noise=True)
    scan_library()
    (task,) = tasks.enqueue(Track.objects.all(), ["medium"]).values()
    worker = spawn("cacheworker", "--workers", "1")
    wait_until(lambda: list(settings.AUDIO_CACHE_DIR.glob(".tmp-*")), message="ffmpeg to start writing")
    worker.send_signal(signal.SIGTERM)
    _out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "SIGTERM: stopping" in err
    task.refresh_from_db()
    assert (task.status, task.attempts, task.worker_id) == (Status.PENDING, 0, "")
    assert not list(settings.AUDIO_CACHE_DIR.glob(".tmp-*"))


def test_cacheworker_without_ffmpeg_exits_with_a_clear_error(spawn):
    worker = spawn("cacheworker", "--burst", AUDIO_CACHE_FFMPEG="/nonexistent/ffmpeg")
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 1
    assert "cannot start workers: '/nonexistent/ffmpeg' was not found: install ffmpeg or set AUDIO_CACHE_FFMPEG" in err
    assert "Traceback" not in err


def test_precache_inline_and_wait(make_audio, spawn, manage_env, settings):
    make_audio("a.flac", duration=1)
    make_audio("b.m4a", kind="alac", duration=1)
    make_audio("c.mp3", kind="mp3", duration=1)
    (settings.MUSIC_ROOT / "bad.flac").write_text("text, not audio")
    scan_library()
    from tests.factories import TrackFactory

    st = (settings.MUSIC_ROOT / "bad.flac").stat()
    TrackFactory(path="bad.flac", file_size=st.st_size, file_mtime_ns=st.st_mtime_ns)

    result = subprocess.run(
        [sys.executable, "manage.py", "precache", "--all", "--quality", "low", "medium", "--inline", "--workers", "2"],
        cwd=REPO,
        env=manage_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stderr  # one source is broken
    assert "Finished: 4 cached, 0 skipped, 2 failed" in result.stdout
    assert "failed: bad.flac @ low" in result.stderr
    assert "2 rendition(s) failed" in result.stderr

    # Again: everything good is cached, the broken file is quarantined, the MP3 is skipped.
    again = subprocess.run(
        [sys.executable, "manage.py", "precache", "--track", str(Track.objects.get(path="a.flac").pk),
         "--track", str(Track.objects.get(path="c.mp3").pk), "--wait"],
        cwd=REPO, env=manage_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "Finished: 0 cached, 2 skipped, 0 failed" in again.stdout


def test_precache_wait_follows_a_separate_worker(make_audio, spawn, settings):
    make_audio("a.flac", duration=1)
    make_audio("b.flac", duration=1)
    scan_library()
    waiting = spawn("precache", "--all", "--wait")
    time.sleep(1)
    worker = spawn("cacheworker", "--burst", "--workers", "2")
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert "Finished: 2 cached, 0 skipped, 0 failed" in out
    assert "[##############################] 2/2" in out
    worker.communicate(timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say what to precache"),
        (["--mixtape", "nope"], "no mixtape with slug 'nope'"),
        (["--track", "999999"], "no track with id 999999"),
        (["--all", "--quality", "ultra"], "unknown quality 'ultra'"),
    ],
)
def test_precache_bad_arguments(manage_env, args, message):
    result = subprocess.run(
        [sys.executable, "manage.py", "precache", *args],
        cwd=REPO, env=manage_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_with_redis_idle_workers_are_woken_when_work_is_queued_elsewhere(make_audio, spawn, settings):
    """Redis is only a doorbell (audiocache/doorbell.py): a worker polling once a minute still
    claims a task queued in another process within a few seconds, and loses none if Redis is not there."""
    if not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    make_audio("a.flac", duration=1)
    scan_library()
    worker = spawn("cacheworker", "--workers", "1", "--poll-interval", "60", REDIS_URL=REDIS_URL)
    assert "1 worker(s)" in worker.stdout.readline()
    time.sleep(1.5)  # its first look found nothing: from now on it waits a minute, or for the bell

    settings.REDIS_URL = REDIS_URL  # this process publishes when it queues
    tasks.enqueue(Track.objects.all(), ["low"], priority=CacheTask.PRIORITY_PLAY)
    wait_until(lambda: CacheTask.objects.filter(status=Status.DONE).exists(), 20, 0.1, "the woken worker's transcode")


def test_cacheworker_poll_interval_is_checked(spawn):
    worker = spawn("cacheworker", "--poll-interval", "0")
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode != 0 and "--poll-interval must be between 0.05 and 3600 seconds" in err


def _descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (zombies count as gone)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ffmpeg_dies_with_a_worker_killed_outright_and_its_file_is_swept_at_the_next_start(
    make_audio, spawn, settings, tmp_path
):
    """Before: the ffmpeg of a SIGKILLed worker went on (reparented to PID 1) until its timeout."""
    make_audio("long.flac", duration=300, channels=1, noise=True)
    scan_library()
    tasks.enqueue(Track.objects.all(), ["medium"])
    victim = spawn("cacheworker", "--workers", "1", AUDIO_CACHE_FFMPEG=SLOW_FFMPEG, SLOW_FFMPEG_RATE="1")
    wait_until(lambda: list(settings.AUDIO_CACHE_DIR.glob(".tmp-*")), message="ffmpeg to start writing")
    ffmpegs = [pid for pid in _descendants(victim.pid) if "ffmpeg" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert ffmpegs, "no ffmpeg below the worker"

    victim.kill()  # the worker alone (not its process group), as the OOM killer picks one process
    victim.wait(timeout=10)
    wait_until(lambda: not any(_alive(pid) for pid in ffmpegs), timeout=10, message="the orphaned ffmpeg to die")

    # Its temporary file stays until it is older than any transcode may run; then a starting
    # worker sweeps it.
    (partial,) = settings.AUDIO_CACHE_DIR.glob(".tmp-*")
    old = time.time() - settings.AUDIO_CACHE_TRANSCODE_TIMEOUT - settings.AUDIO_CACHE_LEASE_SECONDS - 60
    os.utime(partial, (old, old))
    CacheTask.objects.update(status=Status.DONE)  # nothing for the next worker to do but start
    sweeper = spawn("cacheworker", "--burst", "--workers", "1")
    out, err = sweeper.communicate(timeout=60)
    assert sweeper.returncode == 0, err
    assert not partial.exists()
    assert "removed 1 temporary files of transcodes that died" in err + out
