"""Which format a listener gets: never a guess that breaks playback.

In order:

1. the format the request names (``?format=opus|aac|mp3``; the web player asks its browser
   what it can play and names the best one; a Subsonic app's ``format``);
2. the listener's own choice on the account page ("Streaming format"), when it is not
   "automatic";
3. the request's ``Accept`` header, when it names audio types with preferences
   (``audio/ogg; codecs=opus``, ``audio/mp4``...): the one it prefers most among those the
   cache makes, Opus before AAC before MP3 when it likes them equally;
4. MP3, which every player plays (a browser's ``<audio>`` sends ``Accept: */*``: no wish).

A format that ``AUDIO_CACHE_FORMATS`` turns off is never chosen: MP3 is. Whether a source is
re-encoded at all (a lossy one never is) is decided later, by the play service.
"""

from .. import selectors
from ..models import StreamingPreference
from ..qualities import DEFAULT_FORMAT, FORMAT_NAMES, enabled_formats

AUTOMATIC = StreamingPreference.AUTOMATIC
# Media types that name each format in an Accept header (RFC 9110 section 12.5.1).
ACCEPTED_TYPES = {
    "audio/ogg; codecs=opus": "opus",
    "audio/ogg;codecs=opus": "opus",
    "audio/opus": "opus",  # not a bare audio/ogg: that may mean Vorbis only
    "audio/mp4": "aac",
    "audio/aac": "aac",
    "audio/x-m4a": "aac",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}
PREFERENCE_ORDER = ("opus", "aac", "mp3")  # same quality per bit: Opus's is best
MAX_ACCEPT = 1000  # characters of an Accept header looked at: a header is not a workload


class UnknownFormat(ValueError):
    """A format name the cache does not know (a 400, with the names it does)."""


def choose_format(asked: str | None = None, *, user=None, accept: str = "") -> str:
    """The format to stream (see the module's docstring); ``asked`` may be ``None`` or ``""``."""
    enabled = enabled_formats()
    if asked:
        asked = asked.strip().lower()
        if asked not in FORMAT_NAMES:
            raise UnknownFormat(f"Unknown format {asked[:40]!r}: use one of {', '.join(FORMAT_NAMES)} or original.")
        return asked if asked in enabled else DEFAULT_FORMAT
    preferred = preferred_format(user)
    if preferred != AUTOMATIC:
        return preferred if preferred in enabled else DEFAULT_FORMAT
    return format_from_accept(accept, enabled)


def preferred_format(user) -> str:
    """The listener's choice on the account page, ``auto`` when none (or signed out)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return AUTOMATIC
    return selectors.streaming_preference(user.pk) or AUTOMATIC


def set_streaming_format(user, choice: str) -> None:
    """Save the listener's "Streaming format" (``auto`` or a format name)."""
    if choice != AUTOMATIC and choice not in FORMAT_NAMES:
        raise UnknownFormat(f"Unknown streaming format {choice[:40]!r}")
    StreamingPreference.objects.update_or_create(user=user, defaults={"format": choice})


def format_from_accept(accept: str, enabled=None) -> str:
    """The enabled format the Accept header prefers; MP3 when it names none of them."""
    enabled = enabled or enabled_formats()
    weights: dict[str, float] = {}
    for item in (accept or "")[:MAX_ACCEPT].split(","):
        media, *params = (part.strip().lower() for part in item.split(";"))
        weight, codecs = 1.0, ""
        for param in params:
            name, _, value = param.partition("=")
            if name == "q":
                try:
                    weight = max(0.0, min(1.0, float(value)))
                except ValueError:
                    weight = 0.0
            elif name == "codecs":
                codecs = value.strip('"')
        fmt = ACCEPTED_TYPES.get(f"{media}; codecs={codecs}" if codecs else media)
        if fmt in enabled and weight > 0:
            weights[fmt] = max(weights.get(fmt, 0.0), weight)
    if not weights:
        return DEFAULT_FORMAT
    return max(weights, key=lambda fmt: (weights[fmt], -PREFERENCE_ORDER.index(fmt)))
