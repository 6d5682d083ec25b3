"""Validators and conditional requests (RFC 9110 section 13): ETag, Last-Modified, If-Match,
If-None-Match, If-Modified-Since, If-Unmodified-Since and If-Range, for one file's bytes.

Django's ``condition`` decorator answers these for a view as a whole; here the validators
belong to the file the service chose and opened, known only inside the view, and If-Range
(which Django does not handle) decides whether a Range applies.
"""

import hashlib
import os
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime


@dataclass(frozen=True)
class FileIdentity:
    """What a response says about the bytes it serves."""

    size: int
    mtime: float | None  # None: no date to validate by (a file still being written)
    etag: str  # quoted; strong unless it starts with W/

    @property
    def last_modified(self) -> str | None:
        return None if self.mtime is None else formatdate(int(self.mtime), usegmt=True)


def identity(st: os.stat_result, salt: str) -> FileIdentity:
    """A strong ETag that changes when the bytes change: ``salt`` names the file (rendition vs
    original, which file), size and mtime in nanoseconds catch a rewrite in place."""
    digest = hashlib.sha256(f"{salt}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:24]
    return FileIdentity(st.st_size, st.st_mtime, f'"{digest}"')


def _etags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _weak_match(header: str, etag: str) -> bool:
    tags = _etags(header)
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def _http_date(value: str):
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed.timestamp() if parsed.tzinfo else None


def precondition_status(request, ident: FileIdentity) -> int | None:
    """412 or 304 per RFC 9110 section 13.2.2, or None to go on."""
    if_match = request.headers.get("If-Match")
    if if_match is not None:
        tags = _etags(if_match)
        if "*" not in tags and ident.etag not in tags:  # strong comparison
            return 412
    elif ident.mtime is not None:
        since = request.headers.get("If-Unmodified-Since")
        when = _http_date(since) if since else None
        if when is not None and int(ident.mtime) > when:
            return 412
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        if _weak_match(if_none_match, ident.etag):
            return 304 if request.method in ("GET", "HEAD") else 412
    elif request.method in ("GET", "HEAD") and ident.mtime is not None:
        since = request.headers.get("If-Modified-Since")
        when = _http_date(since) if since else None
        if when is not None and int(ident.mtime) <= when:
            return 304
    return None


def if_range_allows(request, ident: FileIdentity) -> bool:
    """A Range applies only if If-Range (when sent) still names this representation."""
    value = request.headers.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == ident.etag and not value.startswith("W/")  # strong comparison: never a weak tag
    return ident.mtime is not None and _http_date(value) == int(ident.mtime) and value == ident.last_modified
