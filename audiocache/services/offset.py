"""Playing a track from a given second (the Subsonic API's ``timeOffset``, the OpenSubsonic
``transcodeOffset`` extension): a player resuming mid-track asks for the rest only.

- A fresh rendition is cut at the frame that holds that second. Its frames are all the same
  length (constant bit rate), so the byte is computed, not searched for: exact to the frame.
- Otherwise (a miss, or a transcode under way) ffmpeg encodes from that second straight to the
  response, and nothing of that partial output is cached; the play has queued the whole
  rendition as any play does, so the next play is a hit. At most as many such encodes run at
  once as the pool has workers (at least two); beyond, the play starts from the beginning.
- An original (a lossy source, or ``format=raw``) is never re-encoded: it is sent whole.
"""

import math
import threading
from dataclasses import dataclass, replace

from django.conf import settings

from mixtapes.files import source_path
from mixtapes.models import Track

from ..delivery.files import StoredFile
from ..transcode import mp3
from ..transcode.ffmpeg import SourceFacts, live_command
from .play import Play, PlayRequest, WaitForTranscode, play


@dataclass(frozen=True)
class FromFrame:
    """A finished rendition, sent from byte ``start`` (a frame boundary) to its end."""

    file: StoredFile
    start: int


@dataclass(frozen=True)
class LiveEncode:
    """ffmpeg's MP3 of the rest of the track, as it encodes; ``release`` when done with it."""

    command: list
    release: "Slot"


class Slot:
    """One of the live encodes allowed at once; released exactly once."""

    _lock = threading.Lock()
    _taken = 0

    @classmethod
    def take(cls) -> "Slot | None":
        with cls._lock:
            if cls._taken >= max(2, settings.AUDIO_CACHE_MAX_WORKERS):
                return None
            cls._taken += 1
        return cls()

    def __init__(self):
        self._released = False

    def __call__(self) -> None:
        with Slot._lock:
            if not self._released:
                self._released = True
                Slot._taken -= 1


def play_from(request: PlayRequest, seconds: float) -> Play | FromFrame | LiveEncode:
    """How to answer a play of ``request`` that starts at ``seconds`` (see the module)."""
    answer = play(replace(request, may_wait=False))
    if isinstance(answer, WaitForTranscode):  # may_wait=False never waits
        raise TypeError("play() waited although asked not to")
    if answer.cache_state == "hit":
        return FromFrame(answer.file, _frame_start(answer.file, seconds))
    if answer.cache_state not in ("miss", "progressive"):
        return answer  # the original, sent whole
    track = _track_facts(request.track_id)
    if track is None or not track.is_lossless:
        return answer
    slot = Slot.take()
    if slot is None:
        return answer  # busy: from the beginning, like any play
    answer.file.file.close()
    facts = SourceFacts(track.sample_rate, track.channels, False, track.duration)
    return LiveEncode(live_command(source_path(track), request.quality, facts, seconds), slot)


def _frame_start(stored: StoredFile, seconds: float) -> int:
    layout = mp3.read_layout_of(stored.file.fd)
    samples = mp3.samples_per_frame_at(layout.frame.sample_rate)
    # The rendition starts with LAME's delay (576 samples): sample s of the track is there.
    frame = max(0, math.floor((seconds * layout.frame.sample_rate + 576) / samples))
    return min(stored.stat.st_size, mp3.final_size(layout, frame))


def _track_facts(track_id: int) -> Track | None:
    return Track.objects.filter(pk=track_id).only("path", "is_lossless", "sample_rate", "channels", "duration").first()
