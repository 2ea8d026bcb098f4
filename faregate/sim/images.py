"""The simulator's images: small, valid PNGs drawn deterministically from the prompt.

An image is a fraction (1/16, at least 16 px a side) of the size asked for, so its aspect
ratio is kept and tests can decode it: a background and four bands whose colours come from
a SHA-256 of the model, the prompt and the image's index. `bad_image` gives a PNG signature
followed by garbage instead.
"""

from __future__ import annotations

import base64
import hashlib
import io

from PIL import Image, ImageDraw

from faregate.providers.image_bytes import image_type

SCALE = 16
MIN_SIDE = 16
BAD_IMAGE = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDRnot-an-image" * 4
ASPECTS = {
    "1:1": (1, 1),
    "2:3": (2, 3),
    "3:2": (3, 2),
    "3:4": (3, 4),
    "4:3": (4, 3),
    "4:5": (4, 5),
    "5:4": (5, 4),
    "9:16": (9, 16),
    "16:9": (16, 9),
    "21:9": (21, 9),
}
SIDES = {"1K": 1024, "2K": 2048, "4K": 4096}


def dimensions(size: str | None) -> tuple[int, int]:
    """(width, height) of the simulated image for a `WxH` size (default 1024x1024)."""
    if not size or size == "auto":
        return _scaled(1024, 1024)
    width, _, height = size.partition("x")
    return _scaled(int(width), int(height))


def aspect_dimensions(ratio: str | None, image_size: str | None) -> tuple[int, int]:
    """(width, height) for a Gemini aspect ratio and image size (default 1:1, 1K)."""
    w, h = ASPECTS.get(ratio or "1:1", (1, 1))
    side = SIDES.get(image_size or "1K", 1024)
    return _scaled(side, side * h // w) if w >= h else _scaled(side * w // h, side)


def _scaled(width: int, height: int) -> tuple[int, int]:
    return max(width // SCALE, MIN_SIDE), max(height // SCALE, MIN_SIDE)


def png(seed: str, size: tuple[int, int]) -> bytes:
    """A PNG of `size` drawn from `seed`."""
    digest = hashlib.sha256(seed.encode()).digest()
    width, height = size
    img = Image.new("RGB", size, tuple(digest[0:3]))
    draw = ImageDraw.Draw(img)
    for band in range(4):
        colour = tuple(digest[3 + band * 3 : 6 + band * 3])
        top = height * band // 4
        draw.rectangle((width // 4, top, width - 1, top + height // 8), fill=colour)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def image_b64(seed: str, size: tuple[int, int], bad: bool = False) -> str:
    return base64.b64encode(BAD_IMAGE if bad else png(seed, size)).decode()


def is_image(data: bytes) -> bool:
    """Whether `data` is a whole PNG, JPEG, WebP or GIF."""
    return image_type(data) is not None
