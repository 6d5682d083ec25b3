"""Keeping the cache in bounds (audiocache/services/cleanup.py): purge, expiry, the LRU size cap and
reconciliation. Each deletes exactly what it says and never touches MUSIC_ROOT.
"""

import os

import pytest
from django.db.models import Q

from audiocache import selectors
from audiocache.models import CachedRendition
from audiocache.queue import batches
from audiocache.queue.pool import run_batch_inline
from audiocache.services import cleanup
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import age, file_names, rendition
from tests.factories import CachedRenditionFactory

pytestmark = pytest.mark.django_db


# --- purge --------------------------------------------------------------------------------


def test_purge_deletes_exactly_the_selected_files_and_rows(cache_dir, music_snapshot):
    keep = rendition(cache_dir)
    gone = [rendition(cache_dir, size=500), rendition(cache_dir, size=700)]
    report = cleanup.purge(CachedRendition.objects.filter(pk__in=[r.pk for r in gone]))
    assert (report.renditions, report.files, report.bytes) == (2, 2, 1200)
    assert list(CachedRendition.objects.values_list("pk", flat=True)) == [keep.pk]
    assert file_names(cache_dir) == [keep.file_name]
    assert music_snapshot()


def test_purge_never_follows_a_hostile_file_name_out_of_the_cache(cache_dir, music_root, music_snapshot):
    hostile = CachedRenditionFactory(file_name="../music/Artist/song.flac")
    report = cleanup.purge([hostile])
    assert report.renditions == 1 and report.files == 0
    assert not CachedRendition.objects.exists()
    assert music_snapshot()


def test_purge_dry_run_changes_nothing(cache_dir):
    r = rendition(cache_dir, size=300)
    report = cleanup.purge(CachedRendition.objects.all(), dry_run=True)
    assert (report.renditions, report.files, report.bytes, report.dry_run) == (1, 1, 300, True)
    assert "would delete 1 renditions" in str(report)
    assert CachedRendition.objects.filter(pk=r.pk).exists() and file_names(cache_dir) == [r.file_name]


def test_purge_spares_a_file_a_worker_made_again_meanwhile(cache_dir):
    """Rows go first; if a worker publishes a new file under the same name before the unlink,
    that new file (another inode) is not deleted."""
    from django.db.models.signals import post_delete

    r = rendition(cache_dir, size=100)
    path = cache_dir / r.file_name

    def worker_republishes(sender, instance, **kwargs):
        fresh = cache_dir / ".tmp-t9a1-new.part"
        fresh.write_bytes(b"\xfe" * 200)
        os.replace(fresh, path)

    post_delete.connect(worker_republishes, sender=CachedRendition)
    try:
        report = cleanup.purge(CachedRendition.objects.filter(pk=r.pk))
    finally:
        post_delete.disconnect(worker_republishes, sender=CachedRendition)
    assert report.renditions == 1 and report.files == 0
    assert path.read_bytes() == b"\xfe" * 200


def test_a_listener_finishes_a_rendition_purged_under_them(cache_dir, rf):
    """The stream holds the file open: unlinking it (eviction, purge) does not cut the listener off."""
    from asgiref.sync import async_to_sync

    from audiocache.delivery.conditional import identity
    from audiocache.delivery.files import open_regular
    from audiocache.delivery.response import file_response

    r = rendition(cache_dir, size=3 * 256 * 1024 + 17)
    path = cache_dir / r.file_name
    expected = path.read_bytes()
    file, st = open_regular(path)
    response = file_response(rf.get("/stream/1/"), file, identity(st, "r"), "audio/mpeg", {})
    assert cleanup.purge(CachedRendition.objects.filter(pk=r.pk)).files == 1
    assert not path.exists()

    async def read_all() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    assert async_to_sync(read_all)() == expected


# --- expiry and the size cap -------------------------------------------------------------------


def test_expire_goes_by_last_play_or_creation(cache_dir):
    played_lately = rendition(cache_dir, days_old=100, days_since_play=2)
    played_long_ago = rendition(cache_dir, days_old=100, days_since_play=40)
    never_played_old = rendition(cache_dir, days_old=40)
    never_played_new = rendition(cache_dir, days_old=1)
    report = cleanup.expire(30)
    assert report.renditions == 2
    left = set(CachedRendition.objects.values_list("pk", flat=True))
    assert left == {played_lately.pk, never_played_new.pk}
    assert played_long_ago.file_name not in file_names(cache_dir) and never_played_old.file_name not in file_names(
        cache_dir
    )


