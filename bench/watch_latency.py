#!/usr/bin/env python
"""How soon the library watcher turns a file copied in into a track, and a removed one into a
missing track, measured in one run.

    .venv/bin/python bench/watch_latency.py [--files 10000] [--rounds 20]

Builds a library of FILES tagged FLACs (copies of one, in album folders of 12), scans it, starts
a real ``manage.py cacheworker`` with LIBRARY_WATCH=true on it (the scale-out place of the
watcher; inside uvicorn it is the same thread), then ROUNDS times copies a new album track in
and times until its row exists, and removes it and times until the row is marked missing,
polling the database every 10 ms. Prints median, 95th percentile and worst of both, against
the 5 s target. Everything lives in a temporary folder that is removed at the end.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000, help="Files already in the library.")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="watch-bench-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AUDIO_CACHE_", "LIBRARY_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATA_ROOT": str(work / "data"),
        "MUSIC_ROOT": str(work / "music"),
        "LOG_LEVEL": "info",
        "LIBRARY_WATCH": "true",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from mixtapes.demo import AudioSpec, render_audio
    from mixtapes.library import scan_library
    from mixtapes.models import Track
    from mixtapes.watcher import Lease

    worker = None
    try:
        music = work / "music"
        template = work / "template.flac"
        render_audio(template, AudioSpec("flac", 1.0, tags={"title": "Bench", "artist": "Bench", "album": "Bench"}))
        for n in range(args.files):
            target = music / f"Artist {n // 120:05d}/Album {n // 12:06d}/{n % 12 + 1:02d} - Track {n}.flac"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template, target)
        call_command("migrate", verbosity=0)
        scan_library()
        print(f"library: {Track.objects.count():,} tracks under {music}")

        log = open(work / "cacheworker.log", "w")  # noqa: SIM115 (kept open for the process's life)
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "cacheworker", "--workers", "1"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        started = time.monotonic()
        while not Lease.current_holder().endswith(f":{worker.pid}"):
            if time.monotonic() - started > 120:
                raise SystemExit("the cacheworker did not take the watch")
            time.sleep(0.05)
        # Watching is set up, then the catch-up rescan runs, then the log says "watching".
        while "(inotify)" not in (work / "cacheworker.log").read_text():
            time.sleep(0.05)
        print(f"watcher up (watches set, catch-up rescan done) after {time.monotonic() - started:.1f} s")

        added, removed = [], []
        (music / "New").mkdir()
        for n in range(args.rounds):
            path = f"New/{n:02d} - Fresh.flac"
            began = time.monotonic()
            shutil.copyfile(template, music / path)
            while not Track.objects.filter(path=path).exists():
                time.sleep(0.01)
            added.append(time.monotonic() - began)

            began = time.monotonic()
            (music / path).unlink()
            while not Track.objects.filter(path=path, missing_since__isnull=False).exists():
                time.sleep(0.01)
            removed.append(time.monotonic() - began)

        for what, times in (("copied in -> track", added), ("removed -> missing", removed)):
            ordered = sorted(times)
            p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
            print(
                f"{what}: median {statistics.median(times):.2f} s, p95 {p95:.2f} s, worst {max(times):.2f} s "
                f"({len(times)} rounds)"
            )
        print("target: median under 5 s for both")
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
