"""Read the tags of an audio file with mutagen, cleaned for display and storage.

mutagen speaks every tag dialect we meet (Vorbis comments, ID3 in MP3/WAV/AIFF, MP4 atoms,
APEv2); ffprobe's container tags (or, for WAV, its RIFF INFO list) fill any gap mutagen leaves.
The in-process probe (mixtapes/probe/headers.py) has the file open already and passes the
mutagen object to ``tags_of``; everything else calls ``read_tags`` with a path.
"""

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import mutagen
from mutagen.id3 import ID3
from mutagen.mp4 import MP4Tags

from .models import MAX_TAG_LENGTH

FIELDS = ("title", "artist", "album", "album_artist", "track_number", "disc_number")

# Per field: the names it goes by in Vorbis comments and APEv2 tags, ID3 frames, MP4 atoms and ffprobe.
_EASY_KEYS = {
    "title": ("title",),
    "artist": ("artist",),
    "album": ("album",),
    "album_artist": ("albumartist", "album artist", "album_artist"),
    "track_number": ("tracknumber", "track"),
    "disc_number": ("discnumber", "disc", "disk"),
}
_ID3_FRAMES = {
    "title": "TIT2",
    "artist": "TPE1",
    "album": "TALB",
    "album_artist": "TPE2",
    "track_number": "TRCK",
    "disc_number": "TPOS",
}
# MP4 atoms; the numbers are (number, total) pairs.
_MP4_ATOMS = {
    "title": "\xa9nam",
    "artist": "\xa9ART",
    "album": "\xa9alb",
    "album_artist": "aART",
    "track_number": "trkn",
    "disc_number": "disk",
}
_FFPROBE_KEYS = {
    "title": ("title",),
    "artist": ("artist",),
    "album": ("album",),
    "album_artist": ("album_artist", "albumartist", "album artist"),
    "track_number": ("track", "tracknumber"),
    "disc_number": ("disc", "discnumber"),
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_LEADING_NUMBER = re.compile(r"^\s*(\d{1,6})")


@dataclass(frozen=True)
class Tags:
    title: str = ""
    artist: str = ""
    album: str = ""
    album_artist: str = ""
    track_number: int | None = None
    disc_number: int | None = None
    # ReplayGain, as the tagger measured it: gains in dB, peaks as a fraction of full scale.
    track_gain: float | None = None
    track_peak: float | None = None
    album_gain: float | None = None
    album_peak: float | None = None


REPLAYGAIN = {
    "track_gain": "replaygain_track_gain",
    "track_peak": "replaygain_track_peak",
    "album_gain": "replaygain_album_gain",
    "album_peak": "replaygain_album_peak",
}
_EASY_KEYS.update({field_name: (key,) for field_name, key in REPLAYGAIN.items()})
_DECIMAL = re.compile(r"^\s*([-+]?\d{1,3}(?:\.\d+)?)")


def parse_replaygain(name: str, value: str) -> float | None:
    """``"-6.54 dB"`` gives -6.54, ``"0.988553"`` 0.988553; nonsense, or a gain beyond ±60 dB or
    a peak beyond 0-10, gives None."""
    match = _DECIMAL.match(value or "")
    if not match:
        return None
    number = float(match.group(1))
    if name.endswith("gain"):
        return number if -60 <= number <= 60 else None
    return number if 0 < number <= 10 else None


def clean_text(value: str) -> str:
    """One line of printable text at most ``MAX_TAG_LENGTH`` long (tags may hold megabytes of junk)."""
    text = _CONTROL.sub(" ", unicodedata.normalize("NFC", value[: MAX_TAG_LENGTH * 4]))
    return " ".join(text.split())[:MAX_TAG_LENGTH]


def parse_number(value: str) -> int | None:
    """``"3"``, ``"03/12"`` and ``"3 of 12"`` all give 3; nonsense gives None."""
    match = _LEADING_NUMBER.match(value or "")
    if not match:
        return None
    number = int(match.group(1))
    return number if 0 < number < 100_000 else None


def read_tags(path: Path, fallback: dict[str, str] | None = None) -> Tags:
    """Tags of ``path``; ``fallback`` is ffprobe's lower-cased tag dict for what mutagen misses."""
    try:
        audio = mutagen.File(path)
    except Exception:  # mutagen raises many types on damaged files; ffprobe's tags still apply
        audio = None
    return tags_of(audio, fallback)


def tags_of(audio, fallback: dict[str, str] | None = None) -> Tags:
    """Tags of an open mutagen file (or None), with ``fallback`` (ffprobe's names) for what it lacks."""
    found = _mutagen_fields(getattr(audio, "tags", None))
    for field_name, keys in _FFPROBE_KEYS.items():
        if not found.get(field_name) and fallback:
            found[field_name] = next((fallback[k] for k in keys if fallback.get(k)), "")
    return Tags(
        title=clean_text(found.get("title", "")),
        artist=clean_text(found.get("artist", "")),
        album=clean_text(found.get("album", "")),
        album_artist=clean_text(found.get("album_artist", "")),
        track_number=parse_number(found.get("track_number", "")),
        disc_number=parse_number(found.get("disc_number", "")),
        **{name: parse_replaygain(name, found.get(name, "")) for name in REPLAYGAIN},
    )


def _mutagen_fields(tags) -> dict[str, str]:
    if not tags:
        return {}
    found: dict[str, str] = {}
    if isinstance(tags, ID3):  # MP3, WAV, AIFF and TTA carry ID3 frames
        for field_name, frame_id in _ID3_FRAMES.items():
            frame = tags.get(frame_id)
            if frame is not None and getattr(frame, "text", None):
                found[field_name] = str(frame.text[0])
        by_description = {frame.desc.lower(): frame for frame in tags.getall("TXXX") if frame.text}
        for field_name, key in REPLAYGAIN.items():
            if key in by_description:
                found[field_name] = str(by_description[key].text[0])
        return found
    if isinstance(tags, MP4Tags):
        for field_name, atom in _MP4_ATOMS.items():
            values = tags.get(atom)
            if values:
                value = values[0]
                found[field_name] = str(value[0] if isinstance(value, tuple) else value)
        freeform = {key.lower(): values for key, values in tags.items() if key.startswith("----:")}
        for field_name, key in REPLAYGAIN.items():
            values = freeform.get(f"----:com.apple.itunes:{key}")
            if values:
                found[field_name] = bytes(values[0]).decode("utf-8", "replace")
        return found
    # Vorbis comments and APEv2: case-insensitive names.
    for field_name, keys in _EASY_KEYS.items():
        for key in keys:
            try:
                value = tags[key]
            except (KeyError, ValueError, TypeError):
                continue
            if isinstance(value, list):
                value = value[0] if value else ""
            text = str(value)
            if text:
                found[field_name] = text
                break
    return found
