"""What a library file embeds, read with mutagen within bounds: the file's tags as mutagen sees
them (``read_audio``) and the pictures in them (``pictures``, ``front_picture``). One reader for
the artwork thumbnails (artwork.py) and for the tags a rendition carries (the cache's
transcode/tags.py).

mutagen loads a whole tag (an ID3 tag, an MP4 ilst, a FLAC picture block) into memory before we
can look at it, so files are read through a file object that refuses to hand out more than
READ_BUDGET_BYTES in all: a file that declares a 2 GiB picture costs at most that much memory,
and reads as having nothing.
"""

import base64
import logging
import os
import struct
from pathlib import Path

import mutagen
from mutagen.apev2 import APEBinaryValue, APEv2
from mutagen.flac import FLAC, Picture
from mutagen.id3 import ID3, PictureType
from mutagen.mp4 import AtomDataType, MP4Tags

logger = logging.getLogger(__name__)

# A front cover is a few hundred KiB; anything past this is junk or an attack, and is skipped.
MAX_PICTURE_BYTES = 16 * 1024 * 1024
READ_BUDGET_BYTES = 64 * 1024 * 1024
# MP4's covr atoms say their image type by a number.
MP4_IMAGE_FORMATS = {
    "image/jpeg": AtomDataType.JPEG,
    "image/png": AtomDataType.PNG,
    "image/gif": AtomDataType.GIF,
    "image/bmp": AtomDataType.BMP,
}


class _OverBudget(Exception):
    pass


class _BoundedReader:
    """A read-only file that hands out at most ``budget`` bytes in all, then raises."""

    def __init__(self, raw, budget: int, name: str):
        self._raw = raw
        self._left = budget
        self.name = name

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self._left:
            size = self._left + 1  # never ask the file (and allocate) for more than the budget
        data = self._raw.read(size)
        self._left -= len(data)
        if self._left < 0:
            raise _OverBudget
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


def read_audio(path: Path | str):
    """mutagen's view of ``path`` (its tags and pictures loaded), or None: a file mutagen cannot
    read, a damaged one, or one whose tags are bigger than READ_BUDGET_BYTES."""
    try:
        with open(path, "rb") as raw:
            return mutagen.File(_BoundedReader(raw, READ_BUDGET_BYTES, os.fspath(path)))
    except _OverBudget:
        logger.warning("%s: tags larger than %d bytes, not read", path, READ_BUDGET_BYTES)
    except Exception as exc:  # mutagen raises many types on damaged files
        logger.info("%s: tags not readable (%s: %s)", path, type(exc).__name__, exc)
    return None


def vorbis_texts(tags, key: str) -> list[str]:
    """A Vorbis comment's values (none when absent)."""
    try:
        return list(tags[key])
    except (KeyError, ValueError):
        return []


def pictures(audio) -> list[tuple[int, str, bytes]]:
    """Every picture ``audio`` (from ``read_audio``) embeds, as (picture type, declared MIME
    type, bytes), in the file's order: FLAC picture blocks, ID3 APIC frames, MP4 covr atoms,
    APEv2 cover art, Ogg METADATA_BLOCK_PICTURE (and the older COVERART)."""
    found: list[tuple[int, str, bytes]] = []
    if isinstance(audio, FLAC):
        found += [(p.type, p.mime, p.data) for p in audio.pictures]
    tags = audio.tags
    if isinstance(tags, ID3):  # MP3, WAV, AIFF (and TTA)
        found += [(f.type, f.mime, f.data) for f in tags.getall("APIC") if f.mime != "-->"]  # "-->": a URL
    elif isinstance(tags, MP4Tags):
        for cover in tags.get("covr", []):
            mime = next((m for m, f in MP4_IMAGE_FORMATS.items() if f == cover.imageformat), "")
            found.append((PictureType.COVER_FRONT, mime, bytes(cover)))
    elif isinstance(tags, APEv2):  # WavPack, Monkey's Audio, Musepack: a file name, a NUL, the image
        for key, value in tags.items():
            if key.lower().startswith("cover art") and isinstance(value, APEBinaryValue):
                _name, _, data = bytes(value.value).partition(b"\0")
                kind = PictureType.COVER_FRONT if key.lower() == "cover art (front)" else PictureType.OTHER
                found.append((kind, "", data))
    elif tags is not None:  # Vorbis comments (Ogg; a FLAC's own blocks are read above)
        found += _vorbis_pictures(tags)
    return found


def _vorbis_pictures(tags) -> list[tuple[int, str, bytes]]:
    found = []
    # base64 is 4/3 of the bytes: a value this long would decode past MAX_PICTURE_BYTES.
    longest = MAX_PICTURE_BYTES * 4 // 3 + 4096
    for value in vorbis_texts(tags, "METADATA_BLOCK_PICTURE"):
        if len(value) > longest:
            continue
        try:
            picture = Picture(base64.b64decode(value))
        except (ValueError, struct.error, mutagen.MutagenError):  # not base64, or not a picture block
            continue
        found.append((picture.type, picture.mime, picture.data))
    # The old, unofficial COVERART (bare base64 image) that some taggers still write.
    for value in vorbis_texts(tags, "COVERART")[:1]:
        if len(value) <= longest:
            try:
                data = base64.b64decode(value)
            except ValueError:
                continue
            mime = next(iter(vorbis_texts(tags, "COVERARTMIME")), "")
            found.append((PictureType.OTHER, mime, data))
    return found


def front_picture(found: list[tuple[int, str, bytes]]) -> tuple[str, bytes] | None:
    """(MIME type, bytes) of the front cover if one is typed so, else of the first picture;
    pictures past MAX_PICTURE_BYTES (or empty) are skipped."""
    usable = [(kind, mime, data) for kind, mime, data in found if 0 < len(data) <= MAX_PICTURE_BYTES]
    if not usable:
        return None
    _kind, mime, data = next((p for p in usable if p[0] == PictureType.COVER_FRONT), usable[0])
    return picture_mime(data, mime), bytes(data)


def picture_mime(data: bytes, declared: str = "") -> str:
    """The image type its first bytes say (taggers write "image/jpg", or nothing, or lie);
    the declared type when the bytes say nothing we know."""
    head = bytes(data[:12])
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM"):
        return "image/bmp"
    declared = (declared or "").strip().lower()
    if declared == "image/jpg":
        return "image/jpeg"
    return declared if declared.startswith("image/") else "application/octet-stream"
