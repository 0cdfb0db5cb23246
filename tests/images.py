"""Test photos built with Pillow: JPEGs with EXIF GPS and orientation, PNGs, HEIC, GIF, junk."""

from __future__ import annotations

import io

from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def jpeg_with_gps(width: int = 400, height: int = 200, orientation: int = 6) -> bytes:
    """A JPEG whose EXIF holds a camera make, GPS position (30.59 N, 114.31 E) and an orientation."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, width // 2, height))  # left half blue: shows the rotation
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[ORIENTATION] = orientation  # 6: the camera was turned 90° clockwise
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (30.0, 35.0, 34.0), 3: "E", 4: (114.0, 18.0, 19.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    """A plain image in ``fmt`` (JPEG, PNG, GIF, HEIF…)."""
    out = io.BytesIO()
    colour = (10, 200, 10, 128) if mode == "RGBA" else (10, 200, 10)
    Image.new(mode, size, colour).save(out, fmt)
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    """Decode stored bytes (to check format, size and metadata)."""
    return Image.open(io.BytesIO(data))
