"""The seed design's Python API (audiocache/seed_api.py), kept for code written against it:
AudioCache, CacheWorker and schedule_mixtape_caching, thin wrappers over the services and the queue.
"""

import os

import pytest
from django.utils import timezone

from audiocache.models import CacheBatch, CachedRendition, CacheTask
from audiocache.seed_api import AudioCache, CacheWorker, schedule_mixtape_caching
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.factories import MixtapeTrackFactory

Status = CacheTask.Status

pytestmark = pytest.mark.django_db


def test_seed_api_cache_size_and_clear(make_audio, settings):
    for name in ("a.flac", "b.flac", "c.flac"):
        make_audio(name)
    scan_library()
    cache = AudioCache()
    paths = cache.precache_file("a.flac", ["high", "low"])  # a path relative to MUSIC_ROOT works too
    assert set(paths) == {"high", "low"}
    cache.transcode_file(settings.MUSIC_ROOT / "b.flac")  # and an absolute one
    cache.transcode_file(Track.objects.get(path="c.flac"))
    total = sum(p.stat().st_size for p in settings.AUDIO_CACHE_DIR.iterdir())
    assert cache.get_cache_size() == total

    old = timezone.now() - timezone.timedelta(days=40)
    CachedRendition.objects.filter(track__path="a.flac").update(created_at=old, last_accessed_at=old)
    assert cache.clear_cache(older_than_days=30) == 2
    assert CachedRendition.objects.count() == 2
    assert len(list(settings.AUDIO_CACHE_DIR.iterdir())) == 2
    music_before = sorted(p.name for p in settings.MUSIC_ROOT.iterdir())
    assert cache.clear_cache() == 2
    assert list(settings.AUDIO_CACHE_DIR.iterdir()) == []
    assert sorted(p.name for p in settings.MUSIC_ROOT.iterdir()) == music_before
    assert cache.get_cache_size() == 0


@pytest.mark.django_db(transaction=True)
def test_seed_cache_worker_api(make_audio, settings):
    for name in ("a.flac", "b.wav", "c.mp3"):
        make_audio(name, kind="flac")
    scan_library()
    worker = CacheWorker(AudioCache(), max_workers=2)

    assert worker.cache_single_file("a.flac", ["high", "low"]) == {"high": True, "low": True}
    calls = []
    results = worker.cache_mixtape_async(
        ["a.flac", "b.wav", "c.mp3"], ["medium"], progress_callback=lambda d, t: calls.append((d, t))
    )
    assert results == {"a.flac": {"medium": True}, "b.wav": {"medium": True}, "c.mp3": {"medium": True}}
    assert calls[-1] == (3, 3)
    assert worker.verify_mixtape_cache(["a.flac", "b.wav"], "medium") == {"a.flac": True, "b.wav": True}

    source = settings.MUSIC_ROOT / "b.wav"
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert worker.verify_mixtape_cache(["b.wav"], "medium") == {"b.wav": False}
    assert worker.regenerate_outdated_cache(["a.flac", "b.wav"], ["medium"])["b.wav"] == {"medium": True}
    assert worker.verify_mixtape_cache(["b.wav"], "medium") == {"b.wav": True}
    assert worker.cache_mixtape(["a.flac"], ["low"]) == {"a.flac": {"low": True}}


@pytest.mark.django_db
def test_schedule_mixtape_caching_queues_a_batch(settings, file_track):
    settings.AUDIO_CACHE_PRECACHE_QUALITIES = ["medium", "low"]
    entry = MixtapeTrackFactory(track=file_track())
    MixtapeTrackFactory(mixtape=entry.mixtape, track=file_track(is_lossless=False, codec="mp3"))
    result = schedule_mixtape_caching(entry.mixtape)
    assert result["total"] == 4 and not result["finished"]
    assert result["summary"] == "0 cached, 2 skipped, 0 failed"
    batch = CacheBatch.objects.get(pk=result["batch_id"])
    assert batch.mixtape == entry.mixtape
    assert CacheTask.objects.filter(status=Status.PENDING).count() == 2
