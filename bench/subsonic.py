#!/usr/bin/env python
"""The Subsonic API on a large library, against the app's own pages, in one run.

    .venv/bin/python bench/subsonic.py [--tracks 100000] [--rounds 50]

Creates TRACKS tracks (4,000 artists, albums of 10) in a temporary SQLite database, a mixtape of
100 of them, and one real 3 s FLAC with its low rendition made, then times through Django's test
client (no network), ROUNDS times each, and prints p50 and p95 in milliseconds:

  getPlaylist     the 100-track mixtape as a playlist (JSON)
  search3         a two-word query: songs, albums, artists (JSON)
  getArtists      every artist under its letter (JSON)
  stream hit      /rest/stream?maxBitRate=128 of the cached rendition (whole body read)
  /stream/ hit    /stream/<id>/?quality=low, the same bytes, the baseline

and the CPU time per request of the two stream hits and their ratio (goal: the API costs no more
than /stream/). The first getArtists after the library changes builds the artist and album index
once (printed apart); the timed calls find it built.
"""

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORDS = [
    "blue",
    "night",
    "river",
    "city",
    "golden",
    "dream",
    "fire",
    "rain",
    "summer",
    "winter",
    "echo",
    "shadow",
    "light",
    "heart",
    "road",
    "storm",
]


def percentiles(fn, rounds: int) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, CPU ms per call) of ``rounds`` calls after one warm-up."""
    fn()
    times = []
    cpu_started = time.process_time()
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    cpu = (time.process_time() - cpu_started) * 1000 / rounds
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="subsonic-bench-"))
    music = work / "music"
    music.mkdir()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings", DATA_ROOT=str(work), MUSIC_ROOT=str(music), LOG_LEVEL="warning",
        ALLOWED_HOSTS="testserver", AUDIO_CACHE_MAX_WORKERS="0", LIBRARY_WATCH="false",
    )  # fmt: skip
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    import django

    django.setup()
    from bench_common import fresh_database, synthetic_track
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from audiocache.seed_api import AudioCache
    from mixtapes.library import scan_library
    from mixtapes.models import Mixtape, MixtapeTrack, Track
    from subsonic import services

    fresh_database()
    rng = random.Random(3)
    now = timezone.now()
    batch = []
    for n in range(args.tracks):
        artist = f"Artist {n // 25:04d} {rng.choice(WORDS).title()}"
        title = " ".join(rng.choice(WORDS).title() for _ in range(rng.randint(1, 3)))
        batch.append(
            synthetic_track(f"{artist}/Album {n // 10}/{n % 10:02d}.flac", title, artist, f"Album {n // 10}", now,
                            album_artist=artist, track_number=n % 10 + 1, duration=200.0, file_size=30_000_000)
        )  # fmt: skip
        if len(batch) == 5000:
            Track.objects.bulk_create(batch)
            batch = []
    Track.objects.bulk_create(batch)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anoisesrc=d=3:c=pink", "-ac", "2", str(music / "real.flac")],
        check=True,
    )
    scan_library(music)
    real = Track.objects.get(path="real.flac")
    AudioCache().transcode_file(real, "low")

    user = get_user_model().objects.create_user("bench")
    password = services.new_streaming_password(user)
    mixtape = Mixtape.objects.create(owner=user, title="Hundred")
    ids = [*Track.objects.order_by("?").values_list("pk", flat=True)[:99], real.pk]
    MixtapeTrack.objects.bulk_create(
        MixtapeTrack(mixtape=mixtape, track_id=t, position=i) for i, t in enumerate(ids, 1)
    )

    api, page = Client(), Client()
    page.force_login(user)
    token = hashlib.md5((password + "5a1t").encode(), usedforsecurity=False).hexdigest()  # what apps send
    auth = {"u": "bench", "t": token, "s": "5a1t", "f": "json", "c": "bench"}

    def call(method, **params):
        response = api.get(f"/rest/{method}", {**auth, **params})
        assert response.json()["subsonic-response"]["status"] == "ok", response.content[:300]

    started = time.perf_counter()
    call("getArtists")
    print(
        f"{args.tracks:,} tracks; the artist and album index built in {(time.perf_counter() - started) * 1000:.0f} ms"
    )

    from asgiref.sync import async_to_sync

    async def collect(chunks):
        return b"".join([chunk async for chunk in chunks])

    def drain(response):
        data = async_to_sync(collect)(response.streaming_content) if response.streaming else response.content
        assert response.status_code == 200 and response["X-Audio-Cache"] == "hit", response.status_code
        return data

    rows = [
        ("getPlaylist", lambda: call("getPlaylist", id=f"pl-{mixtape.pk}")),
        ("search3", lambda: call("search3", query="golden river")),
        ("getArtists", lambda: call("getArtists")),
        ("stream hit", lambda: drain(api.get("/rest/stream", {**auth, "id": real.pk, "maxBitRate": 128}))),
        ("/stream/ hit", lambda: drain(page.get(f"/stream/{real.pk}/?quality=low"))),
    ]
    print(f"{'call':<14}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms':>9}")
    cpu = {}
    for name, fn in rows:
        p50, p95, cpu[name] = percentiles(fn, args.rounds)
        print(f"{name:<14}{p50:>9.1f}{p95:>9.1f}{cpu[name]:>9.2f}")
    print(f"stream hit CPU / /stream/ hit CPU: {cpu['stream hit'] / cpu['/stream/ hit']:.2f}")
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(lambda: [rows[3][1]() for _ in range(200)])
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
