#!/usr/bin/env python
"""A burst of listeners starting uncached tracks at once, against a burst of cache hits.

    .venv/bin/python bench/progressive_burst.py [--listeners 100] [--tracks 1] [--duration 60]
                                                [--workers 2] [--rounds 2]

Makes TRACKS pink-noise FLACs of DURATION seconds on a public mixtape, starts a real uvicorn
(embedded pool of WORKERS workers, SQLite, progressive streaming on) and, ROUNDS times:

  uncached  the cache emptied, LISTENERS clients (spread over the tracks) send
            `GET /stream/<id>/?quality=medium` at the same moment and read the whole body
  hits      once every transcode is done, the same burst again: the baseline

For each burst it prints how the answers came (X-Audio-Cache), whether every body had its
Content-Length and whether all listeners of a track got the same bytes (after the first
1,000, where the Xing frame of a rendition still being made differs), and the time to the
response headers and to the whole body (median, 95th percentile, worst). Listeners of a track
no worker reaches within AUDIO_CACHE_PROGRESSIVE_WAIT get the original (`miss`): with more
tracks than workers, expect some.
"""

import argparse
import asyncio
import hashlib
import os
import secrets
import shutil
import statistics
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import first_byte as fb  # the same throwaway environment and server start-up

QUALITY = "medium"


@dataclass
class Answer:
    track_id: int
    cache_header: str
    complete: bool
    headers_after: float
    body_after: float
    digest: str  # of the body after its first 1,000 bytes


def make_library(env: dict[str, str], tracks: int, duration: float) -> list[int]:
    """Render, scan and publish the FLACs; returns their track ids."""
    from bench_common import fresh_database
    from django.contrib.auth.models import User

    from mixtapes.demo import render_audio
    from mixtapes.models import Mixtape, MixtapeTrack, Track

    music = Path(env["MUSIC_ROOT"])
    Path(env["STATIC_ROOT"]).mkdir()
    print(f"Rendering {tracks} pink-noise FLAC(s) of {duration:g} s in {music} ...")
    for n in range(tracks):
        render_audio(music / f"{n:02d} - Noise.flac", kind="flac", duration=duration, noise=True)
    fresh_database()
    fb.manage(env, "scanlibrary", "-v", "0")
    owner = User.objects.create_user("bench")
    mixtape = Mixtape.objects.create(owner=owner, title="Burst", is_public=True)
    ids = list(Track.objects.order_by("path").values_list("pk", flat=True))
    MixtapeTrack.objects.bulk_create(MixtapeTrack(mixtape=mixtape, track_id=pk, position=n) for n, pk in enumerate(ids))
    return ids


async def listen(port: int, track_id: int) -> Answer:
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /stream/{track_id}/?quality={QUALITY} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    headers_after = loop.time() - started
    fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line)
    body = await reader.read()
    writer.close()
    return Answer(
        track_id,
        fields.get("x-audio-cache", "-"),
        len(body) == int(fields.get("content-length", -1)),
        headers_after,
        loop.time() - started,
        hashlib.sha256(body[1000:]).hexdigest(),
    )


async def burst(port: int, track_ids: list[int], listeners: int) -> list[Answer]:
    return await asyncio.gather(*(listen(port, track_ids[n % len(track_ids)]) for n in range(listeners)))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def report(label: str, answers: list[Answer]) -> float:
    """Print one burst's figures; returns its median time to the headers."""
    states = Counter(a.cache_header for a in answers)
    bodies = defaultdict(set)
    for a in answers:
        bodies[(a.track_id, a.cache_header == "miss")].add(a.digest)
    mixed = sum(1 for digests in bodies.values() if len(digests) > 1)
    heads = [a.headers_after for a in answers]
    wholes = [a.body_after for a in answers]
    median_head = statistics.median(heads)
    print(
        f"{label:9} {', '.join(f'{k} {v}' for k, v in sorted(states.items())):28} "
        f"complete {sum(a.complete for a in answers)}/{len(answers)}, tracks with differing bodies {mixed}; "
        f"headers {median_head * 1000:.0f} / {percentile(heads, 0.95) * 1000:.0f} / {max(heads) * 1000:.0f} ms, "
        f"whole body {statistics.median(wholes):.2f} / {max(wholes):.2f} s (median / p95 / worst; median / worst)"
    )
    return median_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--tracks", type=int, default=1)
    parser.add_argument("--duration", type=float, default=60, help="length of each FLAC in seconds")
    parser.add_argument("--workers", type=int, default=2, help="AUDIO_CACHE_MAX_WORKERS of the server")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if min(args.listeners, args.tracks, args.workers, args.rounds) < 1 or args.duration <= 1:
        parser.error("--listeners, --tracks, --workers and --rounds must be at least 1, --duration over 1 s")

    fb.print_machine("start")
    work = Path(tempfile.mkdtemp(prefix="progressive-burst-bench-"))
    env = fb.bench_environment(work, secrets.token_urlsafe(50))
    os.environ.clear()  # this process's ORM must see the same throwaway database as the server
    os.environ.update(env)
    import django

    django.setup()
    try:
        track_ids = make_library(env, args.tracks, args.duration)
        print(f"{args.listeners} listeners over {args.tracks} track(s), {args.workers} workers, quality {QUALITY}")
        with fb.server(env, progressive=True, workers=args.workers, track_id=track_ids[0]) as port:
            for number in range(1, args.rounds + 1):
                fb.purge_cache(env)
                print(f"round {number}")
                uncached = report("uncached", asyncio.run(burst(port, track_ids, args.listeners)))
                fb.wait_until_idle()
                hits = report("hits", asyncio.run(burst(port, track_ids, args.listeners)))
                print(f"          headers, uncached / hits (medians): {uncached / hits:.1f}x")
        fb.print_machine("end")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
