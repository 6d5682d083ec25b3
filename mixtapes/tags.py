"""The one reader of a library file's tags, with mutagen, and the names each tag dialect gives them.

mutagen speaks every dialect we meet (Vorbis comments in FLAC and Ogg, ID3 in MP3/WAV/AIFF, MP4
atoms in ALAC/AAC, APEv2 in WavPack and Monkey's Audio); the name tables below say where each
field lives in each, as MusicBrainz Picard writes them. Two views of one reading:

- ``source_tags_of`` / ``read_source_tags``: everything a rendition carries (``SourceTags``:
  texts, numbers and totals, date, genre, composer, MusicBrainz ids, ReplayGain, lyrics and the
  front cover). The audio cache writes it into each rendition with the same names
  (audiocache/transcode/tags.py).
- ``tags_of`` / ``read_tags``: what the scan keeps (``Tags``: title, artists, album, numbers,
  ReplayGain), read the same way without the pictures, with ffprobe's container tags (or, for
  WAV, its RIFF INFO list) for any gap mutagen leaves. The in-process probe
  (mixtapes/probe/headers.py) has the file open and passes its mutagen object to ``tags_of``.

Every value is cleaned for display and storage: one line, cut at the library's limit (lyrics
keep their lines); several values of one field are joined with "; ".
"""

import dataclasses
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from mutagen.apev2 import APETextValue, APEv2
from mutagen.id3 import ID3
from mutagen.mp4 import MP4Tags
from mutagen.oggopus import OggOpus

from .embedded import front_picture, pictures, read_audio
from .models import MAX_TAG_LENGTH

# Lyrics are the one multi-line text; a whole libretto fits. Other texts are cut by clean_text
# at the library's own limit (mixtapes.models.MAX_TAG_LENGTH).
MAX_LYRICS_CHARS = 100_000

# ReplayGain aims at -18 LUFS, R128 (and so Opus's R128_*_GAIN tags) at -23 LUFS: a ReplayGain
# gain is 5 dB more than the R128 gain of the same track.
REPLAYGAIN_OVER_R128_DB = 5.0


@dataclass(frozen=True)
class Cover:
    """One picture: its bytes and MIME type (sniffed from the bytes when they say)."""

    data: bytes = field(repr=False)
    mime: str

    def __repr__(self) -> str:
        return f"Cover({self.mime}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class SourceTags:
    """What a rendition carries of its source. ReplayGain is kept as numbers, normalised the way
    taggers print them: gains in dB to 0.01, peaks (a fraction of full scale) to 0.000001, so
    every format's text gives back the same number."""

    title: str = ""
    artist: str = ""
    album: str = ""
    album_artist: str = ""
    track: int | None = None
    track_total: int | None = None
    disc: int | None = None
    disc_total: int | None = None
    date: str = ""
    genre: str = ""
    composer: str = ""
    # MusicBrainz: the recording id is what taggers call "MusicBrainz Track Id".
    musicbrainz_recording_id: str = ""
    musicbrainz_release_track_id: str = ""
    musicbrainz_album_id: str = ""
    musicbrainz_artist_id: str = ""
    musicbrainz_album_artist_id: str = ""
    musicbrainz_release_group_id: str = ""
    track_gain: float | None = None
    track_peak: float | None = None
    album_gain: float | None = None
    album_peak: float | None = None
    lyrics: str = ""
    cover: Cover | None = None


@dataclass(frozen=True)
class Tags:
    """What the scan keeps of a file's tags (the library's columns)."""

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


# --- names ----------------------------------------------------------------------------------

TEXT_FIELDS = ("title", "artist", "album", "album_artist", "date", "genre", "composer")
NUMBER_FIELDS = ("track", "track_total", "disc", "disc_total")
REPLAYGAIN_FIELDS = ("track_gain", "track_peak", "album_gain", "album_peak")

