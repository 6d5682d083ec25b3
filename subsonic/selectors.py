"""Reads behind the API: the library seen as artists, albums and songs (from the tags), and
mixtapes seen as playlists. Each returns plain data in the API's shapes (``protocol.render``
turns it into XML or JSON)."""

import threading
import time
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from config.prepared import PreparedQuery
from mixtapes import sharing
from mixtapes.models import Mixtape, MixtapeTrack, ShareLink, Track

from . import ids
from .models import Scrobble, StreamingPassword

LOSSLESS_TRANSCODE = {"transcodedContentType": "audio/mpeg", "transcodedSuffix": "mp3"}
IGNORED_ARTICLES = "The El La Los Las Le Les"
SONG_FIELDS = (
    "id", "path", "title", "artist", "album", "album_artist", "track_number", "disc_number", "duration",
    "codec", "container", "sample_rate", "bit_depth", "channels", "bitrate", "is_lossless", "has_cover",
    "file_size", "added_at",
)  # fmt: skip

CONTENT_TYPES = {
    "flac": ("audio/flac", "flac"), "alac": ("audio/mp4", "m4a"), "aac": ("audio/mp4", "m4a"),
    "mp3": ("audio/mpeg", "mp3"), "wavpack": ("audio/x-wavpack", "wv"), "ape": ("audio/x-ape", "ape"),
    "opus": ("audio/ogg", "opus"), "vorbis": ("audio/ogg", "ogg"),
}  # fmt: skip


def artist_name(track) -> str:
    return track.album_artist or track.artist or ids.UNKNOWN_ARTIST


def album_name(track) -> str:
    return track.album or ids.UNKNOWN_ALBUM


def _content_type(track) -> tuple[str, str]:
    if track.codec in CONTENT_TYPES:
        return CONTENT_TYPES[track.codec]
    if track.codec.startswith("pcm_"):
        return ("audio/aiff", "aiff") if "be" in track.codec[-2:] else ("audio/wav", "wav")
    suffix = track.path.rsplit(".", 1)[-1].lower() if "." in track.path else ""
    return "application/octet-stream", suffix


def moment(value) -> str | None:
    """A time as the API writes it (ISO 8601 to the second); None stays None (left out)."""
    return value.isoformat(timespec="seconds") if value is not None else None


def song(track) -> dict:
    artist, album = artist_name(track), album_name(track)
    content_type, suffix = _content_type(track)
    data = {
        "id": str(track.pk),
        "parent": ids.album_id(artist, album),
        "isDir": False,
        "title": track.title or track.path.rsplit("/", 1)[-1],
        "album": album,
        "artist": track.artist or artist,
        "track": track.track_number,
        "discNumber": track.disc_number,
        "size": track.file_size,
        "contentType": content_type,
        "suffix": suffix,
        "duration": round(track.duration or 0),
        "bitRate": round((track.bitrate or 0) / 1000) or None,
        "samplingRate": track.sample_rate,
        "bitDepth": track.bit_depth,
        "channelCount": track.channels,
        "path": track.path,
        "isVideo": False,
        "type": "music",
        "mediaType": "song",
        "created": moment(track.added_at),
        "albumId": ids.album_id(artist, album),
        "artistId": ids.artist_id(artist),
        "coverArt": ids.TRACK_COVER + str(track.pk),
    }
    if track.is_lossless:
        data.update(LOSSLESS_TRANSCODE)
    return data


def present_tracks():
    return Track.objects.filter(missing_since__isnull=True).only(*SONG_FIELDS)


# --- artists and albums (grouped from the tags; cached until the library changes) --------------


@dataclass
class Album:
    id: str
    name: str
    artist: str
    song_count: int = 0
    duration: float = 0.0
    created: object = None
    cover_track: int | None = None


@dataclass
class Artist:
    id: str
    name: str
    albums: dict[str, Album] = field(default_factory=dict)


@dataclass
class LibraryIndex:
    artists: dict[str, Artist]
    albums: dict[str, Album]
    groups: dict[bool, list[dict]] = field(default_factory=dict)  # artist_groups, made once


# How long the index is used before the library is asked whether it changed (a count over every
# track: ~10 ms at 100,000). A scan's changes reach the API within this.
INDEX_CHECK_SECONDS = 10.0
_index_lock = threading.Lock()
_index: tuple[tuple, LibraryIndex] | None = None
_index_checked = 0.0


