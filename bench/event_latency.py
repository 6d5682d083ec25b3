#!/usr/bin/env python
"""Progress event latency: from a worker's emit to receipt by an SSE client, both topologies.

    .venv/bin/python bench/event_latency.py [--tracks 220] [--workers 2]

For each topology, a batch of TRACKS tiny lossless tracks is transcoded while an SSE client
follows the batch on a live uvicorn:

  single node  uvicorn runs the worker pool; events are delivered in-process
  scale-out    uvicorn without workers + a `manage.py cacheworker` process; events go
               through Redis (127.0.0.1:6379)

Latency = time the client read the event - the event's own `timestamp` (set when the worker
emitted it; same machine, same clock). Prints p50/p95/max over the per-track events emitted
after the client connected (at least 200 with the default). Target: p95 under 250 ms.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from audiocache.delivery.zerocopy import UVICORN_OPTIONS  # noqa: E402 - the way make run starts uvicorn

REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def follow(port: int, path: str, headers: dict, received: list, stop: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    event_type, data = None, None
    while not stop.is_set():
        line = response.fp.readline()
        if not line:
            return
        line = line.decode().rstrip("\n")
        if line.startswith("event:"):
            event_type = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line == "" and data is not None:
            if event_type == "progress":
                payload = json.loads(data)
                received.append((time.time(), payload))
                if payload.get("step") == "done":
                    return
            event_type, data = None, None


def run(topology: str, args, work: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATA_ROOT": str(work / "data"),
        "MUSIC_ROOT": str(work / "music"),
        "LOG_LEVEL": "warning",
        "SECRET_KEY": os.environ["SECRET_KEY"],
    }
    if topology == "scale-out":
        env["REDIS_URL"] = REDIS_URL
    server_env = {**env, "AUDIO_CACHE_MAX_WORKERS": str(args.workers if topology == "single node" else 0)}
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", *UVICORN_OPTIONS,
         "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env=server_env,
    )  # fmt: skip
    processes = [server]
    if topology == "scale-out":
        processes.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "cacheworker", "--workers", str(args.workers)],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
            )
        )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        from django.contrib.auth.models import User
        from django.contrib.sessions.backends.db import SessionStore

        from audiocache.models import CachedRendition
        from audiocache.queue import batches
        from mixtapes.models import Track

        CachedRendition.objects.all().delete()
        user = User.objects.get_or_create(username="bench")[0]
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()

        batch = batches.create_batch(Track.objects.all(), ["low"], label=f"latency {topology}", user=user, force=True)
        received, stop = [], threading.Event()
        connected_at = time.time()
        headers = {"Cookie": f"sessionid={session.session_key}", "Last-Event-ID": f"batch-{batch.pk}:0"}
        client = threading.Thread(
            target=follow, args=(port, f"/events/batches/{batch.pk}/", headers, received, stop), daemon=True
        )
        client.start()
        client.join(timeout=300)
        stop.set()
        latencies = [
            (got - datetime.fromisoformat(p["timestamp"]).timestamp()) * 1000
            for got, p in received
            if p.get("step") == "track" and datetime.fromisoformat(p["timestamp"]).timestamp() >= connected_at
        ]
        if not latencies:
            print(f"{topology:12s}: no events received")
            return
        latencies.sort()
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(
            f"{topology:12s}: {len(latencies)} events  p50 {statistics.median(latencies):6.1f} ms  "
            f"p95 {p95:6.1f} ms  max {latencies[-1]:6.1f} ms  (target p95 < 250 ms)"
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=220)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="event-bench-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATA_ROOT=str(work / "data"),
        MUSIC_ROOT=str(work / "music"),
        LOG_LEVEL="warning",
        SECRET_KEY="event-latency-bench-" + "k" * 32,
    )
    import django

    django.setup()
    from django.core.management import call_command

    from mixtapes.demo import AudioSpec, render_audio
    from mixtapes.library import scan_library

    try:
        template = render_audio(work / "template.flac", AudioSpec("flac", 0.3, channels=1))
        for n in range(args.tracks):
            target = work / "music" / f"{n:04d}.flac"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template, target)
        call_command("migrate", verbosity=0)
        scan_library()
        run("single node", args, work)
        try:
            import redis

            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
            run("scale-out", args, work)
        except Exception as exc:
            print(f"scale-out   : skipped, Redis not reachable at {REDIS_URL} ({exc})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
