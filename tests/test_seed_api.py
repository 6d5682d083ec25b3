"""The seed design's Python API (audiocache/seed_api.py), kept for code written against it:
AudioCache, CacheWorker and schedule_mixtape_caching, thin wrappers over the services and the queue.
"""

import pytest
from django.utils import timezone

from audiocache.models import CachedRendition
from audiocache.seed_api import AudioCache
from mixtapes.library import scan_library
from mixtapes.models import Track

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
