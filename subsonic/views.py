"""``/rest/<method>`` and ``/rest/<method>.view``, GET or POST form (the ``formPost`` extension):
parse the parameters, authenticate, call a selector or a service, render the envelope.

Each method is a small function registered by name; ``endpoint`` does the rest.
"""

import random
from collections.abc import Callable
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Max, Min
from django.http import FileResponse, Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from audiocache.qualities import DEFAULT_FORMAT, FORMATS, ORIGINAL
from audiocache.services import choose_format
from audiocache.views import play_response, play_response_from
from config.numbers import MAX_ID, whole_number
from config.paths import resolve_inside
from mixtapes import artwork, sharing
from mixtapes.covers import shrink_to_jpeg
from mixtapes.models import Mixtape, Track
from mixtapes.search import search_tracks

from . import ids, selectors, services
from .auth import Caller, authenticate
from .protocol import SubsonicError, missing, not_found, render

EXTENSIONS = [
    {"name": "apiKeyAuthentication", "versions": [1]},
    {"name": "formPost", "versions": [1]},
    {"name": "transcodeOffset", "versions": [1]},
]
LATEST_MILLIS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time Python's datetime holds
MAX_LIST = 500  # the most items one list call returns, whatever it asks
COVER_SIZES = (32, 2000)

_methods: dict[str, tuple[Callable, bool]] = {}


def method(name: str, *, public: bool = False):
    def register(function):
        _methods[name] = (function, public)
        return function

    return register


class Call:
    """One API call: its parameters (query string and form together) and who makes it."""

    def __init__(self, request, caller: Caller | None):
        self.request = request
        self.params = request.POST.copy() if request.method == "POST" else request.GET.copy()
        if request.method == "POST":
            for key, values in request.GET.lists():
                self.params.setlist(key, values + self.params.getlist(key))
        self.caller = caller

    @property
    def user(self):
        return self.caller.user

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.params.get(name)
        if required and not value:
            raise missing(name)
        return value

    def number(self, name: str, *, default: int | None = None, required: bool = False, limit: int = MAX_ID) -> int:
        raw = self.params.get(name)
        if raw in (None, ""):
            if required:
                raise missing(name)
            return default
        value = whole_number(raw, limit)
        if value is None:
            raise SubsonicError(SubsonicError.GENERIC, f"Parameter {name} must be a whole number")
        return value

    def playlist(self, name: str, *, required: bool = False) -> int | None:
        """A playlist id (``pl-12``, or the bare number earlier versions gave) as a mixtape id."""
        raw = self.params.get(name)
        if not raw:
            if required:
                raise missing(name)
            return None
        value = ids.mixtape_pk(raw)
        if value is None:
            raise not_found("Playlist")
        return value

    def numbers(self, name: str) -> list[int]:
        values = [whole_number(v, MAX_ID) for v in self.params.getlist(name)[:MAX_LIST]]
        if None in values:
            raise SubsonicError(SubsonicError.GENERIC, f"Parameter {name} must be whole numbers")
        return values

    def moment(self, name: str) -> datetime | None:
        """A time in milliseconds since 1970 (``expires``); absent or 0: none."""
        millis = self.number(name, default=0, limit=LATEST_MILLIS)
        return datetime.fromtimestamp(millis / 1000, tz=UTC) if millis else None

    def flag(self, name: str) -> bool | None:
        raw = self.params.get(name)
        return None if raw is None else raw.lower() in ("true", "1", "yes")


@csrf_exempt  # music apps authenticate every call with a key or token, never with the session cookie
@require_http_methods(["GET", "POST", "HEAD"])
def endpoint(request, name: str):
    if not settings.SUBSONIC_ENABLED:
        raise Http404("The Subsonic API is turned off (SUBSONIC_ENABLED=false).")
    call = Call(request, None)
    found = _methods.get(name)
    try:
        if found is None:
            raise SubsonicError(SubsonicError.NOT_FOUND, f"Unknown method: {name[:60]}")
        function, public = found
        # Apps check a login with ping: credentials, when given, are checked even there.
        if not public or any(call.params.get(k) for k in ("u", "apiKey", "t", "p")):
            call.caller = authenticate(request, call.params)
        result = function(call)
    except SubsonicError as error:
        return render(request, call.params, error=error)
    return result if isinstance(result, HttpResponseBase) else render(request, call.params, result)


# --- system -----------------------------------------------------------------------------------


@method("ping", public=True)
def ping(call):
    return {}