def test_size_cap_evicts_least_recently_used_first(cache_dir):
    oldest = rendition(cache_dir, size=1000, days_old=50, days_since_play=30)
    never_played = rendition(cache_dir, size=1000, days_old=20)  # counts from its creation
    recent = rendition(cache_dir, size=1000, days_old=50, days_since_play=1)
    newest = rendition(cache_dir, size=1000, days_old=0)
    assert selectors.cache_size() == 4000

    dry = cleanup.evict_to_size(2500, dry_run=True)
    assert dry.renditions == 2 and CachedRendition.objects.count() == 4

    report = cleanup.evict_to_size(2500)
    assert report.renditions == 2 and report.bytes == 2000
    assert set(CachedRendition.objects.values_list("pk", flat=True)) == {recent.pk, newest.pk}
    assert sorted([recent.file_name, newest.file_name]) == file_names(cache_dir)
    assert oldest.file_name not in file_names(cache_dir) and never_played.file_name not in file_names(cache_dir)
    assert cleanup.evict_to_size(2500).renditions == 0  # under the cap: nothing more


def test_size_cap_keeps_what_it_is_told_to(cache_dir):
    old = rendition(cache_dir, size=1000, days_old=50)
    rendition(cache_dir, size=1000, days_old=1)
    cleanup.evict_to_size(1000, keep=Q(pk=old.pk))
    assert list(CachedRendition.objects.values_list("pk", flat=True)) == [old.pk]


@pytest.mark.django_db(transaction=True)
def test_workers_apply_the_size_cap_after_each_rendition(make_audio, settings):
    for n in range(4):
        make_audio(f"t{n}.flac", duration=2)
    scan_library()
    tracks = list(Track.objects.order_by("path"))
    settings.AUDIO_CACHE_MAX_SIZE = 70_000  # a 2 s MP3 at 192k is about 48 kB: room for one
    batch = batches.create_batch(tracks, ["medium"], label="capped")
    summary = run_batch_inline(batch, 1)
    assert summary.cached == 4  # every transcode worked...
    assert selectors.cache_size() <= settings.AUDIO_CACHE_MAX_SIZE  # ...and the cap holds
    left = list(CachedRendition.objects.all())
    assert len(left) == 1
    assert sorted(p.name for p in settings.AUDIO_CACHE_DIR.iterdir()) == [left[0].file_name]


# --- reconciliation ---------------------------------------------------------------------------


def test_reconcile_removes_orphans_both_ways(cache_dir, settings, music_snapshot):
    kept = rendition(cache_dir)
    no_file = rendition(cache_dir)
    (cache_dir / no_file.file_name).unlink()
    old_orphan = cache_dir / f"{0x123:032x}_medium_192k.mp3"  # the seed's naming
    old_orphan.write_bytes(b"x" * 10)
    age(old_orphan, 3600)
    opus_orphan = cache_dir / f"{0x124:032x}_opus_low_96k.opus"
    opus_orphan.write_bytes(b"x" * 4)
    age(opus_orphan, 3600)
    young_orphan = cache_dir / f"{0x4567:032x}_medium_192k.mp3"  # a worker may be about to record its row
    young_orphan.write_bytes(b"x")
    running_temp = cache_dir / ".tmp-t1a1-abc.part"  # a transcode in progress
    running_temp.write_bytes(b"x")
    age(running_temp, 3600)
    settings.AUDIO_CACHE_TRANSCODE_TIMEOUT = 7200
    abandoned_temp = cache_dir / ".tmp-t2a1-def.part"
    abandoned_temp.write_bytes(b"x" * 5)
    age(abandoned_temp, 3 * 3600)

    dry = cleanup.reconcile(dry_run=True)
    assert (dry.orphan_files, dry.orphan_rows) == (3, 1)
    assert CachedRendition.objects.count() == 2 and old_orphan.exists()

    report = cleanup.reconcile()
    assert (report.orphan_files, report.orphan_rows, report.bytes) == (3, 1, 19)
    assert list(CachedRendition.objects.values_list("pk", flat=True)) == [kept.pk]
    assert sorted(file_names(cache_dir)) == sorted([kept.file_name, young_orphan.name, running_temp.name])
    assert music_snapshot()


def test_reconcile_only_deletes_files_of_its_own_kind(cache_dir):
    foreign = [cache_dir / "db.sqlite3", cache_dir / "notes.txt", cache_dir / "Song.flac", cache_dir / "secret_key"]
    for path in foreign:
        path.write_bytes(b"precious")
        age(path, 86400)
    report = cleanup.reconcile()
    assert report.orphan_files == 0 and all(p.exists() for p in foreign)
