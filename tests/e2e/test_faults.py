"""Faults under real processes: crashes while a rendition is published, a web restart under open
streams, PostgreSQL dropping a worker's connections, Redis down, a cache folder that cannot be written.

What is already covered elsewhere and not repeated here: SIGKILL of a worker while ffmpeg writes
and SIGTERM hand-back (test_worker_processes.py), a full disk (tests/transcode/test_ffmpeg.py, 64 KiB tmpfs).
"""

import signal
import socket
import subprocess
import sys
import time

import pytest
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from audiocache.events.payload import decode_stored
from audiocache.models import CacheBatch, CachedRendition, CacheTask
from audiocache.queue import batches, tasks
from audiocache.queue.pool import WorkerPool
from audiocache.seed_api import AudioCache
from audiocache.transcode.ffmpeg import TEMP_PREFIX
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import REPO, UVICORN, body, free_port, wait_for_http, wait_until
from tests.factories import MixtapeFactory, MixtapeTrackFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
Status = CacheTask.Status


def temp_files(cache_dir):
    return sorted(p.name for p in cache_dir.glob(f"{TEMP_PREFIX}*")) if cache_dir.exists() else []


def run_burst_worker(manage_env, name="rescuer", timeout=120, **extra_env):
    result = subprocess.run(
        [sys.executable, "manage.py", "cacheworker", "--burst", "--workers", "1", "--name", name],
        cwd=REPO, env={**manage_env, **extra_env}, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


# --- SIGKILL while a finished rendition is being published -------------------------------------


@pytest.mark.parametrize("point", ["before-rename", "after-rename", "before-finish"])
def test_sigkill_while_publishing_a_rendition_loses_nothing(make_audio, manage_env, settings, point):
    """The worker dies at each step between "ffmpeg is done" and "task done" (crash_harness.py
    kills it there deterministically); another worker ends with exactly one good rendition."""
    make_audio("a.flac", duration=2)
    scan_library()
    track = Track.objects.get()
    (task,) = tasks.enqueue([track], ["medium"]).values()
    cache_dir = settings.AUDIO_CACHE_DIR
    final = cache_dir / AudioCache().get_cache_path(track, "medium").name

    victim = subprocess.run(
        [sys.executable, "tests/e2e/crash_harness.py", point, "--workers", "1", "--name", "victim"],
        cwd=REPO, env=manage_env, capture_output=True, text=True, timeout=120, start_new_session=True,
    )  # fmt: skip
    assert victim.returncode == -signal.SIGKILL, victim.stderr
    assert f"SIGKILL at {point}" in victim.stderr
    task.refresh_from_db()
    assert task.status == Status.RUNNING and task.worker_id.startswith("victim/")
    # What the crash left behind, step by step: never a row for a file that is not complete.
    # Two temporary files until the rename: ffmpeg's output (which listeners may be following)
    # and its tagged copy, the one published; the first goes right after the rename.
    if point == "before-rename":
        assert len(temp_files(cache_dir)) == 2 and not final.exists()
        assert CachedRendition.objects.count() == 0
    elif point == "after-rename":
        assert len(temp_files(cache_dir)) == 1 and final.stat().st_size > 0
        assert CachedRendition.objects.count() == 0
    else:
        assert CachedRendition.objects.get().size == final.stat().st_size

    rescuer = run_burst_worker(manage_env)  # takes the task over once the 3 s lease has expired
    assert f"reclaimed task {task.pk} from victim/" in rescuer.stderr
    task.refresh_from_db()
    assert task.attempts == 2
    # The rendition is made again, or found already made: at least once, same result.
    assert task.status == (Status.SKIPPED if point == "before-finish" else Status.DONE)
    rendition = CachedRendition.objects.get()
    assert rendition.file_name == final.name
    assert final.stat().st_size == rendition.size > 10_000
    assert final.read_bytes()[:3] == b"ID3"
    assert AudioCache().is_cached(track, "medium")
    assert temp_files(cache_dir) == []
    assert sorted(p.name for p in cache_dir.iterdir()) == [final.name]


# --- The web process restarts while listeners are streaming ------------------------------------


def start_uvicorn(manage_env, port, log_path):
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process by the caller's cleanup
    process = subprocess.Popen(
        [*UVICORN, "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env={**manage_env, "AUDIO_CACHE_MAX_WORKERS": "0"}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    process.log = log
    wait_for_http(f"http://127.0.0.1:{port}/healthz")
    return process


def stop(process, sig=signal.SIGTERM):
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    process.log.close()


def read_response(sock, *, until_bytes=None):
    """Read from a raw socket: headers (dict, lower-case names), status, and up to ``until_bytes``
    of body (or to EOF). Returns (status, headers, body, eof)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before the headers: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    eof = False
    while until_bytes is None or len(body) < until_bytes:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            eof = True
            break
        body += chunk
    return status, headers, body, eof


def request(port, path, extra_headers=""):
    sock = socket.socket()
    # A small receive window (set before connecting) keeps the server from pushing the whole
    # file into the kernel's buffers at once: the body is really under way when the server dies.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}Connection: close\r\n\r\n".encode())
    return sock


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_listeners_resume_with_range_after_the_web_process_restarts(make_audio, manage_env, tmp_path, how):
    """SIGKILL cuts every open stream; SIGTERM lets uvicorn drain them. Either way each listener ends
    with the exact file: what it missed comes from the new process with a Range request."""
    make_audio("long.flac", duration=300, channels=1)
    scan_library()
    track = Track.objects.get()
    rendition = AudioCache().transcode_file(track, "high")  # 9.6 MB: more than the kernel buffers hold
    MixtapeTrackFactory(track=track, mixtape=MixtapeFactory(is_public=True))
    expected = rendition.read_bytes()
    path = f"/stream/{track.pk}/?quality=high"
    port = free_port()
    server = start_uvicorn(manage_env, port, tmp_path / "uvicorn.log")
    try:
        listeners = [request(port, path) for _ in range(8)]
        first = [read_response(sock, until_bytes=64 * 1024 * (n + 1)) for n, sock in enumerate(listeners)]
        etag = first[0][1]["etag"]
        assert {status for status, *_ in first} == {200}
        server.send_signal(how)  # mid-body for every listener
        received = []
        for sock, (_status, _headers, body, _eof) in zip(listeners, first, strict=True):
            received.append(body + read_to_eof(sock))  # the connection ends, it does not hang
            sock.close()
        stop(server)
        print("received before the restart:", [len(b) for b in received], "of", len(expected))
        if how == signal.SIGKILL:
            assert all(len(b) < len(expected) for b in received)  # every stream really was cut short

        server = start_uvicorn(manage_env, port, tmp_path / "uvicorn.log")
        for body in received:
            assert expected.startswith(body)  # what arrived before the restart was right
            if len(body) == len(expected):
                continue  # drained before the old process exited
            sock = request(port, path, f"Range: bytes={len(body)}-\r\nIf-Range: {etag}\r\n")
            status, headers, rest, _eof = read_response(sock)
            sock.close()
            assert status == 206, headers
            assert headers["content-range"] == f"bytes {len(body)}-{len(expected) - 1}/{len(expected)}"
            assert body + rest == expected
    finally:
        stop(server)


def read_to_eof(sock, timeout=30) -> bytes:
    """The rest of a body already under way, to EOF (a reset counts as the end); a hang fails."""
    sock.settimeout(timeout)
    body = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return body
        except TimeoutError:
            raise AssertionError("the stream neither continued nor ended") from None
        if not chunk:
            return body
        body += chunk


# --- PostgreSQL drops the worker's connections ---------------------------------------------


def other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def terminate_other_backends() -> int:
    """pg_terminate_backend on every connection to this test database except the test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_a_worker_survives_postgresql_dropping_its_connections(make_audio, spawn, settings):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (the suite's second pass runs with DATABASE_URL=postgres://...)")
    # Four minutes each: long enough that every task runs past its first progress write (after 1 s)
    # on a fast machine, so the connections are dropped while a task is under way.
    for n in range(4):
        make_audio(f"album/{n}.flac", duration=240, channels=1, noise=True)
    scan_library()
    tracks = list(Track.objects.all())
    batch = batches.create_batch(tracks, ["medium"], label="pg drop")
    worker = spawn("cacheworker", "--burst", "--workers", "1", "--name", "pg")
    terminated = 0
    for _ in range(2):  # twice: while a task runs, and again on the next one
        before = CacheTask.objects.filter(status=Status.DONE).count()
        wait_until(
            lambda before=before: (
                CacheTask.objects.filter(status=Status.RUNNING, progress__gt=0).exists()
                and CacheTask.objects.filter(status=Status.DONE).count() >= before
            ),
            message="a task under way",
        )
        # The worker reconnects lazily after a drop: wait until it is connected again.
        wait_until(lambda: other_backends() > 0, message="the worker to be connected")
        terminated += terminate_other_backends()
        time.sleep(0.5)
    assert terminated >= 2
    _out, err = worker.communicate(timeout=180)
    assert worker.returncode == 0, err
    assert "terminating connection due to administrator command" in err or "connection" in err.lower()

    # Every task was retried to the end; nothing lost, nothing half-written.
    task_rows = CacheTask.objects.all()
    assert {t.status for t in task_rows} == {Status.DONE}, [(t.status, t.error) for t in task_rows]
    assert max(t.attempts for t in task_rows) >= 2  # the interrupted one ran again
    for track in tracks:
        assert AudioCache().is_cached(track, "medium")
    assert temp_files(settings.AUDIO_CACHE_DIR) == []
    assert batches.announce_if_finished(CacheBatch.objects.get(pk=batch.pk)).summary == "4 cached, 0 skipped, 0 failed"


# --- Redis is down ----------------------------------------------------------------------------


def read_sse(base, path, cookie, last_event_id, timeout=30):
    """Raw SSE text of ``path`` with Last-Event-ID, read until the batch's final event or timeout."""
    sock = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=timeout)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
        f"Last-Event-ID: {last_event_id}\r\nConnection: close\r\n\r\n".encode()
    )
    text = b""
    deadline = time.monotonic() + timeout
    try:
        while b'"step": "done"' not in text and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            text += chunk
    except TimeoutError:
        pass
    finally:
        sock.close()
    return text.decode("utf-8", "replace")


def test_with_redis_down_transcoding_goes_on_and_events_replay_from_storage(make_audio, spawn, uvicorn_server, client):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    for n in range(4):
        make_audio(f"album/{n}.flac", duration=1)
    scan_library()
    user = UserFactory()
    batch = batches.create_batch(Track.objects.all(), ["low"], label="no redis", user=user)

    worker = spawn("cacheworker", "--burst", "--workers", "1", REDIS_URL=dead_redis)
    _out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert set(CacheTask.objects.values_list("status", flat=True)) == {Status.DONE}
    # Redis was tried once, then left alone for 30 s: not ~4 s of client retries per event
    # (9 events here), which is how it first behaved.
    assert err.count("Redis is unreachable") == 1, err
    assert "could not send progress event" not in err

    # Every event was stored before Redis was tried: the worker's outcomes and the final event.
    from django_eventstream.models import Event

    stored = [
        decode_stored(e.data) for e in Event.objects.filter(channel=f"batch-{batch.pk}", eid__gt=0).order_by("eid")
    ]
    steps = [(p["step"], p["status"]) for p in stored]
    assert steps.count(("track", "completed")) == 4
    assert steps[-1] == ("done", "completed")

    # A web process with the same dead Redis still replays them to a reconnecting browser.
    base = uvicorn_server(REDIS_URL=dead_redis)
    client.force_login(user)
    text = read_sse(
        base, f"/events/batches/{batch.pk}/", f"sessionid={client.cookies['sessionid'].value}", f"batch-{batch.pk}:0"
    )
    assert text.startswith("HTTP/1.1 200"), text[:500]
    assert text.count('"status": "completed"') >= 5 and '"step": "done"' in text


# --- The cache folder cannot be written -------------------------------------------------------
# Root ignores file modes, so chmod proves nothing here. Two ways that stop root too: a read-only
# tmpfs mounted by the test (needs root or CAP_SYS_ADMIN; skipped with the reason otherwise) and a
# cache folder whose path runs through a regular file (works for anyone, always runs).


@pytest.fixture
def read_only_cache_dir(tmp_path, settings):
    mount_point = tmp_path / "ro-cache"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root): " + mounted.stderr.decode().strip())
    settings.AUDIO_CACHE_DIR = mount_point
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def cache_dir_under_a_file(tmp_path, settings):
    (tmp_path / "not-a-folder").write_text("a regular file")
    settings.AUDIO_CACHE_DIR = tmp_path / "not-a-folder" / "cache"
    return settings.AUDIO_CACHE_DIR


def run_burst_pool():
    pool = WorkerPool(1, burst=True).start()
    assert pool.join(60)


def wait_for_postponed_tasks():
    """Until every postponed task may be claimed again (its pause is a second or two in tests)."""
    latest = CacheTask.objects.filter(status=Status.PENDING).aggregate(latest=Max("available_at"))["latest"]
    if latest is not None:
        time.sleep(max(0.0, (latest - timezone.now()).total_seconds()) + 0.1)


def test_a_read_only_cache_folder_makes_tasks_wait_without_spending_attempts(
    make_audio, read_only_cache_dir, settings, client
):
    """The source is not to blame: the task waits, attempts intact, the original plays meanwhile,
    and once the folder is writable again the task is made (it used to fail for good after
    AUDIO_CACHE_MAX_ATTEMPTS tries, then stay quarantined)."""
    make_audio("a.flac", duration=1)
    scan_library()
    track = Track.objects.get()
    tasks.enqueue([track], ["low"])
    run_burst_pool()
    task = CacheTask.objects.get()
    assert task.status == Status.PENDING and task.attempts == 0
    assert task.error.startswith(
        f"{tasks.WAITING_PREFIX}cannot write to the cache folder {read_only_cache_dir} (AUDIO_CACHE_DIR)"
    )
    assert "Read-only file system" in task.error and "internal error" not in task.error
    assert list(read_only_cache_dir.iterdir()) == [] and CachedRendition.objects.count() == 0
    client.force_login(UserFactory())
    response = client.get(f"/stream/{track.pk}/?quality=low")
    assert response.status_code == 200 and response["X-Audio-Cache"] == "miss"
    assert body(response) == (settings.MUSIC_ROOT / "a.flac").read_bytes()

    subprocess.run(["mount", "-o", "remount,rw", str(read_only_cache_dir)], check=True)
    wait_for_postponed_tasks()
    run_burst_pool()
    task.refresh_from_db()
    assert (task.status, task.attempts, task.error) == (Status.DONE, 1, "")
    assert client.get(f"/stream/{track.pk}/?quality=low")["X-Audio-Cache"] == "hit"


def test_a_full_cache_disk_is_one_clear_state_and_work_resumes_when_space_is_freed(
    make_audio, small_tmpfs, settings, admin_client
):
    mount_point = settings.AUDIO_CACHE_DIR = small_tmpfs("64k", "small-cache")
    for n in range(3):
        make_audio(f"{n}.flac", duration=10, noise=True)  # ~320 KB at high: more than 64 KiB each
    scan_library()
    batch = batches.create_batch(Track.objects.all(), ["high"], label="disk full", user=UserFactory())
    # A running pool (not --burst, which ends at the first such failure) pauses after each
    # failure, doubling: the three tasks are tried once each, not in a loop.
    pool = WorkerPool(2).start()
    try:
        wait_until(
            lambda: CacheTask.objects.filter(error__startswith=tasks.WAITING_PREFIX).count() == 3,
            timeout=60, message="every task tried once",
        )  # fmt: skip
    finally:
        pool.stop()
        assert pool.join(30)
    waiting = CacheTask.objects.all()
    assert {(t.status, t.attempts) for t in waiting} == {(Status.PENDING, 0)}
    assert all("No space left on device" in t.error for t in waiting)
    assert list(mount_point.iterdir()) == []  # no partial file
    page = admin_client.get("/admin/audiocache/cachedrendition/dashboard/").content.decode()
    assert "Cache disk full." in page and "3 transcodes wait for it" in page
    batch.refresh_from_db()
    assert batch.finished_at is None  # the batch waits too: nothing failed

    # An admin grows the disk (or frees space): the same tasks are made, first try.
    subprocess.run(["mount", "-o", "remount,size=8m", str(mount_point)], check=True)
    pool = WorkerPool(2).start()
    try:
        wait_until(lambda: CacheTask.objects.filter(status=Status.DONE).count() == 3, timeout=60, message="done")
    finally:
        pool.stop()
        assert pool.join(30)
    assert {(t.status, t.attempts) for t in CacheTask.objects.all()} == {(Status.DONE, 1)}
    assert "Cache disk full" not in admin_client.get("/admin/audiocache/cachedrendition/dashboard/").content.decode()
    batch.refresh_from_db()
    assert batch.finished_at is not None


def test_a_cache_folder_under_a_regular_file(make_audio, cache_dir_under_a_file, manage_env, uvicorn_server, settings):
    from audiocache.transcode.ffmpeg import CacheUnwritable

    make_audio("a.flac", duration=1)
    scan_library()
    track = Track.objects.get()
    with pytest.raises(CacheUnwritable, match=r"cannot write to the cache folder .*: Not a directory"):
        AudioCache().transcode_file(track, "low")

    # A worker process refuses to start and says why, without a traceback.
    worker = subprocess.run(
        [sys.executable, "manage.py", "cacheworker", "--burst"],
        cwd=REPO, env=manage_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert worker.returncode == 1
    assert f"cannot start workers: cannot write to the cache folder {cache_dir_under_a_file}" in worker.stderr
    assert "Traceback" not in worker.stderr

    # The single-node web process with its embedded pool still serves the original.
    MixtapeTrackFactory(track=track, mixtape=MixtapeFactory(is_public=True))
    base = uvicorn_server(AUDIO_CACHE_MAX_WORKERS="1")
    sock = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=30)
    sock.sendall(
        f"GET /stream/{track.pk}/?quality=low HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    )
    status, headers, data, _eof = read_response(sock)
    sock.close()
    assert status == 200 and headers["x-audio-cache"] == "miss"
    assert data == (settings.MUSIC_ROOT / "a.flac").read_bytes()
