"""A track's file on disk: where it is (never outside MUSIC_ROOT) and what it is now.

The stream view, the queue and the transcoder all ask here, so that one rule decides which
file a track may read: its path relative to MUSIC_ROOT, resolved, must stay inside it.
"""

import stat
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from config.paths import resolve_inside

from .models import Track


class SourceUnavailable(Exception):
    """The track's file is missing, unreadable or outside MUSIC_ROOT."""


@dataclass(frozen=True)
class SourceState:
    """The track's file as it is now: what a rendition records it was made from."""

    path: Path
    size: int
    mtime_ns: int


def source_path(track: Track) -> Path:
    """The track's file, resolved; raises ``SourceUnavailable`` if it leaves MUSIC_ROOT."""
    resolved = resolve_inside(settings.MUSIC_ROOT, track.path)
    if resolved is None:
        raise SourceUnavailable(f"track {track.pk} points outside MUSIC_ROOT")
    return Path(resolved)


def source_state(track: Track) -> SourceState:
    path = source_path(track)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SourceUnavailable("source file not found (moved or deleted since the last scan?)") from None
    except OSError as exc:
        raise SourceUnavailable(f"source file cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SourceUnavailable("source is not a regular file")
    return SourceState(path, st.st_size, st.st_mtime_ns)
