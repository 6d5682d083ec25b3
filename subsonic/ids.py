"""Ids of what the library has no table for, derived from the tags: the same on every scan and on
every server with the same music. Songs are track ids, as numbers; playlists are ``pl-`` and
the mixtape's id, so that a call that takes ids of several kinds (``createShare``) can tell a
playlist from a song. A bare number is still read as a playlist where only a playlist fits
(apps that kept the ids of an earlier version)."""

import hashlib

from config.numbers import MAX_ID, whole_number

ARTIST, ALBUM, PLAYLIST, MIXTAPE_COVER, TRACK_COVER = "ar-", "al-", "pl-", "mt-", "tr-"
UNKNOWN_ARTIST, UNKNOWN_ALBUM = "[Unknown Artist]", "[Unknown Album]"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(p.casefold() for p in parts).encode()).hexdigest()[:16]


def artist_id(name: str) -> str:
    return ARTIST + _digest(name)


def album_id(artist: str, album: str) -> str:
    return ALBUM + _digest(artist, album)


def playlist_id(mixtape_pk: int) -> str:
    return f"{PLAYLIST}{mixtape_pk}"


def mixtape_pk(value: str | None) -> int | None:
    """The mixtape of a playlist id (``pl-12``, or a bare ``12``), None when it is not one."""
    if not value:
        return None
    return whole_number(value.removeprefix(PLAYLIST), MAX_ID)