# field, Vorbis comment / APEv2 name (as Picard writes them), ID3 TXXX and MP4 freeform name.
MUSICBRAINZ = (
    ("musicbrainz_recording_id", "MUSICBRAINZ_TRACKID", "MusicBrainz Track Id"),
    ("musicbrainz_release_track_id", "MUSICBRAINZ_RELEASETRACKID", "MusicBrainz Release Track Id"),
    ("musicbrainz_album_id", "MUSICBRAINZ_ALBUMID", "MusicBrainz Album Id"),
    ("musicbrainz_artist_id", "MUSICBRAINZ_ARTISTID", "MusicBrainz Artist Id"),
    ("musicbrainz_album_artist_id", "MUSICBRAINZ_ALBUMARTISTID", "MusicBrainz Album Artist Id"),
    ("musicbrainz_release_group_id", "MUSICBRAINZ_RELEASEGROUPID", "MusicBrainz Release Group Id"),
)
# The recording id lives in ID3's UFID frame under this owner, not in a TXXX frame.
MUSICBRAINZ_UFID_OWNER = "http://musicbrainz.org"

# Vorbis comments and APEv2 keys, read case-insensitively: the first name is the one we write
# (Vorbis); the others are what other taggers, APEv2 and ffmpeg's muxers use.
VORBIS_NAMES: dict[str, tuple[str, ...]] = {
    "title": ("TITLE",),
    "artist": ("ARTIST",),
    "album": ("ALBUM",),
    "album_artist": ("ALBUMARTIST", "ALBUM ARTIST", "ALBUM_ARTIST"),
    "track": ("TRACKNUMBER", "TRACK"),
    "track_total": ("TRACKTOTAL", "TOTALTRACKS"),
    "disc": ("DISCNUMBER", "DISC", "DISK"),
    "disc_total": ("DISCTOTAL", "TOTALDISCS"),
    "date": ("DATE", "YEAR"),
    "genre": ("GENRE",),
    "composer": ("COMPOSER",),
    "lyrics": ("LYRICS", "UNSYNCEDLYRICS", "UNSYNCED LYRICS"),
    **{name: (key,) for name, key, _ in MUSICBRAINZ},
    **{name: (f"REPLAYGAIN_{name.upper()}",) for name in REPLAYGAIN_FIELDS},
}
# The same, as the keys of _texts_by_key's table.
_VORBIS_KEYS = {name: tuple(key.lower() for key in keys) for name, keys in VORBIS_NAMES.items()}
# ID3 text frames for the one-value fields (TRCK and TPOS hold "n/N"; TCON is read as genres).
ID3_TEXT_FRAMES = {
    "title": "TIT2",
    "artist": "TPE1",
    "album": "TALB",
    "album_artist": "TPE2",
    "date": "TDRC",  # mutagen reads ID3v2.3's TYER/TDAT/TIME as one TDRC, and writes them back
    "composer": "TCOM",
}
# MP4 atoms for the texts (trkn and disk hold (number, total) pairs).
MP4_TEXT_ATOMS = {
    "title": "\xa9nam",
    "artist": "\xa9ART",
    "album": "\xa9alb",
    "album_artist": "aART",
    "date": "\xa9day",
    "genre": "\xa9gen",  # mutagen turns an old numeric gnre into this on reading
    "composer": "\xa9wrt",
    "lyrics": "\xa9lyr",
}
MP4_FREEFORM = "----:com.apple.iTunes:"
# ffprobe's names for the scan's fields (its container tags, lower-cased).
_FFPROBE_KEYS = {
    "title": ("title",),
    "artist": ("artist",),
    "album": ("album",),
    "album_artist": ("album_artist", "albumartist", "album artist"),
    "track_number": ("track", "tracknumber"),
    "disc_number": ("disc", "discnumber"),
}

# --- cleaning ---------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]+")  # tab and newline stay
_LEADING_NUMBER = re.compile(r"^\s*(\d{1,6})")
_DECIMAL = re.compile(r"^\s*([-+]?\d{1,3}(?:\.\d+)?)")


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


