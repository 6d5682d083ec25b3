"""Library search for the editor: every word of the query must occur in a track's title,
artist, album, album artist or file name; case and accents are ignored.

A substring search (``LIKE '%word%'``) cannot use a B-tree index, so each database gets a
trigram index over ``Track.search_text`` (created by migration 0002):

- PostgreSQL: a ``pg_trgm`` GIN index; ``search_text LIKE '%word%'`` uses it directly.
- SQLite: an FTS5 table with the ``trigram`` tokenizer, kept in step with the track table by
  triggers; a quoted FTS5 phrase matches any substring of three or more characters.

Words shorter than three characters cannot use a trigram index: they only narrow what the
longer words found (or scan, when the query holds nothing longer). Results come in album
order, a page at a time, without a COUNT over the whole library.
"""

import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.db import connection
from django.db.models.expressions import RawSQL

from .models import Track

PAGE_SIZE = 25
MAX_TERMS = 8
MAX_TERM_LENGTH = 100
TRIGRAM = 3
SQLITE_TABLE = "mixtapes_track_search"
SQLITE_MATCH = "SELECT rowid FROM mixtapes_track_search WHERE mixtapes_track_search MATCH %s"


def normalize(text: str) -> str:
    """Lower-case, strip accents ("Beyoncé" -> "beyonce"), control characters (a NUL would
    end SQLite's FTS query string) and repeated whitespace."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = (" " if unicodedata.category(ch) == "Cc" else ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join("".join(kept).casefold().split())


def search_text_for(track: Track) -> str:
    # The path without its extension, folders included ("Artist/Album (2020)/01 Song").
    path = str(PurePosixPath(track.path).with_suffix("")) if track.path else ""
    return normalize(" ".join([track.title, track.artist, track.album, track.album_artist, path.replace("/", " ")]))


def query_terms(query: str) -> list[str]:
    terms = [term[:MAX_TERM_LENGTH] for term in normalize(query).split()]
    return list(dict.fromkeys(terms))[:MAX_TERMS]


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def matching_tracks(query: str):
    """Tracks (present on disk) whose search text holds every word of ``query``."""
    tracks = Track.objects.filter(missing_since__isnull=True)
    terms = query_terms(query)
    if connection.vendor == "sqlite":
        indexed = [term for term in terms if len(term) >= TRIGRAM]
        if indexed:
            # One MATCH for all words (FTS5 intersects them itself); the words are a bound
            # parameter, only our constant table name is in the SQL text.
            expression = " AND ".join(_fts_phrase(term) for term in indexed)
            tracks = tracks.filter(id__in=RawSQL(SQLITE_MATCH, [expression]))  # noqa: S611
        terms = [term for term in terms if len(term) < TRIGRAM]
    for term in terms:
        tracks = tracks.filter(search_text__contains=term)
    return tracks


@dataclass
class SearchPage:
    tracks: list[Track]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def search_tracks(query: str, page: int = 1, page_size: int = PAGE_SIZE) -> SearchPage:
    page = max(1, page)
    start = (page - 1) * page_size
    # One row more than the page tells whether there is a next page, without counting.
    rows = list(
        matching_tracks(query).only(
            "id",
            "path",
            "title",
            "artist",
            "album",
            "duration",
            "codec",
            "container",
            "is_lossless",
            "bit_depth",
            "sample_rate",
            "bitrate",
        )[start : start + page_size + 1]
    )
    return SearchPage(tracks=rows[:page_size], number=page, has_next=len(rows) > page_size)
