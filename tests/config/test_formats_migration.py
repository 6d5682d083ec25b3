"""audiocache 0005 (formats): a database of MP3 renditions made before Opus and AAC keeps every
one of them valid: same rows, format "mp3", still fresh, still served as hits."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from audiocache.models import CachedRendition, StreamDay
from audiocache.seed_api import AudioCache
from audiocache.selectors import fresh_renditions
from mixtapes.library import scan_library
from mixtapes.models import Track
from tests.factories import MixtapeTrackFactory

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("audiocache", "0004_batch_item_announced")]
AFTER = [("audiocache", "0005_formats")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def migrate_to_the_latest():
    """Back to today's schema, for the tests that follow in this database."""
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_mp3_renditions_made_before_formats_stay_valid(make_audio):
    make_audio("a.flac", duration=1)
    scan_library()
    track = Track.objects.get()
    MixtapeTrackFactory(track=track, mixtape__is_public=True)
    AudioCache().transcode_file(track, "low")
    made = CachedRendition.objects.values("file_name", "size", "encoder_profile", "source_size").get()
    # A rendition as the seed's naming had it: <hash>_<quality>_<bitrate>k.mp3.
    old_name = made["file_name"].replace("_mp3_low_", "_low_")
    cache_dir = AudioCache().cache_dir
    (cache_dir / made["file_name"]).rename(cache_dir / old_name)
    CachedRendition.objects.update(file_name=old_name)
    rows = list(CachedRendition.objects.values_list("id", "track_id", "quality", "bitrate", "size"))

    migrate(BEFORE)
    try:
        old = MigrationExecutor(connection).loader.project_state(BEFORE).apps.get_model("audiocache", "CachedRendition")
        assert list(old.objects.values_list("id", "track_id", "quality", "bitrate", "size")) == rows
        assert "format" not in {f.name for f in old._meta.get_fields()}
    finally:
        migrate(AFTER)
        migrate_to_the_latest()

    kept = CachedRendition.objects.get()
    assert (kept.pk, kept.format, kept.quality, kept.file_name) == (rows[0][0], "mp3", "low", old_name)
    assert fresh_renditions("low").filter(pk=kept.pk).exists()  # the MP3 profile did not change
    response = Client().get(f"/stream/{track.pk}/", {"quality": "low", "format": "mp3"})
    assert (response["X-Audio-Cache"], response["Content-Type"]) == ("hit", "audio/mpeg")
    # Made again (forced), it takes today's name and its old file goes.
    AudioCache().transcode_file(track, "low", overwrite=True)
    assert CachedRendition.objects.get().file_name.endswith("_mp3_low_128k.mp3")
    assert not (cache_dir / old_name).exists()


def test_the_days_counted_before_formats_are_kept_as_all_formats():
    migrate([("audiocache", "0005_formats")])
    try:
        old = MigrationExecutor(connection).loader.project_state([("audiocache", "0005_formats")]).apps
        old.get_model("audiocache", "StreamDay").objects.create(day="2026-11-30", hits=7, misses=2, bypasses=1)
    finally:
        migrate_to_the_latest()
    kept = StreamDay.objects.get()
    assert (str(kept.day), kept.format, kept.hits, kept.misses, kept.bypasses) == ("2026-11-30", "", 7, 2, 1)
    StreamDay.objects.create(day="2026-11-30", format="opus", hits=1)  # the same day, counted per format now