@method("getLicense", public=True)
def get_license(call):
    return {"license": {"valid": True}}


@method("getOpenSubsonicExtensions", public=True)
def get_extensions(call):
    return {"openSubsonicExtensions": EXTENSIONS}


@method("getUser")
def get_user(call):
    user = call.user
    return {
        "user": {
            "username": user.get_username(), "email": user.email or None, "scrobblingEnabled": True,
            "adminRole": user.is_staff, "settingsRole": False, "downloadRole": True, "uploadRole": False,
            "playlistRole": True, "coverArtRole": True, "commentRole": False, "podcastRole": False,
            "streamRole": True, "jukeboxRole": False, "shareRole": sharing.may_publish(user), "videoConversionRole": False,
            "folder": [1],
        }
    }  # fmt: skip


# --- browsing ---------------------------------------------------------------------------------


@method("getMusicFolders")
def get_music_folders(call):
    return {"musicFolders": {"musicFolder": [{"id": 1, "name": "Music"}]}}


@method("getIndexes")
def get_indexes(call):
    index = selectors.artist_groups(with_album_count=False)
    return {"indexes": {"lastModified": 0, "ignoredArticles": selectors.IGNORED_ARTICLES, "index": index}}


@method("getArtists")
def get_artists(call):
    return {"artists": {"ignoredArticles": selectors.IGNORED_ARTICLES, "index": selectors.artist_groups()}}


@method("getArtist")
def get_artist(call):
    artist = selectors.library_index().artists.get(call.text("id", required=True))
    if artist is None:
        raise not_found("Artist")
    albums = sorted(artist.albums.values(), key=lambda a: a.name.casefold())
    return {
        "artist": {
            "id": artist.id, "name": artist.name, "albumCount": len(albums),
            "album": [selectors.album_data(a) for a in albums],
        }
    }  # fmt: skip


@method("getAlbum")
def get_album(call):
    album = selectors.library_index().albums.get(call.text("id", required=True))
    if album is None:
        raise not_found("Album")
    return {
        "album": {**selectors.album_data(album), "song": [selectors.song(t) for t in selectors.album_tracks(album)]}
    }


@method("getSong")
def get_song(call):
    track = selectors.present_tracks().filter(pk=call.number("id", required=True)).first()
    if track is None:
        raise not_found("Song")
    return {"song": selectors.song(track)}


ALBUM_LIST_TYPES = ("random", "newest", "alphabeticalByName", "alphabeticalByArtist", "recent", "frequent")


@method("getAlbumList2")
def get_album_list2(call):
    kind = call.text("type", required=True)
    if kind not in ALBUM_LIST_TYPES:
        raise SubsonicError(
            SubsonicError.GENERIC, f"Unsupported album list type: {kind[:40]} (use {', '.join(ALBUM_LIST_TYPES)})"
        )
    size = min(call.number("size", default=10, limit=10**6), MAX_LIST)
    offset = call.number("offset", default=0, limit=10**9)
    albums = selectors.album_list(kind, size, offset, call.user)
    return {"albumList2": {"album": [selectors.album_data(a) for a in albums]}}


@method("getRandomSongs")
def get_random_songs(call):
    size = min(call.number("size", default=10, limit=10**6), MAX_LIST)
    tracks = selectors.present_tracks()
    bounds = tracks.aggregate(low=Min("pk"), high=Max("pk"))
    picked: dict[int, Track] = {}
    if bounds["low"] is not None:
        ids_range = range(bounds["low"], bounds["high"] + 1)
        # Random ids, not ORDER BY RANDOM(): a fixed cost on a large library, where ids are dense.
        for _ in range(4):
            wanted = random.sample(ids_range, min(len(ids_range), size * 4))
            for track in tracks.filter(pk__in=wanted).exclude(pk__in=list(picked))[: size - len(picked)]:
                picked[track.pk] = track
            if len(picked) >= size:
                break
        if len(picked) < size:  # sparse ids (a small library after deletions): the database picks
            for track in tracks.exclude(pk__in=list(picked)).order_by("?")[: size - len(picked)]:
                picked[track.pk] = track
    return {"randomSongs": {"song": [selectors.song(t) for t in picked.values()]}}


