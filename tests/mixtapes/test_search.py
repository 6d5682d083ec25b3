"""Library search (mixtapes/search.py, /library/search/): every word in any field, case and accents
ignored, pages, odd queries, and the trigram index each database uses.
"""

import pytest
from django.db import connection

from mixtapes.models import Track
from mixtapes.search import search_tracks
from tests.factories import TrackFactory

pytestmark = pytest.mark.django_db


def test_search_matches_words_across_fields_ignoring_case_and_accents(client, alice):
    TrackFactory(title="Après minuit", artist="Ensemble Ondes", album="Café Nocturne")
    TrackFactory(title="Morning", artist="The Test Tones", album="Signal Garden")
    TrackFactory(title="Gone", artist="Ensemble Ondes", missing_since="2026-01-01T00:00Z")
    TrackFactory(title="", path="Loose/untitled cafe demo.flac")

    def titles(q, page=1):
        data = client.get("/library/search/", {"q": q, "page": page}).json()
        return sorted(r["title"] for r in data["results"])

    assert titles("APRES") == ["Après minuit"]
    assert titles("cafe") == ["Après minuit", "untitled cafe demo"]
    assert titles("ondes nocturne") == ["Après minuit"]  # every word, any field
    assert titles("ondes garden") == []
    assert titles("") == ["Après minuit", "Morning", "untitled cafe demo"]  # everything present
    assert titles("%") == [] and titles("_") == [] and titles('"') == []


def test_search_pages(client, alice):
    for n in range(30):
        TrackFactory(title=f"Song {n:02d}", album="Paged")
    first = client.get("/library/search/", {"q": "paged"}).json()
    second = client.get("/library/search/", {"q": "paged", "page": "2"}).json()
    assert len(first["results"]) == 25 and first["has_next"] and not first["has_previous"]
    assert len(second["results"]) == 5 and not second["has_next"] and second["has_previous"]
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}
    for junk in ["0", "-3", "abc", "9" * 30, "２"]:  # not a page number: the first page
        response = client.get("/library/search/", {"q": "paged", "page": junk})
        assert response.status_code == 200 and response.json() == first, junk


def test_search_matches_folder_names(client, alice):
    TrackFactory(title="Intro", path="Boards of Canada/Geogaddi (2002)/01 Ready Lets Go.flac")
    titles = [r["title"] for r in client.get("/library/search/", {"q": "geogaddi 2002"}).json()["results"]]
    assert titles == ["Intro"]


# Odd queries and what they find of a track titled "Hello music" (by Test Artist, on Test Album).
ODD_QUERIES = {
    "hel\x00lo": ["Hello music"],  # control characters separate words: "hel" and "lo"
    "\x00": ["Hello music"],  # nothing left to look for: everything
    "a\x1fb": ["Hello music"],  # "a" and "b" ("Test Album")
    "\u200b": [],  # a zero-width space is a character like any other, found nowhere
    "🎵 music": [],
    "' OR 1=1 --": [],  # searched for as text, never as SQL
    'x" AND "y': [],  # nor as FTS5 syntax
}


@pytest.mark.parametrize("query", list(ODD_QUERIES))
def test_search_never_fails_on_odd_queries(client, alice, query):
    TrackFactory(title="Hello music")
    response = client.get("/library/search/", {"q": query})
    assert response.status_code == 200
    assert [r["title"] for r in response.json()["results"]] == ODD_QUERIES[query]


def test_search_follows_renames_and_deletions():
    track = TrackFactory(title="Before")
    assert [t.pk for t in search_tracks("before").tracks] == [track.pk]
    Track.objects.filter(pk=track.pk).update(title="After")  # a queryset update skips save()...
    track.refresh_from_db()
    track.save()  # ...save() recomputes the search text
    assert search_tracks("before").tracks == [] and [t.pk for t in search_tracks("after").tracks] == [track.pk]
    track.delete()
    assert search_tracks("after").tracks == []


def test_a_rescan_updates_search_text(music_root, make_audio):
    from mixtapes.library import scan_library

    path = make_audio("A/song.flac", kind="flac", duration=1, tags={"title": "Original Name"})
    scan_library(music_root)
    assert [t.title for t in search_tracks("original").tracks] == ["Original Name"]
    make_audio("A/song.flac", kind="flac", duration=1, tags={"title": "Renamed Song"})
    import os

    os.utime(path, ns=(1, 1))  # a different mtime makes the scan probe it again
    scan_library(music_root)
    assert search_tracks("original").tracks == []
    assert [t.title for t in search_tracks("renamed").tracks] == ["Renamed Song"]


def test_search_uses_the_trigram_index():
    TrackFactory(title="Indexed")
    sql, params = search_tracks.__globals__["matching_tracks"]("indexed").query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = " ".join(str(row) for row in cursor.fetchall())
            assert "VIRTUAL TABLE INDEX" in plan and "mixtapes_track_search" in plan
        else:
            # With one row any plan is cheap; rule out the others to show this index can answer.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute("EXPLAIN " + sql, params)
            plan = " ".join(row[0] for row in cursor.fetchall())
            assert "track_search_trgm_idx" in plan
