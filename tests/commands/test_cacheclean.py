"""manage.py cacheclean (audiocache/management/commands/cacheclean.py): its options, the settings it
applies without them, and the values it refuses.
"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audiocache.models import CachedRendition
from tests.conftest import age, file_names, rendition

pytestmark = pytest.mark.django_db


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


BAD_VALUES = {
    ("--max-size", "lots"): "--max-size 'lots' is not a size (examples: 500M, 20G, 1.5T)",
    ("--older-than", "-1"): "--older-than takes a number of days from 0 to 36500",
    ("--older-than", "x"): "--older-than takes a number of days from 0 to 36500",
}


@pytest.mark.parametrize("args", [list(args) for args in BAD_VALUES])
def test_cacheclean_rejects_bad_values(args, cache_dir):
    rendition(cache_dir)
    with pytest.raises(CommandError) as error:
        cacheclean(*args)
    assert str(error.value) == BAD_VALUES[tuple(args)]
    assert CachedRendition.objects.count() == 1


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
