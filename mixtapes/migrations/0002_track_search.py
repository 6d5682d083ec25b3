"""Track.search_text and a trigram index over it, one per database (see mixtapes/search.py).

SQLite note: Django rebuilds a SQLite table for some later schema changes of Track (copy,
drop, rename), which drops the triggers below. A migration that alters mixtapes_track must
run ``install_sqlite_search`` again; tests/test_editor.py checks that search still works
after all migrations.
"""

import unicodedata
from pathlib import PurePosixPath

from django.db import migrations, models

SQLITE_TABLE = "mixtapes_track_search"

SQLITE_INSTALL = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {SQLITE_TABLE} USING fts5("
    "search_text, content='mixtapes_track', content_rowid='id', tokenize='trigram')",
    f"""CREATE TRIGGER IF NOT EXISTS {SQLITE_TABLE}_insert AFTER INSERT ON mixtapes_track BEGIN
        INSERT INTO {SQLITE_TABLE}(rowid, search_text) VALUES (new.id, new.search_text);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS {SQLITE_TABLE}_delete AFTER DELETE ON mixtapes_track BEGIN
        INSERT INTO {SQLITE_TABLE}({SQLITE_TABLE}, rowid, search_text) VALUES ('delete', old.id, old.search_text);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS {SQLITE_TABLE}_update AFTER UPDATE OF search_text ON mixtapes_track BEGIN
        INSERT INTO {SQLITE_TABLE}({SQLITE_TABLE}, rowid, search_text) VALUES ('delete', old.id, old.search_text);
        INSERT INTO {SQLITE_TABLE}(rowid, search_text) VALUES (new.id, new.search_text);
    END""",
    f"INSERT INTO {SQLITE_TABLE}({SQLITE_TABLE}) VALUES ('rebuild')",
]
SQLITE_REMOVE = [
    f"DROP TRIGGER IF EXISTS {SQLITE_TABLE}_insert",
    f"DROP TRIGGER IF EXISTS {SQLITE_TABLE}_delete",
    f"DROP TRIGGER IF EXISTS {SQLITE_TABLE}_update",
    f"DROP TABLE IF EXISTS {SQLITE_TABLE}",
]
# pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
POSTGRES_INSTALL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS track_search_trgm_idx ON mixtapes_track USING gin (search_text gin_trgm_ops)",
]
POSTGRES_REMOVE = ["DROP INDEX IF EXISTS track_search_trgm_idx"]


def _normalize(text):
    # A frozen copy of mixtapes.search.normalize: migrations must not change when the app does.
    decomposed = unicodedata.normalize("NFKD", text)
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(folded.split())


def fill_search_text(apps, schema_editor):
    Track = apps.get_model("mixtapes", "Track")
    batch = []
    for track in Track.objects.only("id", "path", "title", "artist", "album", "album_artist").iterator(2000):
        name = PurePosixPath(track.path).stem
        track.search_text = _normalize(" ".join([track.title, track.artist, track.album, track.album_artist, name]))
        batch.append(track)
        if len(batch) == 2000:
            Track.objects.bulk_update(batch, ["search_text"])
            batch = []
    Track.objects.bulk_update(batch, ["search_text"])


def _run(schema_editor, statements):
    for sql in statements:
        schema_editor.execute(sql)


def install_search_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        _run(schema_editor, SQLITE_INSTALL)
    elif vendor == "postgresql":
        _run(schema_editor, POSTGRES_INSTALL)


def remove_search_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        _run(schema_editor, SQLITE_REMOVE)
    elif vendor == "postgresql":
        _run(schema_editor, POSTGRES_REMOVE)


class Migration(migrations.Migration):
    dependencies = [
        ("mixtapes", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="track",
            name="search_text",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.RunPython(fill_search_text, migrations.RunPython.noop),
        migrations.RunPython(install_search_index, remove_search_index),
    ]
