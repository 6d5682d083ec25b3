"""A track's picture, found once and kept small: the one image service behind the pages and the
Subsonic API's ``getCoverArt``.

Where the picture comes from: the file's own embedded front cover (FLAC and Ogg pictures, MP4
``covr``, ID3 ``APIC`` in MP3, AIFF and WAV, APEv2 ``Cover Art (Front)`` in WavPack and Monkey's
Audio), else a ``cover``/``folder``/``front`` JPEG or PNG next to the file. Never anything under
``MUSIC_ROOT`` is written: thumbnails live in ``ARTWORK_DIR`` (``<DATA_ROOT>/cache/artwork``).

How it is kept: each track points, through a small link file named after the track's path, size
and modification time, to the SHA-256 of its picture (or to nothing: a track without a picture
is not parsed again). Thumbnails are named after that digest and their size, so an album's
twelve tracks share one file per size. A changed file gets a new link by itself. Each thumbnail
is our own JPEG, made by the same bounded decoder as uploaded covers (``covers.shrink_to_jpeg``:
pixel limits, two decodes at a time).
"""

import hashlib
import io
import logging
import os
import threading
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from config.paths import resolve_inside

from . import embedded
from .covers import shrink_to_jpeg

logger = logging.getLogger(__name__)

SIZES = (64, 128, 256, 512, 1024)  # a request is served the smallest at or above what it asks
MAX_PICTURE_BYTES = embedded.MAX_PICTURE_BYTES  # an embedded or folder picture larger than this is ignored
FOLDER_NAMES = ("cover", "folder", "front", "album")
FOLDER_SUFFIXES = (".jpg", ".jpeg", ".png")
NONE = b""  # a link to no picture


def size_for(asked: int | None) -> int:
    if not asked:
        return SIZES[-2]
    return next((size for size in SIZES if size >= asked), SIZES[-1])


def _root() -> Path:
    return Path(settings.ARTWORK_DIR)


def _link_path(track) -> Path:
    key = hashlib.sha256(f"{track.path}\0{track.file_size}\0{track.file_mtime_ns}".encode("utf-8", "surrogatepass"))
    digest = key.hexdigest()
    return _root() / "tracks" / digest[:2] / digest


def _thumbnail_path(picture_digest: str, size: int) -> Path:
    return _root() / "pictures" / picture_digest[:2] / f"{picture_digest}-{size}.jpg"


def thumbnail(track, asked_size: int | None = None) -> Path | None:
    """The JPEG thumbnail of ``track``'s picture at the size for ``asked_size``, made on first
    use; None when the track has no (usable) picture."""
    size = size_for(asked_size)
    link = _link_path(track)
    try:
        digest = link.read_bytes().decode("ascii")
    except FileNotFoundError:
        digest = None
    if digest == "":
        return None
    if digest is not None:
        path = _thumbnail_path(digest, size)
        if path.exists():
            return path
    picture = find_picture(track)
    if picture is None:
        _write_atomically(link, NONE)
        return None
    digest = hashlib.sha256(picture).hexdigest()
    path = _thumbnail_path(digest, size)
    if not path.exists():
        try:
            data = shrink_to_jpeg(io.BytesIO(picture), size)
        except ValidationError as exc:
            logger.info("track %s: its picture cannot be used (%s)", track.pk, exc.messages[0])
            if exc.code != "busy":
                _write_atomically(link, NONE)
            return None
        _write_atomically(path, data)
    _write_atomically(link, digest.encode("ascii"))
    return path


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One temporary name per thread, not per process: two requests for the same cover at once
    # (a page shows it twice) each write their own copy, and the last rename wins.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# --- finding the picture ----------------------------------------------------------------------


def find_picture(track) -> bytes | None:
    """The track's front cover as encoded bytes (JPEG, PNG...), or None."""
    resolved = resolve_inside(settings.MUSIC_ROOT, track.path)
    if resolved is None:
        return None
    source = Path(resolved)
    picture = _embedded(source)
    if picture is None:
        picture = _beside(source)
    if picture is not None and len(picture) > MAX_PICTURE_BYTES:
        return None
    return picture


def _embedded(path: Path) -> bytes | None:
    audio = embedded.read_audio(path)  # a damaged file: the scan reported it; here it has no picture
    front = embedded.front_picture(embedded.pictures(audio)) if audio is not None else None
    return front[1] if front else None


def _beside(path: Path) -> bytes | None:
    try:
        names = {entry.name.lower(): entry for entry in os.scandir(path.parent) if entry.is_file(follow_symlinks=False)}
    except OSError:
        return None
    for stem in FOLDER_NAMES:
        for suffix in FOLDER_SUFFIXES:
            entry = names.get(stem + suffix)
            if entry is not None and entry.stat(follow_symlinks=False).st_size <= MAX_PICTURE_BYTES:
                try:
                    return Path(entry.path).read_bytes()
                except OSError:
                    return None
    return None


MOSAIC_SIDE = 512


def mosaic(tracks) -> Path | None:
    """A 2x2 picture of the first four different pictures among ``tracks`` (in order): the cover
    of a mixtape that has none of its own. One picture alone is the cover; two or three repeat
    to fill the square. None when no track has a picture."""
    pictures: list[Path] = []
    seen: set[str] = set()
    for track in tracks[:40]:  # enough to find four albums; bounded work for a 500-track mixtape
        path = thumbnail(track, MOSAIC_SIDE // 2)
        if path is not None and path.name not in seen:
            seen.add(path.name)
            pictures.append(path)
            if len(pictures) == 4:
                break
    if not pictures:
        return None
    if len(pictures) == 1:
        return pictures[0]
    key = hashlib.sha256("".join(p.name for p in pictures).encode()).hexdigest()
    path = _root() / "pictures" / key[:2] / f"mosaic-{key}.jpg"
    if path.exists():
        return path
    from PIL import Image

    half = MOSAIC_SIDE // 2
    canvas = Image.new("RGB", (MOSAIC_SIDE, MOSAIC_SIDE), (217, 221, 227))
    cells = [pictures[n % len(pictures)] for n in range(4)]  # two or three pictures repeat
    for n, cell in enumerate(cells):
        with Image.open(cell) as image:  # our own thumbnails, at most `half` a side
            tile = image.convert("RGB")
            tile.thumbnail((half, half))
            canvas.paste(tile, ((n % 2) * half + (half - tile.width) // 2, (n // 2) * half + (half - tile.height) // 2))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=85, optimize=True)
    _write_atomically(path, out.getvalue())
    return path
