"""The renditions the cache can make: a *format* (MP3, Opus, AAC) at a *quality* (high, medium,
low), each format with its own bitrates, and what a listener may ask for.

A ``Variant`` is one (format, quality) pair. Written out it is ``format:quality``
(``opus:medium``); a bare quality means MP3, the seed's only format and still the default and
the fallback, so ``medium`` and ``mp3:medium`` are the same variant.

The settings that name qualities and formats (``AUDIO_CACHE_DEFAULT_QUALITY``,
``AUDIO_CACHE_PRECACHE_QUALITIES``, ``AUDIO_CACHE_FORMATS``) are checked against these names
when the app starts (``apps.py``).
"""

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class Format:
    name: str
    label: str  # as people say it
    extension: str  # of the files on disk
    content_type: str  # what the HTTP response says
    bitrates: dict  # quality name -> kbit/s, best first
    # Its final size follows from its frames, so a transcode can be followed with a planned length
    # and ranges (MP3); else it is followed as it grows, without a length (services/following.py).
    planned_length: bool = False
    # The file listeners follow while the transcode runs, when it is not the kept one: its suffix
    # and type (AAC: an ADTS copy of the same encode, as an MP4 is readable only once finished).
    follow_suffix: str = ""
    follow_type: str = ""

    @property
    def followed_type(self) -> str:
        """What the file followed while the transcode runs is."""
        return self.follow_type or self.content_type


FORMATS: dict[str, Format] = {
    "mp3": Format("mp3", "MP3", "mp3", "audio/mpeg", {"high": 256, "medium": 192, "low": 128}, planned_length=True),
    # About half MP3's bitrate for the same perceived quality; every current browser plays it.
    "opus": Format("opus", "Opus", "opus", "audio/ogg; codecs=opus", {"high": 160, "medium": 128, "low": 96}),
    # AAC-LC in MP4 (.m4a): what Apple devices decode best (README, "Formats").
    "aac": Format(
        "aac", "AAC", "m4a", "audio/mp4", {"high": 256, "medium": 192, "low": 128},
        follow_suffix=".aac", follow_type="audio/aac",
    ),
}  # fmt: skip
FORMAT_CHOICES = [(name, spec.label) for name, spec in FORMATS.items()]
DEFAULT_FORMAT = "mp3"
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)

# MP3's quality name -> constant bitrate in kbit/s, best first (the seed's table).
BITRATES: dict[str, int] = FORMATS[DEFAULT_FORMAT].bitrates
QUALITY_NAMES: tuple[str, ...] = tuple(BITRATES)

# What a listener may ask the stream view for: a rendition, or the untouched source.
ORIGINAL = "original"
REQUESTABLE: tuple[str, ...] = (*QUALITY_NAMES, ORIGINAL)


@dataclass(frozen=True, order=True)
class Variant:
    """One kind of rendition: a format at a quality."""

    format: str
    quality: str

    @classmethod
    def parse(cls, text: str) -> "Variant":
        """``opus:medium``, or a bare ``medium`` (MP3); ValueError names what is wrong."""
        fmt, sep, quality = text.strip().lower().rpartition(":")
        fmt = fmt if sep else DEFAULT_FORMAT
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMAT_NAMES)})")
        if quality not in FORMATS[fmt].bitrates:
            raise ValueError(f"unknown quality {quality!r} (qualities: {', '.join(QUALITY_NAMES)})")
        return cls(fmt, quality)

    @classmethod
    def of(cls, value: "Variant | str") -> "Variant":
        return value if isinstance(value, Variant) else cls.parse(value)

    def __str__(self) -> str:
        return self.quality if self.format == DEFAULT_FORMAT else f"{self.format}:{self.quality}"

    @property
    def spec(self) -> Format:
        return FORMATS[self.format]

    @property
    def bitrate(self) -> int:
        return self.spec.bitrates[self.quality]

    @property
    def label(self) -> str:
        """``Opus 128k``."""
        return f"{self.spec.label} {self.bitrate}k"

    @property
    def lookup(self) -> dict:
        """The variant as a filter on the rows that carry one (renditions, tasks, batch items)."""
        return {"format": self.format, "quality": self.quality}


def enabled_formats() -> tuple[str, ...]:
    """The formats ``AUDIO_CACHE_FORMATS`` lets the cache make (MP3 always: the fallback)."""
    allowed = getattr(settings, "AUDIO_CACHE_FORMATS", FORMAT_NAMES)
    return tuple(name for name in FORMAT_NAMES if name == DEFAULT_FORMAT or name in allowed)


def allowed_variant(value: Variant | str) -> Variant:
    """``Variant.of(value)``, refused (ValueError, which says why) when AUDIO_CACHE_FORMATS turns
    its format off: for settings, commands and anything asked to make a rendition."""
    variant = Variant.of(value)
    if variant.format not in enabled_formats():
        raise ValueError(f"{variant.format} is turned off (AUDIO_CACHE_FORMATS)")
    return variant


def all_variants(*, every: bool = False) -> list[Variant]:
    """Every variant the cache may make (``every``: whatever AUDIO_CACHE_FORMATS says), MP3's
    first, best quality first."""
    formats = FORMAT_NAMES if every else enabled_formats()
    return [Variant(fmt, quality) for fmt in formats for quality in FORMATS[fmt].bitrates]
