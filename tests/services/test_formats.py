"""Opus and AAC renditions with real ffmpeg: made, tagged, served with ranges, followed while
they are written, precached as format:quality pairs, and listed per format (issue #21)."""

import io
import json
import subprocess
import tempfile

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from mutagen.mp4 import MP4

from audiocache import selectors, services
from audiocache.models import CachedRendition, CacheTask
from audiocache.qualities import Variant
from audiocache.seed_api import AudioCache
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import body, wait_until
from tests.factories import MixtapeTrackFactory

from .test_following import pool  # noqa: F401 - the slow worker pool fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def public_flac(make_audio):
    def make(seconds=3.0, name="song.flac"):
        make_audio(name, duration=seconds, noise=True, cover=True,
                   tags={"title": "Après minuit", "artist": "Ondes", "album": "Nocturne", "track": "2"})  # fmt: skip
        scan_library()
        track = Track.objects.get(path=name)
        MixtapeTrackFactory(track=track, mixtape__is_public=True)
        return track

    return make


def probe(data: bytes) -> dict:
    """ffprobe of ``data`` as a file (a pipe hides an Ogg file's length, found at its end)."""
    with tempfile.NamedTemporaryFile() as file:
        file.write(data)
        file.flush()
        done = subprocess.run(
            ["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format", f"file:{file.name}"],
            capture_output=True, check=True, timeout=30,
        )  # fmt: skip
    return json.loads(done.stdout)


def decodes(data: bytes, *before_input: str) -> bool:
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", *before_input, "-i", "-", "-f", "null", "-"],
        input=data, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    return done.returncode == 0 and not done.stderr.strip()


@pytest.mark.parametrize(
    ("variant", "codec", "rate", "name_end", "content_type"),
    [
        ("opus:medium", "opus", "48000", "_opus_medium_128k.opus", "audio/ogg; codecs=opus"),
        ("aac:low", "aac", "44100", "_aac_low_128k.m4a", "audio/mp4"),
    ],
)
def test_a_rendition_in_each_format_is_made_tagged_and_served(
    public_flac, variant, codec, rate, name_end, content_type
):
    track = public_flac()
    path = AudioCache().transcode_file(track, variant)
    row = CachedRendition.objects.get(track=track)
    assert (row.format, row.quality, row.bitrate) == (*variant.split(":"), Variant.parse(variant).bitrate)
    assert row.file_name.endswith(name_end) and path.name == row.file_name
    info = probe(path.read_bytes())
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == (codec, rate, 2)
    tags = {k.lower(): v for k, v in {**info["format"].get("tags", {}), **audio.get("tags", {})}.items()}
    assert (tags["title"], tags["artist"], tags["album"]) == ("Après minuit", "Ondes", "Nocturne")

    fmt, quality = variant.split(":")
    client = Client()
    whole = client.get(f"/stream/{track.pk}/", {"quality": quality, "format": fmt})
    assert (whole.status_code, whole["X-Audio-Cache"], whole["Content-Type"]) == (200, "hit", content_type)
    data = body(whole)
    assert data == path.read_bytes() and decodes(data)
    part = client.get(f"/stream/{track.pk}/", {"quality": quality, "format": fmt}, HTTP_RANGE="bytes=100-1099")
    assert part.status_code == 206 and body(part) == data[100:1100]
    # The same track's MP3 is another rendition: not there yet, so a miss.
    mp3 = client.get(f"/stream/{track.pk}/", {"quality": quality, "format": "mp3"})
    assert mp3["X-Audio-Cache"] in ("miss", "progressive")


