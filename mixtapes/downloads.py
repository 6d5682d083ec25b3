"""A mixtape as a zip, streamed as it is read: never built in memory or on disk.

The entries are stored (MP3 and FLAC do not compress), so the archive's length is known
before its first byte and the response carries a ``Content-Length`` (zipstream-ng computes it;
browsers then show the download's progress). Tracks are numbered in mixtape order
("03 - Artist - Title.mp3"). The cache's MP3 renditions are tagged as one album: the
mixtape's title, "Various Artists", track n of N (a new ID3 tag in front of the rendition's
audio, made with mutagen as the entry is streamed). Originals are the library's own files,
byte for byte: nothing under MUSIC_ROOT is changed, and their names carry the order.
A ``.m3u8`` playlist of the entries and the liner notes come along.
"""

import io
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from mutagen.id3 import ID3, TALB, TCMP, TPE2, TPOS, TRCK, ID3NoHeaderError
from zipstream import ZIP_STORED, ZipStream

READ_SIZE = 256 * 1024  # one read of an MP3 entry's audio; the zip's own reads are 64 KiB
NAME_LENGTH = 120  # an entry's name, before its extension: within every file system's limit

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def safe_name(text: str, fallback: str = "Untitled") -> str:
    """``text`` as a file name on any system: no separators, reserved or control characters,
    no leading dots or spaces, at most ``NAME_LENGTH`` characters."""
    cleaned = _UNSAFE.sub(" ", unicodedata.normalize("NFC", text))
    cleaned = " ".join(cleaned.split()).strip(" .")[:NAME_LENGTH].strip(" .")
    return cleaned or fallback


def entry_name(number: int, total: int, track, path: Path) -> str:
    width = max(2, len(str(total)))
    return f"{number:0{width}d} - {safe_name(track.display_name)}{path.suffix.lower()}"


def mixtape_zip(mixtape, items: list[tuple[object, Path, bool]]) -> ZipStream:
    """The archive of ``items`` ((track, file, is_rendition), in mixtape order), ready to iterate."""
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    folder = safe_name(mixtape.title, "Mixtape")
    total = len(items)
    names = []
    for number, (track, path, is_rendition) in enumerate(items, start=1):
        name = entry_name(number, total, track, path)
        names.append((name, track))
        if is_rendition:
            tags = {"album": mixtape.title, "number": number, "total": total}
            size, chunks = retagged_mp3(path, tags)
            archive.add(chunks, f"{folder}/{name}", size=size)
        else:
            archive.add_path(str(path), f"{folder}/{name}")
    archive.add(_playlist(names), f"{folder}/{folder}.m3u8")
    if mixtape.liner_notes.strip():
        archive.add(mixtape.liner_notes.strip() + "\n", f"{folder}/Liner notes.txt")
    return archive


def _playlist(names) -> str:
    lines = ["#EXTM3U"]
    for name, track in names:
        lines += [f"#EXTINF:{round(track.duration or -1)},{track.display_name}", name]
    return "\n".join(lines) + "\n"


def retagged_mp3(path: Path, tags: dict) -> tuple[int, Iterator[bytes]]:
    """The entry of an MP3 rendition with the mixtape's album tags: (its length, its bytes).

    The length is measured now, from a first rendering of the new tag; the bytes are made
    when the entry is reached (the tag again, then the audio after the old tag), so only one
    tag (with its picture) is in memory at a time."""
    old_size = _id3_size(path)
    audio_size = path.stat().st_size - old_size
    size = len(_new_tag(path, tags)) + audio_size

    def chunks():
        yield _new_tag(path, tags)
        with path.open("rb") as file:
            file.seek(old_size)
            left = audio_size
            while left > 0:
                chunk = file.read(min(READ_SIZE, left))
                if not chunk:
                    raise OSError(f"{path.name} became shorter while it was sent")
                left -= len(chunk)
                yield chunk

    return size, chunks()


def _id3_size(path: Path) -> int:
    try:
        return ID3(path).size
    except ID3NoHeaderError:
        return 0


def _new_tag(path: Path, tags: dict) -> bytes:
    try:
        id3 = ID3(path)
    except ID3NoHeaderError:
        id3 = ID3()
    id3.setall("TALB", [TALB(encoding=3, text=tags["album"])])
    id3.setall("TPE2", [TPE2(encoding=3, text="Various Artists")])
    id3.setall("TCMP", [TCMP(encoding=3, text="1")])
    id3.setall("TRCK", [TRCK(encoding=3, text=f"{tags['number']}/{tags['total']}")])
    id3.setall("TPOS", [TPOS(encoding=3, text="1/1")])
    out = io.BytesIO()
    id3.save(out, v1=0, padding=lambda info: 0)
    return out.getvalue()


def body_for(request, chunks) -> object:
    """``chunks`` as a response body that streams under both servers.

    Under ASGI, Django reads a plain iterator into a list before sending (it warns that it
    "must consume synchronous iterators"), which would hold the whole zip in memory: there it
    gets an async iterator that reads one chunk at a time in a worker thread."""
    if not isinstance(request, ASGIRequest):
        return chunks
    return _pulled_in_threads(iter(chunks))


async def _pulled_in_threads(chunks: Iterator[bytes]):
    pull = sync_to_async(next, thread_sensitive=False)
    try:
        while (chunk := await pull(chunks, None)) is not None:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # the open file of the entry being sent, if the client left midway