@method("search3")
def search3(call):
    query = (call.text("query") or "").strip().strip('"')
    count = min(call.number("songCount", default=20, limit=10**6), MAX_LIST)
    offset = call.number("songOffset", default=0, limit=10**9)
    songs = []
    if count:
        page_size = count
        page = search_tracks(query, offset // page_size + 1, page_size) if query else None
        rows = page.tracks if page else list(selectors.present_tracks().order_by("pk")[offset : offset + count])
        songs = [selectors.song(t) for t in rows]
    words = query.casefold().split()
    index = selectors.library_index()

    def matches(name: str) -> bool:
        return all(w in name.casefold() for w in words)

    artist_count = min(call.number("artistCount", default=20, limit=10**6), MAX_LIST)
    album_count = min(call.number("albumCount", default=20, limit=10**6), MAX_LIST)
    artists = [a for a in index.artists.values() if matches(a.name)][:artist_count]
    albums = [a for a in index.albums.values() if matches(f"{a.name} {a.artist}")][:album_count]
    return {
        "searchResult3": {
            "artist": [{"id": a.id, "name": a.name, "albumCount": len(a.albums)} for a in artists],
            "album": [selectors.album_data(a) for a in albums],
            "song": songs,
        }
    }


# --- playlists (mixtapes) ---------------------------------------------------------------------


def _visible(call, mixtape_id: int) -> Mixtape:
    mixtape = selectors.visible_mixtapes(call.user).filter(pk=mixtape_id).first()
    if mixtape is None:
        raise not_found("Playlist")
    return mixtape


@method("getPlaylists")
def get_playlists(call):
    mixtapes = selectors.playlists_of(call.user).order_by("-updated_at")[:MAX_LIST]
    summaries = [selectors.playlist_summary(m, m.present_count, m.present_seconds) for m in mixtapes]
    return {"playlists": {"playlist": summaries}}


@method("getPlaylist")
def get_playlist(call):
    mixtape = _visible(call, call.playlist("id", required=True))
    return {"playlist": selectors.playlist(mixtape)}


@method("createPlaylist")
def create_playlist(call):
    songs = call.numbers("songId")
    existing = call.playlist("playlistId")
    if existing is not None:
        mixtape = services.replace_playlist(call.user, existing, songs)
    else:
        mixtape = services.create_playlist(call.user, call.text("name", required=True), songs)
    return {"playlist": selectors.playlist(mixtape)}


@method("updatePlaylist")
def update_playlist(call):
    changes = services.PlaylistChanges(
        name=call.text("name"),
        comment=call.text("comment"),
        public=call.flag("public"),
        add=tuple(call.numbers("songIdToAdd")),
        remove_indexes=tuple(call.numbers("songIndexToRemove")),
    )
    services.update_playlist(call.user, call.playlist("playlistId", required=True), changes)
    return {}


@method("deletePlaylist")
def delete_playlist(call):
    services.delete_playlist(call.user, call.playlist("id", required=True))
    return {}


# --- shares (share links of mixtapes) --------------------------------------------------------


def _shares(call, links) -> dict:
    def url_of(link):
        return call.request.build_absolute_uri(reverse("link", args=[link.token]))

    return {"shares": {"share": selectors.shares(links, url_of)}}


@method("getShares")
def get_shares(call):
    return _shares(call, selectors.shares_of(call.user))


@method("createShare")
def create_share(call):
    request = services.ShareRequest(
        item_ids=tuple(call.params.getlist("id")[:MAX_LIST]),
        description=call.text("description") or "",
        expires_at=call.moment("expires"),
        downloadable=bool(call.flag("downloadable")),
    )
    return _shares(call, [services.create_share(call.user, request)])


@method("updateShare")
def update_share(call):
    changes = services.ShareChanges(
        description=call.text("description"),
        expiry_given="expires" in call.params,
        expires_at=call.moment("expires"),
    )
    services.update_share(call.user, call.number("id", required=True), changes)
    return {}


@method("deleteShare")
def delete_share(call):
    services.delete_share(call.user, call.number("id", required=True))
    return {}


# --- media ------------------------------------------------------------------------------------


def _track(call) -> selectors.SongFacts:
    track = selectors.song_facts(call.number("id", required=True))
    if track is None:
        raise not_found("Song")
    return track


# The Subsonic ``format`` values that name one of our formats; "raw" asks for the original.
SUBSONIC_FORMATS = {"mp3": "mp3", "opus": "opus", "ogg": "opus", "aac": "aac", "m4a": "aac", "mp4": "aac"}


def choose_quality(track, format_: str | None, max_bit_rate: int, fmt: str = DEFAULT_FORMAT) -> str:
    """Which of /stream/'s qualities answers a Subsonic ``stream`` in format ``fmt``: the
    original for ``raw``, for a lossy source (never re-encoded) or when the limit is at least
    the source's own rate; else the highest quality of ``fmt`` at or under ``maxBitRate`` (the
    lowest when none is; 0 = the default)."""
    if format_ == "raw" or not track.is_lossless:
        return ORIGINAL
    if not max_bit_rate:
        return settings.AUDIO_CACHE_DEFAULT_QUALITY
    if track.bitrate and max_bit_rate * 1000 >= track.bitrate:
        return ORIGINAL
    bitrates = FORMATS[fmt].bitrates
    fitting = [name for name, kbps in bitrates.items() if kbps <= max_bit_rate]
    return max(fitting, key=bitrates.get) if fitting else min(bitrates, key=bitrates.get)


@method("stream")
def stream(call):
    track = _track(call)
    asked = (call.text("format") or "").lower()
    seconds = call.number("timeOffset", default=0, limit=10**7)
    # A play from an offset is cut from an MP3 or encoded live as one (services/offset.py).
    fmt = (
        DEFAULT_FORMAT
        if seconds
        else choose_format(SUBSONIC_FORMATS.get(asked), user=call.user, accept=call.request.headers.get("Accept", ""))
    )
    quality = choose_quality(track, asked, call.number("maxBitRate", default=0, limit=10**6), fmt)
    if seconds and quality != ORIGINAL:
        try:
            return play_response_from(call.request, track.pk, quality, seconds, call.user)
        except Http404:
            raise not_found("Song") from None
    return _play(call, track, quality, fmt)


@method("download")
def download(call):
    return _play(call, _track(call), "original")


def _play(call, track, quality, fmt=DEFAULT_FORMAT):
    try:
        return play_response(call.request, track.pk, quality, user=call.user, fmt=fmt)
    except Http404:
        raise not_found("Song") from None


@method("scrobble")
def scrobble(call):
    track_ids = call.numbers("id")
    if not track_ids:
        raise missing("id")
    if call.flag("submission") is False:
        return {}  # "now playing": nothing is counted
    services.scrobble(call.user, track_ids, call.numbers("time"), call.caller.client)
    return {}


@method("getCoverArt")
def get_cover_art(call):
    """``mt-<id>``: a mixtape's cover (its own, else the mosaic); ``tr-<id>``: a track's picture;
    ``al-<id>``: its album's (the first track that has one). Thumbnails from mixtapes.artwork."""
    cover_id = call.text("id", required=True)
    size = call.number("size", limit=10**6)
    if cover_id.startswith(ids.MIXTAPE_COVER):
        return _mixtape_cover(call, whole_number(cover_id.removeprefix(ids.MIXTAPE_COVER), MAX_ID), size)
    if cover_id.startswith(ids.TRACK_COVER):
        tracks = Track.objects.filter(pk=whole_number(cover_id.removeprefix(ids.TRACK_COVER), MAX_ID) or 0)
    elif cover_id.startswith(ids.ALBUM):
        album = selectors.library_index().albums.get(cover_id)
        tracks = selectors.album_tracks(album) if album else []
    else:
        raise not_found("Cover art")
    for track in tracks[:20]:
        path = artwork.thumbnail(track, size)
        if path is not None:
            return _jpeg(path)
    raise not_found("Cover art")


def _mixtape_cover(call, mixtape_id, size):
    mixtape = selectors.visible_mixtapes(call.user).filter(pk=mixtape_id or 0).first()
    if mixtape is None:
        raise not_found("Cover art")
    if not mixtape.cover:
        path = artwork.mosaic([e.track for e in mixtape.entries.select_related("track").order_by("position")])
        if path is None:
            raise not_found("Cover art")
        return _jpeg(path)
    path = resolve_inside(settings.MEDIA_ROOT, mixtape.cover.name)
    if path is None:
        raise not_found("Cover art")
    if not size:
        return _jpeg(path)
    try:
        with open(path, "rb") as source:  # the same bounded decoder as uploads
            data = shrink_to_jpeg(source, max(COVER_SIZES[0], min(size, COVER_SIZES[1])))
    except (OSError, ValidationError):
        raise not_found("Cover art") from None
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response


def _jpeg(path):
    try:
        response = FileResponse(open(path, "rb"), content_type="image/jpeg")  # noqa: SIM115 - the response closes it
    except OSError:
        raise not_found("Cover art") from None
    response["Cache-Control"] = "private, max-age=86400"
    return response