def _clean_lyrics(value: str) -> str:
    """Lines kept (as \\n), other control characters dropped, cut at MAX_LYRICS_CHARS."""
    value = value[: MAX_LYRICS_CHARS * 2].replace("\r\n", "\n").replace("\r", "\n")
    # One regular expression, not a loop over characters: the scan reads every file's lyrics.
    return _CONTROL_BUT_LINES.sub("", value).strip()[:MAX_LYRICS_CHARS]


# --- reading ----------------------------------------------------------------------------------


def read_source_tags(path: Path | str) -> SourceTags:
    """The tags and front cover of ``path`` (FLAC, ALAC/AAC, WavPack, APE, WAV, AIFF, MP3, Ogg
    Opus/Vorbis...), read within mixtapes.embedded's bounds. A file mutagen cannot read, a
    damaged one or one whose tags are too big gives empty tags: a rendition without tags beats
    no rendition."""
    audio = read_audio(path)
    return source_tags_of(audio) if audio is not None else SourceTags()


def source_tags_of(audio, *, with_cover: bool = True) -> SourceTags:
    """The tags of an open mutagen file; its front cover too unless ``with_cover`` is False."""
    tags = audio.tags
    found = _Found()
    if isinstance(tags, ID3):  # MP3, WAV, AIFF (and TTA) carry ID3
        _from_id3(tags, found)
    elif isinstance(tags, MP4Tags):
        _from_mp4(tags, found)
    elif tags is not None:  # Vorbis comments (FLAC, Ogg Vorbis, Ogg Opus, Ogg FLAC) or APEv2
        texts = _texts_by_key(tags)
        for name, keys in _VORBIS_KEYS.items():
            for key in keys:
                found.add(name, texts.get(key, ()))
        if isinstance(audio, OggOpus):
            _from_r128(texts, found)
    if with_cover:
        found.pictures = pictures(audio)
    return _assemble(found)


def read_tags(path: Path, fallback: dict[str, str] | None = None) -> Tags:
    """The scan's tags of ``path``; ``fallback`` is ffprobe's lower-cased tag dict for what mutagen misses."""
    return tags_of(read_audio(path), fallback)


def tags_of(audio, fallback: dict[str, str] | None = None) -> Tags:
    """The scan's tags of an open mutagen file (or None), with ``fallback`` (ffprobe's names)
    for what it lacks."""
    found = source_tags_of(audio, with_cover=False) if audio is not None else SourceTags()
    tags = Tags(
        title=found.title,
        artist=found.artist,
        album=found.album,
        album_artist=found.album_artist,
        track_number=found.track,
        disc_number=found.disc,
        **{name: getattr(found, name) for name in REPLAYGAIN_FIELDS},
    )
    if not fallback:
        return tags
    gaps = {}
    for field_name, keys in _FFPROBE_KEYS.items():
        if getattr(tags, field_name) in ("", None):
            value = next((fallback[k] for k in keys if fallback.get(k)), "")
            gaps[field_name] = parse_number(value) if field_name.endswith("_number") else clean_text(value)
    return dataclasses.replace(tags, **gaps)


@dataclass
class _Found:
    """Raw values by SourceTags field name, and the pictures as (picture type, MIME, bytes)."""

    values: dict[str, list[str]] = field(default_factory=dict)
    pictures: list[tuple[int, str, bytes]] = field(default_factory=list)

    def add(self, name: str, values) -> None:
        if name not in self.values:
            texts = [str(v) for v in values if str(v).strip()]
            if texts:
                self.values[name] = texts


def _texts_by_key(tags) -> dict[str, list[str]]:
    """Vorbis comments or APEv2 text items by lower-cased key (both dialects ignore case), in
    one pass: looking each of our names up in mutagen's Vorbis dict would scan every comment."""
    by_key: dict[str, list[str]] = {}
    if isinstance(tags, APEv2):
        for key, value in tags.items():
            if isinstance(value, APETextValue):  # not a picture or a link
                by_key.setdefault(key.lower(), []).extend(value)  # it iterates over its NUL-separated values
        return by_key
    for key, value in tags:  # Vorbis comments: a list of (key, value) pairs
        by_key.setdefault(key.lower(), []).append(value)
    return by_key


