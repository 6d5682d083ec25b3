"""Mixtape cover uploads: checked, then re-encoded, so the stored file is always our own JPEG.

Re-encoding (rather than keeping the upload) drops whatever else the file carried: EXIF with
GPS positions, polyglot payloads, oversized dimensions.
"""

import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.template.defaultfilters import filesizeformat
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
# Memory is what an upload costs: a decoded picture takes up to 4 bytes a pixel (RGBA), so 16
# megapixels (4000 x 4000, above any cover people upload and above the largest cover we keep)
# peak at about 75 MB while being shrunk. libwebp decodes through buffers of its own, about 16
# bytes a pixel in all, so WebP stops at 6 megapixels (about 100 MB).
MAX_SOURCE_PIXELS = 16_000_000
MAX_WEBP_PIXELS = 6_000_000
# Covers decoded at once in one process, on threads of their own: the others wait their turn
# (up to COVER_WAIT_SECONDS), and the same two threads' allocator arenas serve every decode, so
# eight uploads at once cost two decodes' memory, not eight (a decode on each request's thread
# would leave its freed memory in that thread's arena).
COVER_DECODES_AT_ONCE = 2
COVER_WAIT_SECONDS = 20
JPEG_QUALITY = 85

_admitted = threading.BoundedSemaphore(COVER_DECODES_AT_ONCE)
_decoders = ThreadPoolExecutor(max_workers=COVER_DECODES_AT_ONCE, thread_name_prefix="cover")


def process_cover(upload) -> ContentFile:
    """A JPEG of at most COVER_MAX_PIXELS on a side made from ``upload``; ValidationError otherwise."""
    limit = settings.COVER_MAX_UPLOAD_SIZE
    if upload.size > limit:
        raise ValidationError(
            f"The cover is {filesizeformat(upload.size)}; the limit is {filesizeformat(limit)}.", code="too_big"
        )
    return ContentFile(shrink_to_jpeg(upload, settings.COVER_MAX_PIXELS), name=f"{uuid.uuid4().hex}.jpg")


def shrink_to_jpeg(source, side: int) -> bytes:
    """Our own JPEG of at most ``side`` pixels a side made from the picture in ``source`` (a file
    object: an upload, or a track's embedded picture in memory), within the bounds above;
    ValidationError, with a message for people, for anything else."""
    if not _admitted.acquire(timeout=COVER_WAIT_SECONDS):
        raise ValidationError("The server is busy with other covers; please try again in a moment.", code="busy")
    try:
        return _decoders.submit(_reencode, source, side).result()
    finally:
        _admitted.release()


def _reencode(upload, side: int) -> bytes:
    try:
        upload.seek(0)
        with Image.open(upload) as image:
            if image.format not in ACCEPTED_FORMATS:
                raise ValidationError(
                    f"Covers must be JPEG, PNG or WebP images (this file is {image.format or 'unknown'}).",
                    code="format",
                )
            width, height = image.size
            most = MAX_WEBP_PIXELS if image.format == "WEBP" else MAX_SOURCE_PIXELS
            if width * height > most:
                kind = "WebP covers" if image.format == "WEBP" else "covers"
                raise ValidationError(
                    f"The image is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); {kind} may "
                    f"have at most {most // 1_000_000} megapixels.",
                    code="pixels",
                )
            if image.format == "JPEG":
                # JPEG decodes at 1/2, 1/4 or 1/8 scale directly: a large photo never exists in full.
                image.draft("RGB", (side, side))
            image.load()
            picture = image
            if picture.mode not in ("RGB", "RGBA", "L", "LA"):  # palette, CMYK, 16-bit...: resamplable
                picture = picture.convert("RGBA" if picture.mode in ("P", "PA") else "RGB")
                image.close()  # the pixels in their first form go now
            # Shrink before anything else, so that turning and flattening work on a small picture.
            factor = min(picture.width // side, picture.height // side)
            if factor >= 2:
                reduced = _reduce(picture, factor)
                picture.close()
                image.close()
                picture = reduced
            picture.thumbnail((side, side), Image.Resampling.LANCZOS)
            picture = _flatten(ImageOps.exif_transpose(picture))
            out = io.BytesIO()
            picture.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
            return out.getvalue()
    except ValidationError:
        raise
    except Image.DecompressionBombError:
        raise ValidationError(
            f"The image has far too many pixels; covers may have at most {MAX_SOURCE_PIXELS // 1_000_000} megapixels.",
            code="pixels",
        ) from None
    except UnidentifiedImageError:
        raise ValidationError("This file is not an image (JPEG, PNG or WebP expected).", code="not_image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt data this way.
        raise ValidationError(f"The image could not be read: {exc}", code="corrupt") from None


def _reduce(picture: Image.Image, factor: int) -> Image.Image:
    """``picture`` shrunk by a whole factor (box average), one band at a time: Pillow's own
    reduce and resize premultiply alpha into a full-size copy first, as much memory again."""
    if picture.mode not in ("RGBA", "LA"):
        return picture.reduce(factor)
    reduced = Image.merge(picture.mode, [picture.getchannel(band).reduce(factor) for band in picture.getbands()])
    reduced.info = dict(picture.info)  # the EXIF, for the turn that follows
    return reduced


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency laid on white (JPEG has no alpha)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