def library_index() -> LibraryIndex:
    """Artists and albums by id. Rebuilt when the library changed (count, newest scan), so a
    lookup by id costs a dict access; on 100,000 tracks a rebuild reads one grouped query
    (about 0.3 s)."""
    global _index, _index_checked
    with _index_lock:
        if _index is not None and time.monotonic() - _index_checked < INDEX_CHECK_SECONDS:
            return _index[1]
    present = Track.objects.filter(missing_since__isnull=True)
    version = tuple(present.aggregate(n=Count("id"), scanned=Max("scanned_at"), top=Max("id")).values())
    with _index_lock:
        if _index is not None and _index[0] == version:
            _index_checked = time.monotonic()
            return _index[1]
    rows = (
        present.values("album_artist", "artist", "album")
        .annotate(songs=Count("id"), seconds=Sum("duration"), created=Max("added_at"),
                  cover=Max("id", filter=Q(has_cover=True)))
        .order_by()
    )  # fmt: skip
    artists: dict[str, Artist] = {}
    albums: dict[str, Album] = {}
    for row in rows:
        name = row["album_artist"] or row["artist"] or ids.UNKNOWN_ARTIST
        title = row["album"] or ids.UNKNOWN_ALBUM
        artist = artists.setdefault(ids.artist_id(name), Artist(ids.artist_id(name), name))
        album_key = ids.album_id(name, title)
        album = artist.albums.get(album_key)
        if album is None:
            album = artist.albums[album_key] = albums[album_key] = Album(album_key, title, name)
        album.song_count += row["songs"]
        album.duration += row["seconds"] or 0
        album.created = max(filter(None, [album.created, row["created"]]), default=None)
        album.cover_track = album.cover_track or row["cover"]
    index = LibraryIndex(artists, albums)
    with _index_lock:
        _index, _index_checked = (version, index), time.monotonic()
    return index


def forget_index() -> None:
    """Read the library again at the next call (tests that change it and look at once)."""
    global _index
    with _index_lock:
        _index = None


def album_data(album: Album) -> dict:
    return {
        "id": album.id,
        "name": album.name,
        "artist": album.artist,
        "artistId": ids.artist_id(album.artist),
        "songCount": album.song_count,
        "duration": round(album.duration),
        "created": moment(album.created or timezone.now()),
        "coverArt": album.id,
    }


def _sort_name(name: str) -> str:
    lowered = name.casefold()
    for article in IGNORED_ARTICLES.casefold().split():
        if lowered.startswith(article + " "):
            return lowered[len(article) + 1 :]
    return lowered


def artist_groups(*, with_album_count: bool = True) -> list[dict]:
    """Artists under index letters (A-Z, "#" for the rest), articles ignored."""
    index = library_index()
    made = index.groups.get(with_album_count)
    if made is None:
        made = index.groups[with_album_count] = _artist_groups(index, with_album_count)
    return made


def _artist_groups(index: LibraryIndex, with_album_count: bool) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for artist in sorted(index.artists.values(), key=lambda a: _sort_name(a.name)):
        first = _sort_name(artist.name)[:1].upper()
        letter = first if first.isalpha() and first.isascii() else "#"
        entry = {"id": artist.id, "name": artist.name}
        if with_album_count:
            entry["albumCount"] = len(artist.albums)
        groups.setdefault(letter, []).append(entry)
    return [{"name": letter, "artist": entries} for letter, entries in sorted(groups.items())]


def album_tracks(album: Album) -> list:
    artist_filter = Q(album_artist=album.artist) | Q(album_artist="", artist=album.artist)
    if album.artist == ids.UNKNOWN_ARTIST:
        artist_filter = Q(album_artist="", artist="")
    album_filter = Q(album="") if album.name == ids.UNKNOWN_ALBUM else Q(album=album.name)
    rows = present_tracks().filter(artist_filter, album_filter).order_by("disc_number", "track_number", "path")
    # The tags compare without case in the ids: keep only this album's exact spelling group.
    return [t for t in rows if ids.album_id(artist_name(t), album_name(t)) == album.id]


# --- album lists ------------------------------------------------------------------------------


def album_list(kind: str, size: int, offset: int, user) -> list[Album]:
    albums = list(library_index().albums.values())
    if kind == "random":
        import random

        random.shuffle(albums)
    elif kind == "newest":
        albums.sort(key=lambda a: a.created or timezone.now(), reverse=True)
    elif kind == "alphabeticalByName":
        albums.sort(key=lambda a: _sort_name(a.name))
    elif kind == "alphabeticalByArtist":
        albums.sort(key=lambda a: (_sort_name(a.artist), _sort_name(a.name)))
    elif kind in ("recent", "frequent"):
        plays = Scrobble.objects.filter(user=user).values("track")
        if kind == "recent":
            ranked = plays.annotate(last=Max("played_at")).order_by("-last")
        else:
            ranked = plays.annotate(n=Count("id")).order_by("-n")
        track_ids = [row["track"] for row in ranked[:5000]]
        tracks = Track.objects.only("album_artist", "artist", "album").in_bulk(track_ids)
        order: dict[str, int] = {}
        for track_id in track_ids:
            if track_id in tracks:
                track = tracks[track_id]
                order.setdefault(ids.album_id(artist_name(track), album_name(track)), len(order))
        albums = sorted((a for a in albums if a.id in order), key=lambda a: order[a.id])
    return albums[offset : offset + size]


