#!/usr/bin/env python
"""The cache admin and cacheclean at library scale, in one run.

    .venv/bin/python bench/admin_scale.py [--renditions 100000] [--rounds 5]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/adminbench .venv/bin/python bench/admin_scale.py

Creates RENDITIONS tracks, one rendition each (every quality in turn, a tiny file per row in
the cache folder, a tenth of them stale, dates spread over a year), 2,000 tasks and a month of
stream counts, in a new database (a temporary SQLite file, or DATABASE_URL: give it a
throwaway database and drop it after). Then it times, best of ROUNDS, through Django's test
client as a logged-in superuser:

  changelist   /admin/audiocache/cachedrendition/ (100 rows, state column, filters, dates)
  filtered     the same with ?state=stale&quality__exact=medium
  search       the same with ?q=<an artist>
  missing      the same with ?state=missing (lists the cache folder)
  dashboard    /admin/audiocache/cachedrendition/dashboard/
  tasks        /admin/audiocache/cachetask/
  cacheclean   manage.py cacheclean --dry-run --older-than 180 --max-size 1G --orphans

and prints milliseconds against the target (300 ms each).
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TARGET_MS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renditions", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", action="store_true", help="Also print each page's slowest SQL queries.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="admin-bench-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATA_ROOT=str(work),
        LOG_LEVEL="warning",
        ALLOWED_HOSTS="testserver",
        AUDIO_CACHE_DIR=str(work / "cache"),
    )
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    import django

    django.setup()
    from bench_common import best_ms, fresh_database, synthetic_track
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from audiocache.models import CachedRendition, CacheTask, StreamDay
    from audiocache.qualities import BITRATES
    from audiocache.transcode.ffmpeg import ENCODER_PROFILE
    from mixtapes.models import Track

    try:
        fresh_database()
        rng = random.Random(3)
        now = timezone.now()
        cache_dir = Path(settings.AUDIO_CACHE_DIR)
        cache_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        qualities = list(BITRATES)
        n = args.renditions
        for start in range(0, n, 5000):
            tracks = []
            for i in range(start, min(n, start + 5000)):
                artist = f"Artist {i // 40:05d}"
                path = f"{artist}/Album {i // 10}/{i % 10:02d} Song {i}.flac"
                tracks.append(
                    synthetic_track(
                        path, f"Song {i}", artist, f"Album {i // 10}", now, duration=240.0, file_size=40_000_000
                    )
                )
            Track.objects.bulk_create(tracks)
            ids = list(Track.objects.filter(path__in=[t.path for t in tracks]).values_list("id", flat=True))
            renditions = []
            for track_id in ids:
                quality = qualities[track_id % 3]
                name = f"{track_id:032x}_{quality}_{BITRATES[quality]}k.mp3"
                (cache_dir / name).write_bytes(b"\xff")
                renditions.append(
                    CachedRendition(
                        track_id=track_id,
                        quality=quality,
                        bitrate=BITRATES[quality],
                        file_name=name,
                        size=rng.randint(3_000_000, 9_000_000),
                        source_size=40_000_000 if track_id % 10 else 1,  # a tenth are stale
                        source_mtime_ns=1,
                        encoder_profile=ENCODER_PROFILE,
                        hit_count=rng.randint(0, 50),
                        last_accessed_at=now - timedelta(days=rng.randint(0, 365)) if track_id % 4 else None,
                    )
                )
            CachedRendition.objects.bulk_create(renditions)
        for r in range(0, n, 20_000):  # spread the creation dates over a year
            CachedRendition.objects.filter(pk__gte=r, pk__lt=r + 20_000).update(
                created_at=now - timedelta(days=365 * r // n)
            )
        statuses = ["done"] * 8 + ["failed", "pending"]
        CacheTask.objects.bulk_create(
            CacheTask(track_id=1 + i * (n // 2000), quality="low", status=statuses[i % 10], error="boom" if i % 10 == 8 else "")
            for i in range(2000)
        )  # fmt: skip
        StreamDay.objects.bulk_create(
            StreamDay(day=timezone.localdate() - timedelta(days=d), hits=900, misses=100, bypasses=50)
            for d in range(30)
        )
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        print(f"{connection.vendor}: {n:,} tracks and renditions (and files) in {time.perf_counter() - started:.1f} s")

        admin = get_user_model().objects.create_superuser("bench", password=None)
        client = Client()
        client.force_login(admin)

        def get(url):
            def fetch():
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)

            return fetch

        def cacheclean():
            call_command(
                "cacheclean", "--dry-run", "--older-than", "180", "--max-size", "1G", "--orphans", stdout=StringIO()
            )

        base = "/admin/audiocache/cachedrendition/"
        runs = [
            ("changelist", get(base)),
            ("filtered", get(base + "?state=stale&quality__exact=medium")),
            ("search", get(base + "?q=Artist+00042")),
            ("missing", get(base + "?state=missing")),
            ("dashboard", get(base + "dashboard/")),
            ("tasks", get("/admin/audiocache/cachetask/")),
            ("cacheclean", cacheclean),
        ]
        print(f"{'page':<12}{'ms':>9}  target {TARGET_MS} ms")
        for label, fn in runs:
            ms = best_ms(fn, args.rounds, warm_up=True)
            print(f"{label:<12}{ms:>9.1f}  {'ok' if ms < TARGET_MS else 'SLOW'}")
            if args.queries:
                with CaptureQueriesContext(connection) as captured:
                    fn()
                slowest = sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:4]
                print(f"    {len(captured)} queries; slowest:")
                for query in slowest:
                    print(f"    {float(query['time']) * 1000:8.1f} ms  {query['sql'][:150]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
