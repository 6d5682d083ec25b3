"""Answering a play: which file a stream request gets, decided once, in one place.

``play`` takes a ``PlayRequest`` and returns a ``Play`` (an open file and what to say about
it) or ``WaitForTranscode``. In order:

1. unknown, or private to a listener who is not signed in and holds no live share link to a
   mixtape with it: ``NotPlayable`` ("No such track": whether a private track exists is
   nobody else's business);
2. the original asked for, a lossy source, or the cache turned off: the original (``bypass``);
3. a fresh rendition: the rendition (``hit``);
4. a transcode being written that can be followed: the growing file (``progressive``);
5. otherwise a miss: a play-priority task is queued (or joined); when its file will be
   followable and this request starts a play, the caller may wait for ffmpeg's first frame
   (``WaitForTranscode``) and ask again with ``may_wait=False``; else the original (``miss``).

Files are opened here, so a rendition evicted between the look-up and the response falls
back to the original, and an original that vanished marks the track missing. Plays (a GET
from the start of the file) are counted by outcome, and hits per rendition.
"""

import logging
import os
from dataclasses import dataclass, replace

from django.conf import settings

from mixtapes.files import SourceState, SourceUnavailable, source_path, source_state
from mixtapes.models import Track
from mixtapes.selectors import link_grants_track
from mixtapes.services import mark_missing

from .. import selectors
from ..delivery.files import StoredFile, content_type_for, means_no_file, open_regular
from ..delivery.growing import GrowingFile
from ..delivery.ranges import from_the_start
from ..models import CachedRendition, CacheTask
from ..qualities import DEFAULT_FORMAT, FORMATS, ORIGINAL, Variant
from ..queue import tasks
from ..renditions import made_from, planned_frames, rendition_path
from . import following, play_counts

logger = logging.getLogger(__name__)


class NotPlayable(Exception):
    """No such track for this listener, or its file is gone; ``str()`` says which, for a 404."""


@dataclass(frozen=True)
class PlayRequest:
    """What deciding a play needs to know of a stream request."""

    track_id: int
    quality: str  # a quality name or "original"
    user: object  # who asks (Django's lazy request.user: looked at only for private tracks)
    method: str = "GET"
    range_header: str | None = None
    may_wait: bool = True  # False once the request has waited for its transcode
    share_token: str = ""  # a share link's token (``?share=``): opens the tracks of its mixtape
    format: str = DEFAULT_FORMAT  # of the rendition: mp3, opus or aac (services/formats.py chooses)

    @property
    def variant(self) -> Variant | None:
        """The rendition asked for; None for the original."""
        return None if self.quality == ORIGINAL else Variant(self.format, self.quality)

    @property
    def from_start(self) -> bool:
        return from_the_start(self.range_header)

    @property
    def starts_play(self) -> bool:
        """A play is a GET from the start of the file; a player's later range requests
        (seeks, buffering) are the same play and are not counted again."""
        return self.method == "GET" and self.from_start


@dataclass(frozen=True)
class Play:
    """How to answer: ``file`` (open), and what the answer says about it."""

    track_id: int
    public: bool  # on a public mixtape: shared caches may keep it
    cache_state: str  # hit, miss, progressive or bypass (the X-Audio-Cache header)
    file: StoredFile | GrowingFile


@dataclass(frozen=True)
class WaitForTranscode:
    """Ask again with ``may_wait=False`` once task ``task_id`` writes its file (or the wait is over)."""

    task_id: int


def play(request: PlayRequest) -> Play | WaitForTranscode:
    return _decide(request)


