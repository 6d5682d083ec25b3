#!/usr/bin/env python
"""Time to the first audio byte and to 10 s of audio for an uncached lossless track, in one run.

    .venv/bin/python bench/first_byte.py [--rounds 3] [--duration 240] [--workers 2]

Makes one pink-noise FLAC of DURATION seconds (it compresses like real music), scans it, puts it
on a public mixtape (so an anonymous client may stream it), then, ROUNDS times, asks a real
uvicorn (embedded pool of WORKERS workers, SQLite) for `GET /stream/<id>/?quality=medium`:

  progressive on   AUDIO_CACHE_PROGRESSIVE=true, nothing cached: the MP3 as ffmpeg writes it
  cache hit        the same server and URL once that transcode has finished
  progressive off  AUDIO_CACHE_PROGRESSIVE=false, nothing cached: the original FLAC, while
                   the MP3 is made in the background

Before each uncached request the queue is left to go idle and `manage.py cacheclean --all`
empties the cache. The clock starts when the request is sent (on an open connection, as a
player's) and notes when the body's first byte arrived and when it held 10 s of audio:

  MP3   ID3v2 tag + Xing frame (audio_offset, from audiocache.transcode.mp3.read_layout) + 10 s at the
        frame's bitrate (192 kbit/s at medium: 240,000 bytes)
  FLAC  10 / DURATION of the file: an approximation, FLAC's bitrate follows the music

Prints the best and median of each, the whole track's time and size, and whether the first
byte of a progressive stream arrives within the target of 300 ms. To show where that time goes,
each round also times the floor under it, bare ffmpeg with the transcoder's exact arguments
from its start to its first audio frame in the file, and reads when the progressive request's
task was queued and claimed (the task's own timestamps; same machine, same clock).
Everything (DATA_ROOT, MUSIC_ROOT, the SQLite database, the cache, static files) lives in a
temporary folder removed at the end.
"""

import argparse
import contextlib
import http.client
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from audiocache.delivery.zerocopy import UVICORN_OPTIONS  # noqa: E402 - the way make run starts uvicorn

AUDIO_SECONDS = 10
TARGET_MS = 300
QUALITY = "medium"
READ_SIZE = 64 * 1024
HEAD_SIZE = 64 * 1024  # enough for the ID3v2 tag and the Xing frame of a rendition without a cover
IDLE_TIMEOUT = 300  # seconds: a 4-minute transcode takes a few seconds here
EXPECTED_HEADER = {"progressive on": "progressive", "cache hit": "hit", "progressive off": "miss"}
MODES = tuple(EXPECTED_HEADER)


@dataclass(frozen=True)
class Timing:
    """One request, times in seconds from the request's send."""

    sent_at: float  # wall clock, to compare with the task's timestamps
    cache_header: str
    first_byte: float
    ten_seconds: float | None  # None: the body never held 10 s of audio (a short response)
    whole: float
    size: int


@dataclass(frozen=True)
class Round:
    timings: dict[str, Timing]  # by mode
    bare_ffmpeg: float  # seconds from ffmpeg's start to its first audio frame in the file
    queued: float  # seconds from the progressive request's send until its task existed
    claimed: float  # ... until a worker claimed that task


# --- Environment and data -----------------------------------------------------------------


