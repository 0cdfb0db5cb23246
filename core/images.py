"""Photos from residents and handlers: checked, re-encoded as JPEG with metadata removed, and thumbnailed.

Re-encoding from decoded pixels (not copying the file) is what strips EXIF, GPS, XMP and any payload
appended to the image; ``ImageOps.exif_transpose`` applies the camera's orientation first, so a portrait
photo still stands upright once its EXIF orientation tag is gone.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from core.i18n import N_, DomainError

try:  # HEIC/HEIF (iPhone photos) when pillow-heif is installed; without it they are refused as unknown
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - depends on the installation
    HEIF = False

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "HEIF", "MPO"})  # MPO: JPEGs from some phone cameras
MAX_SIDE = 2048  # longest side of the stored photo
THUMB_SIDE = 320
MAX_PIXELS = 50_000_000  # a decompression bomb is refused before its pixels are decoded
JPEG_QUALITY = 85


class ImageRejected(DomainError):
    """The upload is not a photo we accept (code: ``type``, ``too_large``, ``corrupt``)."""

    def __init__(self, code: str, message: str, **params: object) -> None:
        super().__init__(code, message, "photos", **params)


@dataclass(frozen=True)
class ProcessedImage:
    """A re-encoded photo and its thumbnail (both JPEG bytes without metadata)."""

    jpeg: bytes
    thumbnail: bytes
    width: int
    height: int


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)  # no exif= argument: nothing carried over
    return out.getvalue()


def reencode(data: bytes, max_bytes: int) -> ProcessedImage:
    """Check an uploaded photo and return it upright, scaled to MAX_SIDE, as metadata-free JPEG."""
    if len(data) > max_bytes:
        raise ImageRejected("too_large", N_("单张照片不能超过 %(mb)s MB"), mb=max(1, max_bytes // 2**20))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                if opened.format not in ACCEPTED_FORMATS:
                    raise ImageRejected("type", N_("只支持 JPEG、PNG 或 HEIC 格式的照片"))
                if opened.width * opened.height > MAX_PIXELS:
                    raise ImageRejected("too_large", N_("照片像素过多，请压缩后再上传"))
                image = ImageOps.exif_transpose(opened)
                image.load()
    except ImageRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("type", N_("只支持 JPEG、PNG 或 HEIC 格式的照片")) from None
    except (OSError, ValueError, SyntaxError):
        raise ImageRejected("corrupt", N_("照片文件已损坏，无法读取")) from None
    if image.mode not in ("RGB", "L"):
        # Transparent PNGs get a white background rather than black.
        background = Image.new("RGB", image.size, "white")
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    return ProcessedImage(_encode(image), _encode(thumb), image.width, image.height)
