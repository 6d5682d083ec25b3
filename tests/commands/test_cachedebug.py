"""manage.py cachedebug (audiocache/management/commands/cachedebug.py): what it says of a track's
renditions, and its errors.
"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audiocache.models import CachedRendition
from audiocache.renditions import cache_file_name
from audiocache.transcode.ffmpeg import ENCODER_PROFILE
from tests.factories import TrackFactory

pytestmark = pytest.mark.django_db


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
        assert f"medium      {name}  file: 2048 bytes, row: 2048 bytes" in text and "FRESH" in text
        assert f"low         {stale_name}  file: 1 bytes" in text and "STALE" in text
        assert f"high        {cache_file_name(track.path, 'high')}  file: missing, no row" in text
        assert f"opus:low    {cache_file_name(track.path, 'opus:low')}  file: missing, no row" in text


@pytest.mark.parametrize(
    "argument, message",
    [("999999", "No track with id"), ("nope/none.flac", "No track with path"), ("/etc/passwd", "not under MUSIC_ROOT")],
)
def test_cachedebug_errors(argument, message, music_root):
    TrackFactory()
    with pytest.raises(CommandError, match=message):
        call_command("cachedebug", argument, stdout=StringIO())


ODD_IDS = {
    "²": "No track with path '²' (run scanlibrary if the file is new).",  # not an id: a path
    "9" * 30: f"No track with id {'9' * 30}.",  # past any database integer: no such track
}


@pytest.mark.parametrize("argument", list(ODD_IDS))
def test_cachedebug_odd_ids(argument, music_root):
    with pytest.raises(CommandError) as error:
        call_command("cachedebug", argument, stdout=StringIO())
    assert str(error.value) == ODD_IDS[argument]
