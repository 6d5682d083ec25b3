"""The MP3 rendition levels of the seed design.

Plain Python (no Django imports) so that ``config.settings`` can validate
``AUDIO_CACHE_*`` values against the same names the models and views use.
"""

# Quality name -> constant bitrate in kbit/s, best first.
BITRATES: dict[str, int] = {"high": 256, "medium": 192, "low": 128}

QUALITY_NAMES: tuple[str, ...] = tuple(BITRATES)

# What a listener may ask the stream view for: a rendition, or the untouched source.
ORIGINAL = "original"
REQUESTABLE: tuple[str, ...] = (*QUALITY_NAMES, ORIGINAL)
