"""Load: 500 listeners stream renditions at playback speed through one uvicorn process for 60 s
while its embedded worker transcodes a batch of 50 tracks (the single-node topology).

Run with ``make stress`` (never part of ``make test``). Every stream must complete with the exact
bytes of its rendition, no request may fail, the server's memory must stay bounded and the batch
must complete. The figures are printed at the end (docs/reliability.md keeps the last ones).

Knobs (environment): STRESS_LISTENERS (500), STRESS_SECONDS (60: the length of each rendition,
streamed at its own bitrate, 192 kbit/s = 24 KB/s), STRESS_BATCH (50 tracks), STRESS_WORKERS (1
embedded transcoding worker), STRESS_RSS_GROWTH_MB (300: allowed growth of the server's RSS).
"""

import asyncio
import hashlib
import os
import statistics
import subprocess
import threading
import time

import pytest

from audiocache.models import CacheBatch
from audiocache.queue import batches
from audiocache.seed_api import AudioCache
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import REPO, UVICORN, free_port, wait_for_http
from tests.factories import MixtapeFactory, MixtapeTrackFactory

pytestmark = [
    pytest.mark.stress,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.environ.get("STRESS") != "1", reason="load test: run it with `make stress`"),
]

LISTENERS = int(os.environ.get("STRESS_LISTENERS", "500"))
SECONDS = int(os.environ.get("STRESS_SECONDS", "60"))
BATCH = int(os.environ.get("STRESS_BATCH", "50"))
WORKERS = int(os.environ.get("STRESS_WORKERS", "1"))
RSS_GROWTH_MB = int(os.environ.get("STRESS_RSS_GROWTH_MB", "300"))
RATE = 192_000 // 8  # bytes per second of a medium (192k) rendition: playback speed
STREAM_TRACKS = 4
STAGGER = 5.0  # seconds over which the listeners arrive


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """The server's RSS once a second."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self):
        while not self.stop.wait(1.0):
            try:
                self.samples.append(proc_rss_mb(self.pid))
            except OSError:
                return


async def listen(n, port, track_id, expected_digest, expected_size, results):
    """One player: GET the rendition and read it no faster than playback speed."""
    await asyncio.sleep(STAGGER * n / LISTENERS)
    started = time.monotonic()
    outcome = {"n": n, "ok": False}
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /stream/{track_id}/?quality=medium HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        outcome["ttfb"] = time.monotonic() - started
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        outcome["status"] = int(status_line.split()[1])
        digest, received, body_started = hashlib.sha256(), 0, time.monotonic()
        while True:
            chunk = await reader.read(16384)
            if not chunk:
                break
            digest.update(chunk)
            received += len(chunk)
            ahead = received / RATE - (time.monotonic() - body_started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        writer.close()
        outcome.update(
            received=received,
            seconds=time.monotonic() - started,
            cache=headers.get("x-audio-cache"),
            ok=outcome["status"] == 200
            and received == expected_size == int(headers.get("content-length", -1))
            and digest.hexdigest() == expected_digest,
        )
    except Exception as exc:
        outcome["error"] = repr(exc)
    results.append(outcome)


async def all_listeners(port, streams):
    results = []
    await asyncio.gather(
        *(listen(n, port, *streams[n % len(streams)], results) for n in range(LISTENERS)),
    )
    return results


def start_server(manage_env, tmp_path, port):
    log = open(tmp_path / "uvicorn.log", "wb")  # noqa: SIM115 - closed after the process
    process = subprocess.Popen(
        [*UVICORN, "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", "--backlog", "2048"],
        cwd=REPO, env={**manage_env, "AUDIO_CACHE_MAX_WORKERS": str(WORKERS)},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
    return process, log


@pytest.mark.timeout(SECONDS * 4 + 600)
def test_500_listeners_at_playback_speed_while_a_batch_transcodes(make_audio, manage_env, tmp_path, settings):
    for n in range(STREAM_TRACKS):
        make_audio(f"listen/{n}.flac", duration=SECONDS, tags={"title": f"Listen {n}"})
    for n in range(BATCH):
        make_audio(f"batch/{n:02d}.flac", duration=20, noise=True)
    scan_library()
    mixtape = MixtapeFactory(is_public=True)  # anonymous listeners, like a shared link
    streams = []
    for track in Track.objects.filter(path__startswith="listen/").order_by("path"):
        data = AudioCache().transcode_file(track, "medium").read_bytes()
        MixtapeTrackFactory(mixtape=mixtape, track=track)
        streams.append((track.pk, hashlib.sha256(data).hexdigest(), len(data)))

    port = free_port()
    server, log = start_server(manage_env, tmp_path, port)
    try:
        time.sleep(2)
        rss_before = proc_rss_mb(server.pid)
        cpu_before = proc_cpu_seconds(server.pid)
        sampler = Sampler(server.pid)
        sampler.start()
        batch_tracks = Track.objects.filter(path__startswith="batch/")
        batch = batches.create_batch(batch_tracks, ["medium"], label="stress batch")
        started = time.monotonic()
        results = asyncio.run(all_listeners(port, streams))
        streamed_for = time.monotonic() - started
        cpu_streaming = proc_cpu_seconds(server.pid) - cpu_before

        deadline = time.monotonic() + 600
        while not batches.announce_if_finished(batch).finished and time.monotonic() < deadline:
            time.sleep(1)
        batch.refresh_from_db()
        summary = batches.batch_counts(batch)
        batch_seconds = (batch.finished_at - batch.created_at).total_seconds() if batch.finished_at else None
        sampler.stop.set()
        sampler.join()
        assert server.poll() is None, "the server died"
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    failed = [r for r in results if not r["ok"]]
    ttfb = sorted(r["ttfb"] for r in results if "ttfb" in r)
    durations = sorted(r["seconds"] for r in results if "seconds" in r)
    total_bytes = sum(r.get("received", 0) for r in results)
    peak = max(sampler.samples, default=rss_before)
    figures = [
        f"listeners: {LISTENERS} (arriving over {STAGGER:g} s), {len(streams)} renditions of {SECONDS} s at 192k, read at {RATE} B/s",
        f"streams complete with the exact bytes: {LISTENERS - len(failed)}/{LISTENERS}; failed: {len(failed)}",
        f"time to first byte: p50 {statistics.median(ttfb) * 1000:.0f} ms, p95 {ttfb[int(len(ttfb) * 0.95) - 1] * 1000:.0f} ms, max {ttfb[-1] * 1000:.0f} ms",
        f"stream duration: min {durations[0]:.1f} s, median {statistics.median(durations):.1f} s, max {durations[-1]:.1f} s (playback {streams[0][2] / RATE:.1f} s)",
        f"bytes streamed: {total_bytes / 1e6:.0f} MB in {streamed_for:.1f} s = {total_bytes / streamed_for / 1e6:.1f} MB/s",
        f"server RSS: {rss_before:.0f} MB before, peak {peak:.0f} MB (+{peak - rss_before:.0f} MB, bound +{RSS_GROWTH_MB} MB)",
        f"server CPU while streaming: {cpu_streaming:.1f} s in {streamed_for:.1f} s ({cpu_streaming / streamed_for * 100:.0f} % of one core, incl. the worker threads, not ffmpeg)",
        f"batch: {summary} of {BATCH} tracks x 20 s with {WORKERS} embedded worker(s), finished after {batch_seconds:.1f} s"
        if batch_seconds is not None
        else f"batch: NOT finished: {summary}",
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
    ]
    print("\n== make stress figures ==\n" + "\n".join(figures), flush=True)
    assert not failed, failed[:5]
    assert peak - rss_before < RSS_GROWTH_MB
    assert batch_seconds is not None and summary.cached == BATCH and summary.failed == 0
    assert CacheBatch.objects.get(pk=batch.pk).finished_at is not None
