"""Ids of what the library has no table for, derived from the tags: the same on every scan and on
every server with the same music. Songs are track ids, playlists mixtape ids, as numbers."""

import hashlib

ARTIST, ALBUM, MIXTAPE_COVER, TRACK_COVER = "ar-", "al-", "mt-", "tr-"
UNKNOWN_ARTIST, UNKNOWN_ALBUM = "[Unknown Artist]", "[Unknown Album]"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(p.casefold() for p in parts).encode()).hexdigest()[:16]


def artist_id(name: str) -> str:
    return ARTIST + _digest(name)


def album_id(artist: str, album: str) -> str:
    return ALBUM + _digest(artist, album)
