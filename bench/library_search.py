#!/usr/bin/env python
"""Editor library search on a large library, against an unindexed baseline, in one run.

    .venv/bin/python bench/library_search.py [--tracks 100000] [--rounds 20]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/library_search.py

Creates TRACKS tracks (realistic words: 4,000 artists, 10 tracks per album) in a new
database (a temporary SQLite file, or the PostgreSQL database of DATABASE_URL: give it a
throwaway one, e.g. `createdb -h 127.0.0.1 -U postgres bench`, and drop it after), then times each query ROUNDS times, best of:

  baseline   the naive query: every word as icontains over title, artist and album
             (a full scan; what the editor would do without the trigram index)
  search     mixtapes.search.search_tracks (the editor's query: one page of 25)
  view       GET /library/search/?q=... through Django's test client (JSON included)

and prints milliseconds and the ratio search / baseline for each query.
"""

import argparse
import os
import random
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
    "silver",
    "ocean",
    "dust",
    "glass",
    "velvet",
    "northern",
    "midnight",
    "electric",
    "paper",
    "garden",
    "wild",
    "quiet",
    "broken",
    "neon",
    "forest",
    "morning",
    "signal",
    "satellite",
    "orchard",
    "harbor",
    "cathedral",
    "desert",
    "ember",
    "lantern",
    "meadow",
]
QUERIES = ["lantern", "velvet harbor", "midnight", "artist 1234", "zz-no-match", "ro"]


def title(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS).title() for _ in range(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="search-bench-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings", DATA_ROOT=str(work), LOG_LEVEL="warning", ALLOWED_HOSTS="testserver"
    )
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    import django

    django.setup()
    from bench_common import best_ms, fresh_database, synthetic_track
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Q
    from django.test import Client
    from django.utils import timezone

    from mixtapes.models import Track
    from mixtapes.search import normalize, search_tracks

    fresh_database()
    try:
        rng = random.Random(7)
        now = timezone.now()
        started = time.perf_counter()
        batch = []
        for n in range(args.tracks):
            artist = f"Artist {n // 25:04d} {rng.choice(WORDS).title()}"
            batch.append(
                synthetic_track(
                    f"{artist}/Album {n // 10}/{n % 10:02d}.flac", title(rng, rng.randint(1, 4)), artist,
                    title(rng, 2), now, album_artist=artist, track_number=n % 10 + 1, duration=200.0,
                    file_size=30_000_000,
                )
            )  # fmt: skip
            if len(batch) == 5000:
                Track.objects.bulk_create(batch)
                batch = []
        Track.objects.bulk_create(batch)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE mixtapes_track")
        print(f"{connection.vendor}: {args.tracks:,} tracks created in {time.perf_counter() - started:.1f} s")

        user = get_user_model().objects.create_user("bench")
        client = Client()
        client.force_login(user)

        def baseline(q: str):
            query = Track.objects.filter(missing_since__isnull=True)
            for word in normalize(q).split():
                query = query.filter(Q(title__icontains=word) | Q(artist__icontains=word) | Q(album__icontains=word))
            return list(query[:26])

        print(f"{'query':<16}{'matches':>9}{'baseline ms':>13}{'search ms':>11}{'view ms':>9}{'ratio':>8}")
        for q in QUERIES:
            matches = len(baseline(q))
            base_ms = best_ms(lambda q=q: baseline(q), args.rounds)
            search_ms = best_ms(lambda q=q: search_tracks(q), args.rounds)
            assert client.get("/library/search/", {"q": q}).status_code == 200
            view_ms = best_ms(lambda q=q: client.get("/library/search/", {"q": q}), args.rounds)
            shown = f"{matches}+" if matches > 25 else str(matches)
            print(f"{q:<16}{shown:>9}{base_ms:>13.1f}{search_ms:>11.1f}{view_ms:>9.1f}{search_ms / base_ms:>8.2f}")
    finally:
        if connection.vendor == "sqlite":
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
