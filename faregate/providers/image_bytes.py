"""Image bytes from upstreams and callers: base64 decoding and a check that they are an image."""

from __future__ import annotations

import base64
import binascii
import io
import warnings

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
"""The image formats accepted, and their media types."""

MAX_PIXELS = 8192 * 8192
"""Past this many pixels an image is refused (a decompression bomb, not a picture)."""


def image_type(data: bytes) -> str | None:
    """The media type of `data` when it is a whole, well-formed PNG, JPEG, WebP or GIF
    (structure and checksums verified, pixels not decoded), else None. (Pillow is imported
    here: a gateway that never checks an image does not hold it in memory.)"""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                kind = FORMATS.get(img.format or "")
                if kind is None or img.width * img.height > MAX_PIXELS:
                    return None
                img.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Warning):
        return None
    except Image.DecompressionBombError:
        return None
    return kind


def decode_b64(text: str) -> bytes | None:
    """Standard base64 (a `data:` URL's payload included), or None when it is not."""
    if text.startswith("data:"):
        _, sep, text = text.partition(",")
        if not sep:
            return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def data_url(content_type: str, b64: str) -> str:
    return f"data:{content_type};base64,{b64}"
