"""Progressive streaming through a live uvicorn (and nginx): curl and ffprobe read an MP3 that
the server's own worker pool is still writing.

Under uvicorn a request that arrives before the transcode has written anything waits for it on
the event loop (``PendingResponse``), not in a thread; these tests go through that path.
"""

import subprocess
import time

import pytest

from audiocache.models import CachedRendition, CacheTask
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import SLOW_FFMPEG, dying_ffmpeg, same_but_the_xing_frame, wait_until
from tests.e2e.conftest import curl, ffprobe, headers_of
from tests.factories import MixtapeFactory, MixtapeTrackFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECONDS = 12


@pytest.fixture
def track(make_audio):
    """A 12-second FLAC of pink noise with a cover, on a public mixtape, not cached."""
    make_audio("Live/01 noise.flac", kind="flac", duration=SECONDS, noise=True, cover=True)
    scan_library()
    track = Track.objects.get()
    MixtapeTrackFactory(track=track, mixtape=MixtapeFactory(is_public=True))
    return track


@pytest.fixture
def server(uvicorn_server):
    """``server(**env)``: uvicorn with one embedded worker, transcoding at 3x real time (about 4 s);
    ``server.stop(base)`` stops it and returns its log."""

    def start(**env):
        return uvicorn_server(
            **{"AUDIO_CACHE_MAX_WORKERS": "1", "AUDIO_CACHE_FFMPEG": SLOW_FFMPEG, "SLOW_FFMPEG_RATE": "3", **env}
        )

    start.stop = uvicorn_server.stop
    return start


def headers_in(path) -> dict[str, str]:
    return headers_of(path.read_bytes())


def finished_bytes(settings, track) -> bytes:
    wait_until(lambda: CachedRendition.objects.filter(track=track).exists(), 60, 0.05, "the rendition")
    return (settings.AUDIO_CACHE_DIR / CachedRendition.objects.get(track=track).file_name).read_bytes()


def transcoding(track) -> bool:
    return CacheTask.objects.filter(track=track, status="running").exists() and not CachedRendition.objects.exists()


def test_curl_and_ffprobe_read_a_rendition_in_the_making(server, track, settings, tmp_path):
    url = f"{server()}/stream/{track.pk}/?quality=medium"

    first = curl(
        "-r", "0-65535", "-o", str(tmp_path / "first.bin"), "-D", str(tmp_path / "h1"), "-w", "%{time_total}", url
    )
    assert first.returncode == 0, first.stderr
    task_rows = list(CacheTask.objects.values_list("status", "started_at", "finished_at"))
    assert transcoding(track), f"the first bytes came after ffmpeg ended ({first.stdout} s): {task_rows}"
    head = headers_in(tmp_path / "h1")
    assert head["x-audio-cache"] == "progressive"
    size = int(head["content-range"].rpartition("/")[2])

    info = ffprobe(url)
    assert info["streams"][0]["codec_name"] == "mp3"
    # From the announced size and the bitrate: the Xing frame still holds ffmpeg's placeholders.
    assert float(info["format"]["duration"]) == pytest.approx(SECONDS, abs=0.3)

    whole = curl("-o", str(tmp_path / "whole.mp3"), "-D", str(tmp_path / "h2"), url)
    assert whole.returncode == 0, whole.stderr
    final = finished_bytes(settings, track)
    assert size == len(final)
    assert same_but_the_xing_frame((tmp_path / "first.bin").read_bytes(), final[:65536])
    if headers_in(tmp_path / "h2")["x-audio-cache"] == "progressive":
        assert same_but_the_xing_frame((tmp_path / "whole.mp3").read_bytes(), final)
    else:  # finished before this request reached the server: the hit
        assert (tmp_path / "whole.mp3").read_bytes() == final

    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(tmp_path / "whole.mp3"), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert decode.returncode == 0 and not decode.stderr, decode.stderr


@pytest.mark.parametrize(("fmt", "codec", "rate"), [("opus", "opus", "48000"), ("aac", "aac", "44100")])
def test_ffprobe_reads_opus_and_aac_in_the_making_and_a_seek_into_the_finished_file_decodes(
    server, track, settings, tmp_path, fmt, codec, rate
):
    url = f"{server()}/stream/{track.pk}/?quality=medium&format={fmt}"
    # While ffmpeg writes it (ffprobe's request starts it): no length is known, so the stream is
    # sent as it grows.
    info = ffprobe(url)
    assert transcoding(track), "ffprobe should have read the rendition while it was being made"
    assert (info["streams"][0]["codec_name"], info["streams"][0]["sample_rate"]) == (codec, rate)
    whole = curl("-o", str(tmp_path / "whole"), "-D", str(tmp_path / "h"), url)
    assert whole.returncode == 0, whole.stderr
    assert headers_in(tmp_path / "h")["x-audio-cache"] in {"progressive", "hit"}
    decoded = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries", "stream=codec_name,nb_read_packets",
         "-of", "csv=p=0", str(tmp_path / "whole")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert decoded.stdout.startswith(codec) and not decoded.stderr

    # Finished: the file with its length, and a seek into its middle over HTTP decodes.
    finished_bytes(settings, track)
    info = ffprobe(url)
    assert float(info["format"]["duration"]) == pytest.approx(SECONDS, abs=0.2)
    seek = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-ss", str(SECONDS / 2), "-i", url, "-t", "2", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert seek.returncode == 0 and not seek.stderr, seek.stderr
    assert headers_of(curl("-I", url).stdout)["accept-ranges"] == "bytes"