def test_an_opus_transcode_is_followed_while_it_is_written(public_flac, pool):  # noqa: F811
    track = public_flac(6)
    pool(rate=3)
    response = Client().get(f"/stream/{track.pk}/", {"quality": "medium", "format": "opus"})
    assert (response.status_code, response["X-Audio-Cache"]) == (200, "progressive")
    assert response["Content-Type"] == "audio/ogg; codecs=opus"
    # Its length is not known until ffmpeg ends: no Content-Length, no ranges, a weak tag.
    assert "Content-Length" not in response and response["Accept-Ranges"] == "none"
    assert response["ETag"].startswith('W/"')
    assert CacheTask.objects.filter(track=track, format="opus", status="running").exists()
    streamed = body(response)
    assert streamed[:4] == b"OggS" and decodes(streamed)
    duration = float(probe(streamed)["format"]["duration"])
    assert duration == pytest.approx(6, abs=0.1)  # the whole track, though it was still being made
    wait_until(lambda: CachedRendition.objects.filter(track=track, format="opus").exists(), 60, 0.05, "opus")


def test_an_aac_transcode_is_followed_as_adts_and_kept_as_mp4(public_flac, pool, settings):  # noqa: F811
    track = public_flac(6)
    pool(rate=3)
    response = Client().get(f"/stream/{track.pk}/", {"quality": "low", "format": "aac"})
    assert (response.status_code, response["X-Audio-Cache"], response["Content-Type"]) == (
        200, "progressive", "audio/aac",
    )  # fmt: skip
    streamed = body(response)
    assert streamed[:2] in (b"\xff\xf1", b"\xff\xf9") and decodes(streamed)  # ADTS frames
    wait_until(lambda: CachedRendition.objects.filter(track=track, format="aac").exists(), 60, 0.05, "aac")
    kept = selectors.fresh_renditions("aac:low").get(track=track)
    finished = Client().get(f"/stream/{track.pk}/", {"quality": "low", "format": "aac"})
    assert (finished["X-Audio-Cache"], finished["Content-Type"]) == ("hit", "audio/mp4")
    assert kept.file_name.endswith(".m4a") and b"ftyp" in body(finished)[:12]
    tags = MP4(settings.AUDIO_CACHE_DIR / kept.file_name).tags  # gapless and tagged, though made by the tee muxer
    assert "----:com.apple.iTunes:iTunSMPB" in tags and tags["\xa9nam"] == ["Après minuit"]


def test_a_lossy_source_is_never_re_encoded_whatever_the_format(make_audio):
    make_audio("a.mp3", kind="mp3", duration=1)
    scan_library()
    track = Track.objects.get()
    MixtapeTrackFactory(track=track, mixtape__is_public=True)
    for fmt in ("opus", "aac", "mp3"):
        response = Client().get(f"/stream/{track.pk}/", {"quality": "low", "format": fmt})
        assert (response["X-Audio-Cache"], response["Content-Type"]) == ("bypass", "audio/mpeg")
    assert not CacheTask.objects.exists()


def test_precache_takes_format_quality_pairs(public_flac, settings):
    track = public_flac(1)
    out = io.StringIO()
    call_command("precache", "--track", str(track.pk), "--quality", "opus:low", "medium", "--inline", stdout=out)
    made = set(CachedRendition.objects.values_list("format", "quality"))
    assert made == {("opus", "low"), ("mp3", "medium")}
    settings.AUDIO_CACHE_FORMATS = ["mp3"]
    with pytest.raises(CommandError, match="opus is turned off"):
        call_command("precache", "--track", str(track.pk), "--quality", "opus:low")
    # The dashboard counts each variant apart; a format turned off still shows what it holds.
    rows = {row["label"]: row["count"] for row in selectors.dashboard()["qualities"]}
    assert rows["Opus 96k"] == 1 and rows["MP3 192k"] == 1 and "AAC 128k" not in rows
    report = selectors.track_cache_report(track)
    assert {(q.quality, q.fresh) for q in report.qualities} >= {("opus:low", True), ("medium", True)}


def test_a_format_turned_off_is_never_made(public_flac, settings):
    track = public_flac(1)
    settings.AUDIO_CACHE_FORMATS = ["mp3"]
    response = Client().get(f"/stream/{track.pk}/", {"quality": "low", "format": "opus"})
    assert response["Content-Type"] != "audio/ogg; codecs=opus"  # the fallback: MP3 (or the original on a miss)
    assert set(CacheTask.objects.values_list("format", flat=True)) == {"mp3"}
    with pytest.raises(ValueError, match="turned off"):
        services.make_rendition(track, "opus:low")
