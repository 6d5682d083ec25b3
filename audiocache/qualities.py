"""The MP3 rendition levels of the seed design, and what a listener may ask for.

The settings that name qualities (``AUDIO_CACHE_DEFAULT_QUALITY``,
``AUDIO_CACHE_PRECACHE_QUALITIES``) are checked against these names when the app starts
(``apps.py``).
"""

# Quality name -> constant bitrate in kbit/s, best first.
BITRATES: dict[str, int] = {"high": 256, "medium": 192, "low": 128}

QUALITY_NAMES: tuple[str, ...] = tuple(BITRATES)

# What a listener may ask the stream view for: a rendition, or the untouched source.
ORIGINAL = "original"
REQUESTABLE: tuple[str, ...] = (*QUALITY_NAMES, ORIGINAL)
