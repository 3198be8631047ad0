"""What the image reader and writer share: format tables, metadata keys, error wording."""

from __future__ import annotations

import os

SUPPORTED_WRITE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
_METADATA_KEY = "impasto"
_EXIF_PREFIX = "impasto:"
_EXIF_IMAGE_DESCRIPTION = 0x010E
_EXIF_MAX_BYTES = 60_000  # a JPEG APP1 segment holds 64 KiB, EXIF headers included

PathLike = str | os.PathLike[str]

#: the one home of the decompression-bomb limit (pixels) every reader and method defaults to
DEFAULT_MAX_PIXELS: int = 100_000_000


def _reason(e: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), <= 200 chars."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]