def _decide(request: PlayRequest, *, looked_again: bool = False) -> Play | WaitForTranscode:
    variant = request.variant
    found = selectors.stream_lookup(request.track_id, variant or ORIGINAL)
    if found is None:
        raise NotPlayable("No such track.")
    track, public, rendition = found
    if not public and not _may_hear_private(request, track.pk):
        raise NotPlayable("No such track.")  # not 403: do not confirm that a private track exists

    if not (settings.AUDIO_CACHE_ENABLED and variant is not None and track.is_lossless):
        return _original(request, track, public, "bypass")
    source = _current_source(track)
    hit = _hit(request, rendition, source, public)
    if hit is not None:
        return hit
    # A format whose length can be planned (MP3) is followed with it; the others without one
    # (services/following.py).
    followable = (
        settings.AUDIO_CACHE_PROGRESSIVE
        and source is not None
        and (not variant.spec.planned_length or planned_frames(track, source) is not None)
    )
    # One look at the queue serves both: a transcode being written is followed, a task another
    # listener queued is joined without the enqueue's checks and writes.
    task = tasks.active_task(track.pk, variant)
    growing = following.follow_task(task) if followable else None
    if growing is not None:
        return _counted(request, Play(track.pk, public, "progressive", growing), "miss")
    if task is None or task.priority < CacheTask.PRIORITY_PLAY:
        # A miss: make it at play priority (a failed source stays quarantined).
        task = tasks.enqueue([track], [variant], priority=CacheTask.PRIORITY_PLAY).get((track.pk, variant))
    if task == tasks.ALREADY_CACHED and not looked_again:  # finished since the look-up above: look again
        return _decide(replace(request, may_wait=False), looked_again=True)
    if followable and isinstance(task, CacheTask) and _may_wait(request, task):
        return WaitForTranscode(task.pk)
    return _original(request, track, public, "miss")


def _may_hear_private(request: PlayRequest, track_id: int) -> bool:
    """Signed in (the library is every account's), or holding a live link to a mixtape with
    the track: one more query, only for a private track asked for with a token."""
    if request.user.is_authenticated:
        return True
    return bool(request.share_token) and link_grants_track(request.share_token, track_id)


def _may_wait(request: PlayRequest, task: CacheTask) -> bool:
    """Wait for a followable transcode only for the start of a play (the first bytes, or the
    player's HEAD) or while it is being written: a later range then comes from a listener
    following it, who must not get the original's bytes in the moment between its publication
    and its row (it gets the finished file). A seek into an original being served, while the
    task waits for a worker, never waits."""
    if not request.may_wait or not settings.AUDIO_CACHE_PROGRESSIVE_WAIT:
        return False
    return request.from_start or task.status == CacheTask.Status.RUNNING


def wait_for_transcode(task_id: int) -> bool:
    """Block this thread until task ``task_id`` writes a followable file, or the wait is over."""
    return following.wait_for_output(task_id)


def _current_source(track: Track) -> SourceState | None:
    try:
        return source_state(track)
    except SourceUnavailable:
        return None  # _original says what is wrong


def _hit(request, rendition: CachedRendition | None, source: SourceState | None, public: bool) -> Play | None:
    """The fresh rendition, opened, or None."""
    if source is None or rendition is None or not made_from(rendition, source):
        return None
    path = rendition_path(rendition)
    if path is None:
        return None
    try:
        file, st = open_regular(path)
    except OSError:
        return None  # evicted (or never written): a miss
    play_counts.record_hit(rendition.pk)
    content_type = FORMATS[rendition.format].content_type
    stored = StoredFile(file, st, content_type, f"r:{path.name}", root="cache", name=path.name)
    return _counted(request, Play(rendition.track_id, public, "hit", stored), "hit")


def _original(request, track: Track, public: bool, cache_state: str) -> Play:
    try:
        path = source_path(track)  # resolved and checked to be inside MUSIC_ROOT
    except SourceUnavailable:
        logger.warning("track %s points outside MUSIC_ROOT; refused", track.pk)
        raise NotPlayable("No such track.") from None
    try:
        file, st = open_regular(path)
    except OSError as exc:
        # Only errors that say "this path holds no readable file" mean missing; others (EMFILE...) stay errors.
        if not means_no_file(exc):
            raise
        mark_missing(track.pk)
        raise NotPlayable("The audio file is missing; rescan the library.") from None
    relative = os.path.relpath(path, os.path.realpath(settings.MUSIC_ROOT))
    stored = StoredFile(file, st, content_type_for(track.path), f"o:{track.path}", root="music", name=relative)
    return _counted(request, Play(track.pk, public, cache_state, stored), cache_state)


def _counted(request: PlayRequest, answer: Play, outcome: str) -> Play:
    if request.starts_play:
        variant = request.variant
        fmt = variant.format if variant is not None and outcome != "bypass" else ORIGINAL  # bypasses: the file itself
        play_counts.record_play(outcome, fmt)
    return answer