# --- playlists (mixtapes) ---------------------------------------------------------------------


def visible_mixtapes(user):
    """The user's own mixtapes and every shared one."""
    return Mixtape.objects.filter(Q(owner=user) | sharing.shared_q()).select_related("owner").distinct()


def playlists_of(user):
    """``visible_mixtapes`` with each one's count and length of present tracks: the list costs
    one query, however many mixtapes it holds."""
    present = Q(entries__track__missing_since__isnull=True)
    return visible_mixtapes(user).annotate(
        present_count=Count("entries", filter=present), present_seconds=Sum("entries__track__duration", filter=present)
    )


def playlist_summary(mixtape: Mixtape, count: int, seconds: float | None) -> dict:
    return {
        "id": ids.playlist_id(mixtape.pk),
        "name": mixtape.title,
        "comment": mixtape.liner_notes or None,
        "owner": mixtape.owner.get_username(),
        "public": mixtape.is_shared,
        "songCount": count,
        "duration": round(seconds or 0),
        "created": moment(mixtape.created_at),
        "changed": moment(mixtape.updated_at),
        "coverArt": ids.MIXTAPE_COVER + str(mixtape.pk) if mixtape.cover else None,
    }


def playlist(mixtape: Mixtape) -> dict:
    """A playlist with its songs (its present tracks, in order)."""
    entries = list(
        MixtapeTrack.objects.filter(mixtape=mixtape, track__missing_since__isnull=True)
        .select_related("track")
        .order_by("position")
    )
    summary = playlist_summary(mixtape, len(entries), sum(e.track.duration or 0 for e in entries))
    return {**summary, "entry": [song(e.track) for e in entries]}


# --- shares (a mixtape's share links) ----------------------------------------------------------

MAX_SHARES = 200  # the most links getShares lists (the newest)


def shares_of(user) -> list[ShareLink]:
    """The user's share links, newest first, but those revoked (``deleteShare`` revokes one; the
    editor still lists it)."""
    links = ShareLink.objects.filter(mixtape__owner=user, revoked_at__isnull=True)
    return list(links.select_related("mixtape__owner")[:MAX_SHARES])


def shares(links: list[ShareLink], url_of) -> list[dict]:
    """``links`` as the API's shares, each with its mixtape's present songs (one query for all);
    ``url_of(link)`` is the link's absolute address."""
    songs: dict[int, list[dict]] = {link.mixtape_id: [] for link in links}
    entries = (
        MixtapeTrack.objects.filter(mixtape_id__in=list(songs), track__missing_since__isnull=True)
        .select_related("track")
        .order_by("mixtape_id", "position")
    )
    for entry in entries:
        songs[entry.mixtape_id].append(song(entry.track))
    return [
        {
            "id": str(link.pk),
            "url": url_of(link),
            "description": link.label or link.mixtape.title,
            "username": link.mixtape.owner.get_username(),
            "created": moment(link.created_at),
            "expires": moment(link.expires_at),
            "lastVisited": moment(link.last_visited_at),
            "visitCount": link.visits,
            "entry": songs[link.mixtape_id],
        }
        for link in links
    ]


# --- the two reads of every streamed song (config/prepared.py says why they are prepared) ---------


def _user_fields():
    return list(get_user_model()._meta.concrete_fields)


_LOGIN = PreparedQuery(
    lambda username: StreamingPassword.objects.filter(user__username=username, user__is_active=True).values_list(
        "pk", "ciphertext", "last_used_at", *(f"user__{f.name}" for f in _user_fields())
    )[:1],
    marker="\x00username",
)


def streaming_login(username: str):
    """``(user, streaming password row)`` of an active user who has a streaming password, in one
    query; None otherwise."""
    rows = _LOGIN.rows(username)
    if not rows:
        return None
    pk, ciphertext, last_used_at, *user_values = rows[0]
    user = get_user_model().from_db(connection.alias, [f.attname for f in _user_fields()], user_values)
    row = StreamingPassword.from_db(connection.alias, ["id", "user_id", "ciphertext", "last_used_at"],
                                    [pk, user.pk, ciphertext, last_used_at])  # fmt: skip
    row.user = user
    return user, row


@dataclass(frozen=True)
class SongFacts:
    """What ``stream`` needs of a song to choose its quality."""

    pk: int
    is_lossless: bool
    bitrate: int | None


_SONG = PreparedQuery(
    lambda pk: Track.objects.filter(pk=pk, missing_since__isnull=True).values_list("pk", "is_lossless", "bitrate"),
    marker=987_654_321_987,
)


def song_facts(track_id: int) -> SongFacts | None:
    """The present track's facts (None for an unknown or missing one), in one prepared query."""
    rows = _SONG.rows(track_id)
    return SongFacts(*rows[0]) if rows else None