def _from_r128(texts: dict[str, list[str]], found: _Found) -> None:
    """Opus's R128_*_GAIN (Q7.8 dB relative to -23 LUFS, RFC 7845 section 5.2.1) as ReplayGain,
    where no REPLAYGAIN_* tag said it already."""
    for name, key in (("track_gain", "r128_track_gain"), ("album_gain", "r128_album_gain")):
        for value in texts.get(key, [])[:1]:
            try:
                q78 = int(value.strip())
            except ValueError:
                continue
            if -32768 <= q78 <= 32767:
                found.add(name, [f"{q78 / 256 + REPLAYGAIN_OVER_R128_DB:.2f} dB"])


def _from_id3(tags: ID3, found: _Found) -> None:
    for name, frame_id in ID3_TEXT_FRAMES.items():
        frame = tags.get(frame_id)
        if frame is not None:
            found.add(name, frame.text)
    genre = tags.get("TCON")
    if genre is not None:
        found.add("genre", genre.genres)  # "(17)" and "17" become "Rock"
    for name, frame_id in (("track", "TRCK"), ("disc", "TPOS")):
        frame = tags.get(frame_id)
        if frame is not None:
            found.add(name, frame.text[:1])
    for frame in tags.getall("UFID"):
        if frame.owner == MUSICBRAINZ_UFID_OWNER:
            found.add("musicbrainz_recording_id", [frame.data.decode("ascii", "replace")])
    by_description = {frame.desc.lower(): frame.text for frame in tags.getall("TXXX")}
    for name, _key, description in MUSICBRAINZ:
        found.add(name, by_description.get(description.lower(), []))
    for name in REPLAYGAIN_FIELDS:
        found.add(name, by_description.get(f"replaygain_{name}", []))
    lyrics = tags.getall("USLT")
    if lyrics:
        found.add("lyrics", [lyrics[0].text])


def _from_mp4(tags: MP4Tags, found: _Found) -> None:
    for name, atom in MP4_TEXT_ATOMS.items():
        found.add(name, tags.get(atom, []))
    for atom, number, total in (("trkn", "track", "track_total"), ("disk", "disc", "disc_total")):
        for pair in tags.get(atom, [])[:1]:
            found.add(number, [pair[0]] if pair[0] else [])
            found.add(total, [pair[1]] if len(pair) > 1 and pair[1] else [])
    freeform = {key.lower(): values for key, values in tags.items() if key.startswith("----:")}

    def texts(name: str) -> list[str]:
        values = freeform.get((MP4_FREEFORM + name).lower(), [])
        return [bytes(v).decode("utf-8", "replace") for v in values]

    for name, _key, description in MUSICBRAINZ:
        found.add(name, texts(description))
    for name in REPLAYGAIN_FIELDS:
        found.add(name, texts(f"replaygain_{name}"))


def _assemble(found: _Found) -> SourceTags:
    values = found.values

    def text(name: str) -> str:
        return clean_text("; ".join(dict.fromkeys(values.get(name, []))))

    numbers: dict[str, int | None] = {}
    for number, total in (("track", "track_total"), ("disc", "disc_total")):
        raw = (values.get(number) or [""])[0]
        numbers[number] = parse_number(raw)
        _, slash, after = raw.partition("/")
        explicit = (values.get(total) or [""])[0]
        numbers[total] = parse_number(explicit) or (parse_number(after) if slash else None)
    replaygain = {}
    for name in REPLAYGAIN_FIELDS:
        number = parse_replaygain(name, (values.get(name) or [""])[0])
        replaygain[name] = None if number is None else round(number, 2 if name.endswith("gain") else 6)
    front = front_picture(found.pictures)
    return SourceTags(
        **{name: text(name) for name in TEXT_FIELDS},
        **{name: text(name) for name, _key, _description in MUSICBRAINZ},
        **numbers,
        **replaygain,
        lyrics=_clean_lyrics((values.get("lyrics") or [""])[0]),
        cover=Cover(data=front[1], mime=front[0]) if front else None,
    )
