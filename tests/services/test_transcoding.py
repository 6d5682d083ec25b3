"""Making a rendition (audiocache/services/transcoding.py, through the seed's AudioCache): what is
published and when, when a rendition is fresh, and what a failed or overtaken transcode leaves.
"""

import os

import pytest

from audiocache import selectors
from audiocache.models import CachedRendition
from audiocache.renditions import cache_file_name
from audiocache.seed_api import AudioCache
from audiocache.services.transcoding import fresh_rendition
from audiocache.transcode.ffmpeg import ENCODER_PROFILE, ENCODER_PROFILES, TranscodeError
from mixtapes.files import SourceUnavailable
from mixtapes.models import Track
from tests.conftest import scanned

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("name", "kind"), [("a.mp3", "mp3"), ("a.m4a", "aac"), ("a.opus", "opus")])
def test_lossy_sources_are_never_re_encoded(make_audio, settings, name, kind):
    track = scanned(make_audio, name, kind=kind)
    cache = AudioCache()
    assert not cache.should_transcode(track)
    assert cache.transcode_file(track, "medium") == (settings.MUSIC_ROOT / name).resolve()
    assert cache.get_cached_or_original(track, "medium") == (settings.MUSIC_ROOT / name).resolve()
    assert CachedRendition.objects.count() == 0
    assert not settings.AUDIO_CACHE_DIR.exists() or not any(settings.AUDIO_CACHE_DIR.iterdir())


def test_staleness_after_touch_replace_and_profile_change(make_audio):
    track = scanned(make_audio, "a.flac")
    cache = AudioCache()
    original = cache.get_cached_or_original(track)
    cached = cache.transcode_file(track)
    assert cache.get_cached_or_original(track) == cached

    st = original.stat()
    os.utime(original, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert not cache.is_cached(track)
    assert cache.get_cached_or_original(track) == original  # a stale rendition is never served
    cache.transcode_file(track)
    assert cache.is_cached(track)

    original.unlink()
    make_audio("a.flac", duration=2)  # replaced by different audio
    assert not cache.is_cached(track)
    cache.transcode_file(track)
    assert cache.is_cached(track)

    CachedRendition.objects.update(encoder_profile="mp3-older-settings")
    assert not cache.is_cached(track)

    CachedRendition.objects.update(encoder_profile=ENCODER_PROFILE)
    cached.unlink()
    assert not cache.is_cached(track)  # the row alone is not a rendition


def test_each_format_goes_stale_on_its_own_encoder_settings(make_audio, monkeypatch):
    # New Opus settings make the Opus renditions stale (the dashboard counts them, the next play
    # makes them again), and leave the MP3 and AAC ones of the same track alone.
    track = scanned(make_audio, "a.flac")
    for variant in ("medium", "opus:medium", "aac:medium"):
        AudioCache().transcode_file(track, variant)
    assert selectors.fresh_renditions().count() == 3
    monkeypatch.setitem(ENCODER_PROFILES, "opus", "opus-newer-settings")
    assert fresh_rendition(track, "opus:medium") is None
    assert fresh_rendition(track, "medium") is not None and fresh_rendition(track, "aac:medium") is not None
    assert sorted(selectors.fresh_renditions().values_list("format", flat=True)) == ["aac", "mp3"]
    AudioCache().transcode_file(track, "opus:medium")  # made again with today's settings
    assert CachedRendition.objects.get(format="opus").encoder_profile == "opus-newer-settings"


def test_a_failed_transcode_keeps_the_good_rendition(make_audio, settings):
    track = scanned(make_audio, "a.flac")
    cache = AudioCache()
    good = cache.transcode_file(track)
    good_bytes = good.read_bytes()
    source = settings.MUSIC_ROOT / "a.flac"
    source.write_text("now it is text")
    with pytest.raises(TranscodeError):
        cache.transcode_file(track, overwrite=True)
    assert good.read_bytes() == good_bytes
    assert CachedRendition.objects.get().size == len(good_bytes)
    assert sorted(p.name for p in settings.AUDIO_CACHE_DIR.iterdir()) == [good.name]


def test_a_source_changed_during_the_transcode_publishes_nothing(make_audio, settings):
    from audiocache.services.transcoding import SourceChanged

    track = scanned(make_audio, "a.flac", duration=3)
    cache = AudioCache()
    good = cache.transcode_file(track)
    good_bytes, good_inode, row = good.read_bytes(), good.stat().st_ino, CachedRendition.objects.get()
    source = settings.MUSIC_ROOT / "a.flac"

    def touch_source(_fraction):
        st = source.stat()
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    with pytest.raises(SourceChanged):
        cache.transcode_file(track, overwrite=True, on_progress=touch_source)
    assert good.stat().st_ino == good_inode  # never replaced (a rename would bring a new inode)
    assert good.read_bytes() == good_bytes
    assert CachedRendition.objects.get().created_at == row.created_at
    assert sorted(p.name for p in settings.AUDIO_CACHE_DIR.iterdir()) == [good.name]


def test_a_worker_that_lost_its_task_does_not_publish(make_audio, settings):
    track = scanned(make_audio, "a.flac")
    cache = AudioCache()
    good = cache.transcode_file(track)
    good_bytes, good_inode = good.read_bytes(), good.stat().st_ino
    with pytest.raises(TranscodeError, match="taken over"):
        cache.transcode_file(track, "medium", overwrite=True, still_allowed=lambda: False)
    assert good.stat().st_ino == good_inode
    assert good.read_bytes() == good_bytes
    assert sorted(p.name for p in settings.AUDIO_CACHE_DIR.iterdir()) == [good.name]


def test_a_track_pointing_outside_music_root_is_refused(make_audio, tmp_path):
    track = scanned(make_audio, "a.flac")
    (tmp_path / "outside.flac").write_bytes(b"x")
    Track.objects.filter(pk=track.pk).update(path="../outside.flac")
    track.refresh_from_db()
    with pytest.raises(SourceUnavailable, match="outside MUSIC_ROOT"):
        AudioCache().transcode_file(track)


def test_cache_file_names_do_not_depend_on_where_the_library_is(settings, tmp_path):
    name = cache_file_name("Artist/Album/01.flac", "medium")
    assert name.endswith("_mp3_medium_192k.mp3") and len(name) == 32 + len("_mp3_medium_192k.mp3")
    digest = name[:32]
    assert cache_file_name("Artist/Album/01.flac", "opus:low") == f"{digest}_opus_low_96k.opus"
    assert cache_file_name("Artist/Album/01.flac", "aac:high") == f"{digest}_aac_high_256k.m4a"
    settings.MUSIC_ROOT = tmp_path / "moved"
    assert cache_file_name("Artist/Album/01.flac", "medium") == name
