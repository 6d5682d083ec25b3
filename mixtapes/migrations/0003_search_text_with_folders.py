"""Track.search_text now holds the whole path (folders too), and drops control characters.

The SQLite FTS table follows through its update trigger; the PostgreSQL index by itself.
"""

import unicodedata
from pathlib import PurePosixPath

from django.db import migrations


def _normalize(text):
    # A frozen copy of mixtapes.search.normalize as of this migration.
    decomposed = unicodedata.normalize("NFKD", text)
    kept = (" " if unicodedata.category(ch) == "Cc" else ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join("".join(kept).casefold().split())


def refill(apps, schema_editor):
    Track = apps.get_model("mixtapes", "Track")
    batch = []
    for track in Track.objects.only("id", "path", "title", "artist", "album", "album_artist").iterator(2000):
        path = str(PurePosixPath(track.path).with_suffix("")).replace("/", " ")
        track.search_text = _normalize(" ".join([track.title, track.artist, track.album, track.album_artist, path]))
        batch.append(track)
        if len(batch) == 2000:
            Track.objects.bulk_update(batch, ["search_text"])
            batch = []
    Track.objects.bulk_update(batch, ["search_text"])


class Migration(migrations.Migration):
    dependencies = [("mixtapes", "0002_track_search")]
    operations = [migrations.RunPython(refill, migrations.RunPython.noop)]
