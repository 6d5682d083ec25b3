"""What a play gets (audiocache/services/play.py, through the stream view): a hit, a miss (the original
served and a task queued) or a bypass, and the stale, deleted or hostile renditions never served.
"""

import os

import pytest

from audiocache.models import CachedRendition, CacheTask
from audiocache.seed_api import AudioCache
from tests.conftest import body, url
from tests.factories import CacheTaskFactory

pytestmark = pytest.mark.django_db


def test_miss_serves_the_original_and_queues_a_play_priority_task(user_client, library, settings):
    track = library["lossless.flac"]
    response = user_client.get(url(track, "medium"))
    assert response.status_code == 200
    assert response["X-Audio-Cache"] == "miss"
    assert response["Content-Type"] == "audio/flac"
    assert body(response) == track.absolute_path().read_bytes()
    task = CacheTask.objects.get()
    assert (task.track, task.quality, task.priority) == (track, "medium", CacheTask.PRIORITY_PLAY)
    assert "no-cache" in response["Cache-Control"]


def test_hit_serves_the_rendition(user_client, library, settings):
    track = library["lossless.flac"]
    path = AudioCache().transcode_file(track, "medium")
    response = user_client.get(url(track, "medium"))
    assert response.status_code == 200
    assert response["X-Audio-Cache"] == "hit"
    assert response["Content-Type"] == "audio/mpeg"
    assert response["Accept-Ranges"] == "bytes"
    assert int(response["Content-Length"]) == path.stat().st_size
    assert body(response) == path.read_bytes()
    assert CacheTask.objects.count() == 0


def test_default_quality_comes_from_settings(user_client, library, settings):
    settings.AUDIO_CACHE_DEFAULT_QUALITY = "low"
    track = library["lossless.flac"]
    AudioCache().transcode_file(track, "low")
    assert user_client.get(url(track))["X-Audio-Cache"] == "hit"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("lossy.mp3", "audio/mpeg"), ("other.m4a", "audio/mp4"), ("wave.wav", "audio/wav"), ("aiff.aiff", "audio/aiff")],
)
def test_bypass_for_originals_and_lossy_sources(user_client, library, name, content_type):
    track = library[name]
    quality = "original" if track.is_lossless else "high"
    response = user_client.get(url(track, quality))
    assert response["X-Audio-Cache"] == "bypass"
    assert response["Content-Type"] == content_type
    assert body(response) == track.absolute_path().read_bytes()
    assert CacheTask.objects.count() == 0


def test_cache_disabled_always_bypasses(user_client, library, settings):
    settings.AUDIO_CACHE_ENABLED = False
    track = library["lossless.flac"]
    AudioCache().transcode_file(track, "medium")
    response = user_client.get(url(track, "medium"))
    assert response["X-Audio-Cache"] == "bypass"
    assert response["Content-Type"] == "audio/flac"
    assert CacheTask.objects.count() == 0


def test_unknown_quality_is_a_400_with_a_message(user_client, library):
    response = user_client.get(url(library["lossless.flac"], "ultra"))
    assert response.status_code == 400
    assert b"Unknown quality 'ultra'" in response.content


def test_quarantined_source_is_not_queued_on_every_play(user_client, library):
    track = library["lossless.flac"]
    st = track.absolute_path().stat()
    CacheTaskFactory(
        track=track, quality="medium", status="failed", error="bad", source_size=st.st_size,
        source_mtime_ns=st.st_mtime_ns,
    )  # fmt: skip
    response = user_client.get(url(track, "medium"))
    assert response["X-Audio-Cache"] == "miss"
    assert CacheTask.objects.count() == 1


def test_stale_rendition_is_never_served(user_client, library):

    track = library["lossless.flac"]
    AudioCache().transcode_file(track, "medium")
    source = track.absolute_path()
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    response = user_client.get(url(track, "medium"))
    assert response["X-Audio-Cache"] == "miss"
    assert response["Content-Type"] == "audio/flac"


def test_a_deleted_rendition_is_not_served(user_client, library):
    track = library["lossless.flac"]
    path = AudioCache().transcode_file(track, "medium")
    path.unlink()  # the file went (eviction) and the row is still there
    response = user_client.get(url(track, "medium"))
    assert response["X-Audio-Cache"] == "miss" and response["Content-Type"] == "audio/flac"
    AudioCache().transcode_file(track, "medium")
    assert user_client.get(url(track, "medium"))["X-Audio-Cache"] == "hit"
    CachedRendition.objects.all().delete()  # the row went and the file is still there
    assert user_client.get(url(track, "medium"))["X-Audio-Cache"] == "miss"


def test_a_rendition_row_with_a_hostile_file_name_is_not_served(user_client, library, settings, tmp_path):
    track = library["lossless.flac"]
    AudioCache().transcode_file(track, "medium")
    CachedRendition.objects.update(file_name="../../music/Artist/wave.wav")
    response = user_client.get(url(track, "medium"))
    assert response["X-Audio-Cache"] == "miss"  # not fresh: the named file is not in the cache folder
    assert response["Content-Type"] == "audio/flac"