def bench_environment(work: Path, secret_key: str) -> dict[str, str]:
    """This process's environment with every setting pointing into ``work``.

    Inherited settings that would change what is measured (another database, Redis, cache
    options from the developer's shell) are dropped; real variables win over a .env file, so
    the paths are set explicitly and nothing can reach the checkout's data/ folder."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "AUDIO_CACHE_")) and key not in ("DATABASE_URL", "REDIS_URL", "HTTPS")
    }
    data = work / "data"
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATA_ROOT": str(data),
        "MUSIC_ROOT": str(work / "music"),
        "AUDIO_CACHE_DIR": str(data / "cache" / "audio"),
        "STATIC_ROOT": str(work / "static"),
        "DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}",
        "SECRET_KEY": secret_key,
        "LOG_LEVEL": "warning",
    }


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(REPO / "manage.py"), *args], cwd=REPO, env=env, check=True, capture_output=True)


def make_library(env: dict[str, str], duration: float) -> int:
    """Render, scan and publish one FLAC; returns its track id."""
    from bench_common import fresh_database
    from django.contrib.auth.models import User

    from mixtapes.demo import render_audio
    from mixtapes.models import Mixtape, MixtapeTrack, Track

    music = Path(env["MUSIC_ROOT"])
    Path(env["STATIC_ROOT"]).mkdir()  # WhiteNoise warns about a missing folder on every start
    print(f"Rendering a {duration:g} s pink-noise FLAC in {music} ...")
    render_audio(music / "01 - Pink Noise.flac", kind="flac", duration=duration, noise=True)
    fresh_database()
    manage(env, "scanlibrary", "-v", "0")
    track = Track.objects.get()
    if not track.is_lossless:
        sys.exit(f"error: the scan saw {track.codec}, not a lossless track")
    owner = User.objects.create_user("bench")
    mixtape = Mixtape.objects.create(owner=owner, title="First byte", is_public=True)
    MixtapeTrack.objects.create(mixtape=mixtape, track=track, position=1)
    return track.pk


# --- Server and queue -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except urllib.error.HTTPError as exc:
            sys.exit(f"error: /healthz answered {exc.code}: {exc.read().decode(errors='replace')[:500]}")
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"error: uvicorn did not answer /healthz on port {port} within {timeout:g} s")
            time.sleep(0.1)


@contextlib.contextmanager
def server(env: dict[str, str], *, progressive: bool, workers: int, track_id: int):
    """A uvicorn process (embedded worker pool) for one mode; yields its port."""
    port = free_port()
    server_env = {
        **env,
        "AUDIO_CACHE_MAX_WORKERS": str(workers),
        "AUDIO_CACHE_PROGRESSIVE": "true" if progressive else "false",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", *UVICORN_OPTIONS,
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env=server_env,
    )  # fmt: skip
    try:
        wait_healthy(port, process)
        warm_up(port, track_id)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def warm_up(port: int, track_id: int) -> None:
    """One request through the stream view that queues nothing (HEAD of the original): a fresh
    server opens its stream thread and database connection here, not in the measured request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("HEAD", f"/stream/{track_id}/?quality=original")
        conn.getresponse().read()
    finally:
        conn.close()


def wait_until_idle() -> None:
    """Until no task is pending or running: a transcode still going would share the CPU."""
    from audiocache.models import CacheTask

    deadline = time.monotonic() + IDLE_TIMEOUT
    while CacheTask.objects.filter(status__in=CacheTask.ACTIVE_STATUSES).exists():
        if time.monotonic() > deadline:
            sys.exit(f"error: the queue was still busy after {IDLE_TIMEOUT} s")
        time.sleep(0.05)


def purge_cache(env: dict[str, str]) -> None:
    from audiocache.models import CachedRendition

    wait_until_idle()  # a transcode finishing after the purge would cache the track again
    manage(env, "cacheclean", "--all")
    if CachedRendition.objects.exists():
        sys.exit("error: cacheclean --all left a rendition behind")


# --- Measuring --------------------------------------------------------------------------------


def ten_seconds_bytes(content_type: str, size: int, head: bytes, duration: float) -> int | None:
    """How many body bytes hold the first 10 s of audio; None until ``head`` says."""
    from audiocache.transcode import mp3

    if content_type != "audio/mpeg":
        # The original FLAC: a share of the file in proportion to time (an approximation).
        return round(size * AUDIO_SECONDS / duration)
    try:
        layout = mp3.read_layout(head)
    except mp3.NotYet:
        return None
    return layout.audio_offset + AUDIO_SECONDS * layout.frame.bitrate_kbps * 1000 // 8


