"""Keeping the cache in bounds: purge, expiry, LRU size cap, reconciliation, and the
cacheclean / cachedebug commands. Each deletes exactly what it says and never touches
MUSIC_ROOT."""

import os
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Q

from audiocache import selectors
from audiocache.models import CachedRendition
from audiocache.queue import batches
from audiocache.queue.pool import run_batch_inline
from audiocache.renditions import cache_file_name
from audiocache.services import cleanup
from audiocache.transcode.ffmpeg import ENCODER_PROFILE
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.conftest import age, file_names, rendition
from tests.factories import CachedRenditionFactory, TrackFactory

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
    old_orphan = cache_dir / f"{0x123:032x}_medium_192k.mp3"
    old_orphan.write_bytes(b"x" * 10)
    age(old_orphan, 3600)
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
    assert (dry.orphan_files, dry.orphan_rows) == (2, 1)
    assert CachedRendition.objects.count() == 2 and old_orphan.exists()

    report = cleanup.reconcile()
    assert (report.orphan_files, report.orphan_rows, report.bytes) == (2, 1, 15)
    assert list(CachedRendition.objects.values_list("pk", flat=True)) == [kept.pk]
    assert sorted(file_names(cache_dir)) == sorted([kept.file_name, young_orphan.name, running_temp.name])
    assert music_snapshot()


# --- cacheclean ---------------------------------------------------------------------------------


def cacheclean(*args) -> str:
    out = StringIO()
    call_command("cacheclean", *args, stdout=out)
    return out.getvalue()


def test_cacheclean_options(cache_dir, music_snapshot):
    rendition(cache_dir, size=1024, days_old=100)
    rendition(cache_dir, size=1024, days_old=10)
    recent = rendition(cache_dir, size=1024, days_old=0)

    output = cacheclean("--older-than", "30", "--dry-run")
    assert "not played for 30 days: would delete 1 renditions, 1 files, 1.0 KiB" in output
    assert CachedRendition.objects.count() == 3

    output = cacheclean("--older-than", "30")
    assert "deleted 1 renditions, 1 files, 1.0 KiB" in output and CachedRendition.objects.count() == 2

    output = cacheclean("--max-size", "1K")
    assert "size cap" in output and list(CachedRendition.objects.values_list("pk", flat=True)) == [recent.pk]
    assert "Total: deleted 1 renditions" in output

    output = cacheclean("--all")
    assert not CachedRendition.objects.exists() and file_names(cache_dir) == []
    assert music_snapshot()


def test_cacheclean_without_options_applies_the_settings(cache_dir, settings):
    settings.AUDIO_CACHE_MAX_AGE_DAYS = 30
    settings.AUDIO_CACHE_MAX_SIZE = 0
    rendition(cache_dir, days_old=60)
    rendition(cache_dir, days_old=1)
    orphan = cache_dir / f"{0xFEED:032x}_low_128k.mp3"
    orphan.write_bytes(b"x")
    age(orphan, 3600)
    output = cacheclean()
    assert "orphans: deleted 0 renditions, 1 files" in output
    assert "not played for 30 days: deleted 1 renditions" in output
    assert CachedRendition.objects.count() == 1


@pytest.mark.parametrize("args", [["--max-size", "lots"], ["--older-than", "-1"], ["--older-than", "x"]])
def test_cacheclean_rejects_bad_values(args, cache_dir):
    with pytest.raises((CommandError, SystemExit)):
        cacheclean(*args)


# --- cachedebug ---------------------------------------------------------------------------------


def test_cachedebug_explains_a_track(cache_dir, music_root, file_track):
    track = file_track(path="Artist/Album/01 song.flac")
    name = cache_file_name(track.path, "medium")
    (cache_dir / name).write_bytes(b"\xff" * 2048)
    CachedRendition.objects.create(
        track=track, quality="medium", bitrate=192, file_name=name, size=2048,
        source_size=track.file_size, source_mtime_ns=track.file_mtime_ns, encoder_profile=ENCODER_PROFILE,
    )  # fmt: skip
    stale_name = cache_file_name(track.path, "low")
    (cache_dir / stale_name).write_bytes(b"\xff")
    CachedRendition.objects.create(
        track=track, quality="low", bitrate=128, file_name=stale_name, size=1,
        source_size=1, source_mtime_ns=1, encoder_profile=ENCODER_PROFILE,
    )  # fmt: skip

    for argument in [str(track.pk), track.path, str(music_root / track.path)]:
        out = StringIO()
        call_command("cachedebug", argument, stdout=out)
        text = out.getvalue()
        assert f"Track {track.pk}" in text
        assert f"medium  {name}  file: 2048 bytes, row: 2048 bytes" in text and "FRESH" in text
        assert f"low     {stale_name}  file: 1 bytes" in text and "STALE" in text
        assert f"high    {cache_file_name(track.path, 'high')}  file: missing, no row" in text


@pytest.mark.parametrize(
    "argument, message",
    [("999999", "No track with id"), ("nope/none.flac", "No track with path"), ("/etc/passwd", "not under MUSIC_ROOT")],
)
def test_cachedebug_errors(argument, message, music_root):
    TrackFactory()
    with pytest.raises(CommandError, match=message):
        call_command("cachedebug", argument, stdout=StringIO())


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


def test_reconcile_only_deletes_files_of_its_own_kind(cache_dir):
    foreign = [cache_dir / "db.sqlite3", cache_dir / "notes.txt", cache_dir / "Song.flac", cache_dir / "secret_key"]
    for path in foreign:
        path.write_bytes(b"precious")
        age(path, 86400)
    report = cleanup.reconcile()
    assert report.orphan_files == 0 and all(p.exists() for p in foreign)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-size", "0"], "use --all"),
        (["--older-than", "99999999999"], "from 0 to"),
        (["--older-than", "²"], "from 0 to"),
    ],
)
def test_cacheclean_refuses_dangerous_or_absurd_values(args, message, cache_dir):
    rendition(cache_dir)
    with pytest.raises(CommandError, match=message):
        cacheclean(*args)
    assert CachedRendition.objects.count() == 1


@pytest.mark.parametrize("argument", ["²", "9" * 30])
def test_cachedebug_odd_ids(argument, music_root):
    with pytest.raises(CommandError):
        call_command("cachedebug", argument, stdout=StringIO())
