"""Mixtape cover uploads: checked, then re-encoded, so the stored file is always our own JPEG.

Re-encoding (rather than keeping the upload) drops whatever else the file carried: EXIF with
GPS positions, polyglot payloads, oversized dimensions.
"""

import io
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.template.defaultfilters import filesizeformat
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
# Far above any real cover, far below what would exhaust memory while decoding.
MAX_SOURCE_PIXELS = 50_000_000
JPEG_QUALITY = 85


def process_cover(upload) -> ContentFile:
    """A JPEG of at most COVER_MAX_PIXELS on a side made from ``upload``; ValidationError otherwise."""
    limit = settings.COVER_MAX_UPLOAD_SIZE
    if upload.size > limit:
        raise ValidationError(
            f"The cover is {filesizeformat(upload.size)}; the limit is {filesizeformat(limit)}.", code="too_big"
        )
    try:
        upload.seek(0)
        with Image.open(upload) as image:
            if image.format not in ACCEPTED_FORMATS:
                raise ValidationError(
                    f"Covers must be JPEG, PNG or WebP images (this file is {image.format or 'unknown'}).",
                    code="format",
                )
            width, height = image.size
            if width * height > MAX_SOURCE_PIXELS:
                raise ValidationError(f"The image is {width}×{height} pixels; that is too large.", code="pixels")
            image.load()
            picture = ImageOps.exif_transpose(image)
            picture = _flatten(picture)
            side = settings.COVER_MAX_PIXELS
            picture.thumbnail((side, side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            picture.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    except ValidationError:
        raise
    except Image.DecompressionBombError:
        raise ValidationError("The image has too many pixels; that is too large for a cover.", code="pixels") from None
    except UnidentifiedImageError:
        raise ValidationError("This file is not an image (JPEG, PNG or WebP expected).", code="not_image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt data this way.
        raise ValidationError(f"The image could not be read: {exc}", code="corrupt") from None
    return ContentFile(out.getvalue(), name=f"{uuid.uuid4().hex}.jpg")


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency laid on white (JPEG has no alpha)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