def timed_get(port: int, path: str, duration: float) -> Timing:
    """GET ``path`` and read the whole body, noting when the first byte and 10 s of audio came."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.connect()  # a player's connection is open already; the clock starts at the request
    try:
        sent_at, started = time.time(), time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        if response.status != 200:
            sys.exit(f"error: GET {path} answered {response.status}: {response.read()[:300]!r}")
        content_type = response.getheader("Content-Type", "")
        size = int(response.getheader("Content-Length", "0"))
        head, received = b"", 0
        first_byte = ten_seconds = needed = None
        while chunk := response.read1(READ_SIZE):
            elapsed = time.perf_counter() - started
            received += len(chunk)
            first_byte = first_byte if first_byte is not None else elapsed
            if needed is None:
                head = (head + chunk)[:HEAD_SIZE]
                needed = ten_seconds_bytes(content_type, size, head, duration)
            if ten_seconds is None and needed is not None and received >= needed:
                ten_seconds = elapsed
        whole = time.perf_counter() - started
    finally:
        conn.close()
    if first_byte is None:
        sys.exit(f"error: GET {path} sent no body")
    if received != size:
        print(f"  warning: {received:,} bytes received, Content-Length said {size:,}")
    return Timing(sent_at, response.getheader("X-Audio-Cache", "-"), first_byte, ten_seconds, whole, received)


def bare_ffmpeg_first_frame(track_id: int, out_dir: Path) -> float:
    """Seconds from starting ffmpeg with the transcoder's exact arguments to its first audio
    frame in the file: the floor under a progressive first byte (process start-up, opening
    the FLAC, the encoder's first frame)."""
    from audiocache.transcode import mp3
    from audiocache.transcode.ffmpeg import SourceFacts, build_command
    from mixtapes.files import source_state
    from mixtapes.models import Track

    track = Track.objects.get(pk=track_id)
    source = source_state(track)
    facts = SourceFacts(track.sample_rate, track.channels, track.has_cover, track.duration)
    output = out_dir / "bare.mp3"
    output.unlink(missing_ok=True)
    command = build_command(source.path, output, QUALITY, facts)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        while True:
            # Polled as a progressive request polls ffmpeg's file, only more often (1 ms).
            with contextlib.suppress(FileNotFoundError, mp3.NotYet), open(output, "rb") as written:
                mp3.read_layout(written.read(HEAD_SIZE))
                return time.perf_counter() - started
            if process.poll() is not None:
                sys.exit("error: bare ffmpeg ended before writing an audio frame")
            time.sleep(0.001)
    finally:
        process.wait()  # let it finish: the measurements after it get a quiet machine


def queue_delays(track_id: int, sent_at: float) -> tuple[float, float]:
    """Seconds from a request's send until its task was queued and until a worker claimed it."""
    from audiocache.models import CacheTask

    task = CacheTask.objects.filter(track_id=track_id, quality=QUALITY).latest("id")
    return task.created_at.timestamp() - sent_at, task.started_at.timestamp() - sent_at


def run_round(env: dict[str, str], track_id: int, args) -> Round:
    """The three modes once (a server with progressive streaming, then one without), and the floor."""
    path = f"/stream/{track_id}/?quality={QUALITY}"
    results = {}
    bare = bare_ffmpeg_first_frame(track_id, Path(env["DATA_ROOT"]))
    with server(env, progressive=True, workers=args.workers, track_id=track_id) as port:
        purge_cache(env)
        results["progressive on"] = timed_get(port, path, args.duration)
        wait_until_idle()  # the transcode that request followed is recorded: now a hit
        queued, claimed = queue_delays(track_id, results["progressive on"].sent_at)
        results["cache hit"] = timed_get(port, path, args.duration)
    with server(env, progressive=False, workers=args.workers, track_id=track_id) as port:
        purge_cache(env)
        results["progressive off"] = timed_get(port, path, args.duration)
        wait_until_idle()  # its background transcode ends before the server stops
    return Round(results, bare, queued, claimed)


# --- Output ---------------------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def median_ms(values) -> str:
    return ms(statistics.median(values))


def print_round(number: int, round_: Round) -> None:
    parts = [f"{mode} {ms(t.first_byte)} / {ms(t.ten_seconds)}" for mode, t in round_.timings.items()]
    print(f"round {number}: first byte / 10 s of audio: {', '.join(parts)}; bare ffmpeg {ms(round_.bare_ffmpeg)}")


def best_and_median(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return f"{'-':>9} {'-':>9}"
    return f"{ms(min(known)):>9} {ms(statistics.median(known)):>9}"


def headers_seen(timings: list[Timing]) -> str:
    counts = Counter(t.cache_header for t in timings)
    return ", ".join(header if n == len(timings) else f"{header} x{n}" for header, n in counts.items())


def print_table(rounds: list[Round]) -> None:
    print()
    print(
        f"{'':16} {'X-Audio-Cache':>13}  {'first byte':^19}  {'10 s of audio':^19}  {'whole track':>11}  {'bytes':>11}"
    )
    print(f"{'mode':16} {'':>13}  {'best':>9} {'median':>9}  {'best':>9} {'median':>9}  {'median':>11}  {'':>11}")
    for mode in MODES:
        timings = [r.timings[mode] for r in rounds]
        print(
            f"{mode:16} {headers_seen(timings):>13}  "
            f"{best_and_median([t.first_byte for t in timings])}  "
            f"{best_and_median([t.ten_seconds for t in timings])}  "
            f"{median_ms(t.whole for t in timings):>11}  {timings[0].size:>11,}"
        )
        unexpected = [t.cache_header for t in timings if t.cache_header != EXPECTED_HEADER[mode]]
        if unexpected:
            print(f"  warning: expected X-Audio-Cache: {EXPECTED_HEADER[mode]}, saw {', '.join(unexpected)}")


def print_summary(rounds: list[Round], args) -> None:
    print_table(rounds)
    print(
        f"10 s of audio: MP3 = ID3v2 tag + Xing frame + {AUDIO_SECONDS} s at the frame's bitrate; "
        f"FLAC = {AUDIO_SECONDS}/{args.duration:g} of the file (an approximation)."
    )
    print(
        f"where the progressive first byte's time goes (medians): task queued {median_ms(r.queued for r in rounds)}, "
        f"claimed by a worker {median_ms(r.claimed for r in rounds)} after the request; bare ffmpeg from its "
        f"start to its first frame in the file {median_ms(r.bare_ffmpeg for r in rounds)} "
        f"(best {ms(min(r.bare_ffmpeg for r in rounds))})"
    )
    progressive = statistics.median(r.timings["progressive on"].first_byte for r in rounds) * 1000
    verdict = "met" if progressive < TARGET_MS else "NOT met"
    print(f"first byte progressive: {progressive:.0f} ms median (target < {TARGET_MS} ms): {verdict}")


def print_machine(when: str) -> None:
    load = " ".join(f"{n:.2f}" for n in os.getloadavg())
    print(f"{when}: nproc {len(os.sched_getaffinity(0))}, load average {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=240, help="length of the FLAC in seconds")
    parser.add_argument("--workers", type=int, default=2, help="AUDIO_CACHE_MAX_WORKERS of the server")
    args = parser.parse_args()
    if args.rounds < 1 or args.workers < 1 or args.duration <= AUDIO_SECONDS:
        parser.error(f"--rounds and --workers must be at least 1, --duration over {AUDIO_SECONDS} s")

    print_machine("start")
    work = Path(tempfile.mkdtemp(prefix="first-byte-bench-"))
    env = bench_environment(work, secrets.token_urlsafe(50))
    os.environ.clear()  # this process's ORM must see the same throwaway database as the servers
    os.environ.update(env)
    import django

    django.setup()
    try:
        track_id = make_library(env, args.duration)
        print(f"{args.rounds} rounds, {args.workers} workers, GET /stream/{track_id}/?quality={QUALITY}")
        rounds = []
        for number in range(1, args.rounds + 1):
            rounds.append(run_round(env, track_id, args))
            print_round(number, rounds[-1])
        print_summary(rounds, args)
        print_machine("end")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
