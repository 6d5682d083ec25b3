"""Helpers the benchmark scripts share (imported after django.setup())."""

import sys
import time


def fresh_database() -> None:
    """Migrate, and refuse a database that already holds a library: benchmarks fill and time
    their own data, and must never run against a real one."""
    from django.core.management import call_command

    from mixtapes.models import Track

    call_command("migrate", verbosity=0)
    if Track.objects.exists():
        sys.exit("error: the database already holds tracks; give the benchmark a throwaway database")


def best_ms(fn, rounds: int, *, warm_up: bool = False) -> float:
    """The fastest of ``rounds`` calls of ``fn``, in milliseconds."""
    if warm_up:
        fn()  # templates, caches, the first connection
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def synthetic_track(path: str, title: str, artist: str, album: str, scanned_at, **fields):
    """An unsaved lossless Track with no file behind it (for bulk_create), search text included."""
    from mixtapes.models import Track
    from mixtapes.search import search_text_for

    defaults = {"codec": "flac", "is_lossless": True, "file_mtime_ns": 1}
    track = Track(path=path, title=title, artist=artist, album=album, scanned_at=scanned_at, **{**defaults, **fields})
    track.search_text = search_text_for(track)
    return track
