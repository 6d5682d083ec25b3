#!/usr/bin/env python
"""Batch throughput with 1, 2 and 4 ``cacheworker`` processes on PostgreSQL, against a bare
ffmpeg loop at the same parallelism, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scalebench \\
        .venv/bin/python bench/scale_workers.py [--tracks 24] [--seconds 30] [--processes 1 2 4]

DATABASE_URL must name a throwaway PostgreSQL database (created if missing when the server
allows it; its tables are created by the run). Generates TRACKS lossless files of SECONDS
each, then for each N in PROCESSES:

  bare     `xargs -P N ffmpeg ...` with exactly our transcoder's arguments
  workers  N `manage.py cacheworker --burst --workers 1` processes on the shared queue
           (claims with SKIP LOCKED, leases, fsync + rename, database writes, progress events)

and prints audio seconds transcoded per wall second for both, and the ratio workers / bare
(1.0 = no overhead). Worker start-up (Python, Django, the ffmpeg check) is part of the
workers' time, as it is for a real deployment that starts workers for a batch.
"""

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        sys.exit("error: set DATABASE_URL to a throwaway PostgreSQL database (see --help)")

    work = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    music, cache = work / "music", work / "cache"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATA_ROOT=str(work / "data"),
        MUSIC_ROOT=str(music),
        AUDIO_CACHE_DIR=str(cache),
        LOG_LEVEL="warning",
    )
    import django

    django.setup()
    from bench_common import fresh_database

    from audiocache.models import CachedRendition, CacheTask
    from audiocache.queue import batches
    from audiocache.transcode.ffmpeg import SourceFacts, build_command
    from mixtapes.demo import AudioSpec, chord, render_audio
    from mixtapes.library import scan_library
    from mixtapes.models import Track

    try:
        fresh_database()
        print(f"Generating {args.tracks} x {args.seconds:g} s FLAC ...")
        sources = [
            render_audio(music / f"{n:02d}.flac", AudioSpec("flac", args.seconds, signal=chord(200 + 10 * n, 300, 450)))
            for n in range(args.tracks)
        ]
        scan_library(music)
        tracks = list(Track.objects.all())
        audio_seconds = args.tracks * args.seconds

        facts = SourceFacts(sample_rate=44100, channels=2, has_cover=False, duration=args.seconds)
        bare_out = work / "bare"
        bare_out.mkdir()
        script = "\n".join(
            shlex.join(build_command(src, bare_out / f"{src.stem}.mp3", "medium", facts)) for src in sources
        )
        env = dict(os.environ)

        def run_bare(n: int) -> float:
            for f in bare_out.iterdir():
                f.unlink()
            started = time.monotonic()
            subprocess.run(
                ["xargs", "-P", str(n), "-d", "\n", "-I", "{}", "sh", "-c", "{} >/dev/null"],
                input=script, text=True, check=True,
            )  # fmt: skip
            return time.monotonic() - started

        def run_workers(n: int) -> float:
            CachedRendition.objects.all().delete()
            CacheTask.objects.all().delete()
            shutil.rmtree(cache, ignore_errors=True)
            batches.create_batch(tracks, ["medium"], label=f"bench {n}")
            started = time.monotonic()
            processes = [
                subprocess.Popen(
                    [
                        sys.executable,
                        str(REPO / "manage.py"),
                        "cacheworker",
                        "--burst",
                        "--workers",
                        "1",
                        "--name",
                        f"b{i}",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for i in range(n)
            ]
            for process in processes:
                _out, err = process.communicate(timeout=3600)
                if process.returncode != 0:
                    sys.exit(f"a worker failed:\n{err}")
            elapsed = time.monotonic() - started
            done = CacheTask.objects.filter(status="done").count()
            if done != len(tracks):
                sys.exit(f"only {done} of {len(tracks)} tasks are done")
            return elapsed

        print(f"{'processes':>9}  {'bare s':>7} {'bare x':>7}  {'workers s':>9} {'workers x':>9}  {'ratio':>6}")
        for n in args.processes:
            bare = min(run_bare(n) for _ in range(2))
            ours = min(run_workers(n) for _ in range(2))
            print(
                f"{n:>9}  {bare:7.2f} {audio_seconds / bare:6.0f}x  {ours:9.2f} {audio_seconds / ours:8.0f}x"
                f"  {audio_seconds / ours / (audio_seconds / bare):6.3f}"
            )
        print("x = audio seconds transcoded per wall second; ratio = workers throughput / bare throughput")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