def test_a_seek_ahead_gets_its_headers_at_once_and_its_bytes_as_they_are_written(server, track, settings, tmp_path):
    url = f"{server()}/stream/{track.pk}/?quality=medium"
    size_probe = curl("-r", "0-0", "-o", "/dev/null", "-D", str(tmp_path / "h0"), url)
    assert size_probe.returncode == 0, size_probe.stderr
    size = int(headers_in(tmp_path / "h0")["content-range"].rpartition("/")[2])

    started = time.monotonic()
    tail = curl(
        "-r", f"{size - 10_000}-", "-o", str(tmp_path / "tail.bin"), "-D", str(tmp_path / "h1"),
        "-w", "%{time_starttransfer}", url,
    )  # fmt: skip
    assert tail.returncode == 0, tail.stderr
    took = time.monotonic() - started
    head = headers_in(tmp_path / "h1")
    assert head["content-range"] == f"bytes {size - 10_000}-{size - 1}/{size}"
    final = finished_bytes(settings, track)
    assert (tmp_path / "tail.bin").read_bytes() == final[-10_000:]
    assert took > 0.5, "the end of the file cannot have been there yet"


def test_listeners_of_one_track_share_one_ffmpeg_run(server, track, settings, tmp_path):
    url = f"{server()}/stream/{track.pk}/?quality=high"
    listeners = [
        subprocess.Popen(["curl", "--silent", "-o", str(tmp_path / f"{n}.mp3"), url]) for n in range(3)
    ]  # fmt: skip
    assert [listener.wait(60) for listener in listeners] == [0, 0, 0]
    final = finished_bytes(settings, track)

    task = CacheTask.objects.get()
    assert (task.quality, task.status, task.attempts) == ("high", "done", 1)
    for n in range(3):
        assert same_but_the_xing_frame((tmp_path / f"{n}.mp3").read_bytes(), final)


def test_a_failing_transcode_ends_the_response_and_the_server_goes_on(server, track, settings, tmp_path):
    base = server(AUDIO_CACHE_FFMPEG=dying_ffmpeg(tmp_path, 1), AUDIO_CACHE_MAX_ATTEMPTS="1")  # dies 1 s in
    url = f"{base}/stream/{track.pk}/?quality=medium"

    cut = curl("-o", str(tmp_path / "cut.mp3"), "-D", str(tmp_path / "h1"), url)
    assert cut.returncode == 18, cut.stderr  # "partial file": fewer bytes than announced, then the end
    assert headers_in(tmp_path / "h1")["x-audio-cache"] == "progressive"
    assert 0 < (tmp_path / "cut.mp3").stat().st_size < int(headers_in(tmp_path / "h1")["content-length"])
    wait_until(lambda: CacheTask.objects.filter(status="failed").exists(), 30, 0.05, "the failed task")

    after = curl("-o", str(tmp_path / "after.flac"), "-D", str(tmp_path / "h2"), url)
    assert after.returncode == 0, after.stderr
    assert headers_in(tmp_path / "h2")["x-audio-cache"] == "miss"
    assert (tmp_path / "after.flac").read_bytes() == (settings.MUSIC_ROOT / track.path).read_bytes()
    assert not any(settings.AUDIO_CACHE_DIR.iterdir())
    log = server.stop(base)
    assert "progressive stream of track" in log and "ended after" in log  # said once, plainly
    assert "Traceback" not in log


def test_nginx_passes_a_progressive_stream_on_as_it_comes(server, nginx, track, settings, tmp_path):
    app = server(AUDIO_CACHE_SENDFILE="nginx")
    front = nginx(app)
    url = f"{front}/stream/{track.pk}/?quality=medium"
    result = curl("-o", str(tmp_path / "via-nginx.mp3"), "-D", str(tmp_path / "h"), "-w", "%{time_starttransfer}", url)
    assert result.returncode == 0, result.stderr
    assert headers_in(tmp_path / "h")["x-audio-cache"] == "progressive"
    assert "x-accel-redirect" not in headers_in(tmp_path / "h")  # a growing file is the app's to send
    # The first byte came long before the transcode (about 4 s) ended: nginx did not buffer it all.
    assert float(result.stdout) < 1.5
    assert same_but_the_xing_frame((tmp_path / "via-nginx.mp3").read_bytes(), finished_bytes(settings, track))
