"""Image models for the tests: per-image prices by size and quality, a token-priced model, a
Gemini image model, seed 004's chat image model, and a faulty model with a fallback."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from harness import Gateway, start_gateway
from PIL import Image

DALLE_PRICES = {"1024x1024": 40_000, "1024x1024/hd": 80_000, "1792x1024": 80_000}
DALLE_PRICES |= {"1024x1792": 80_000, "1792x1024/hd": 120_000, "1024x1792/hd": 120_000}
DALLE_PRICES |= {"256x256": 16_000, "512x512": 18_000}
DALLE_FLAT = 40_000
GEMINI_PRICES = {"1K": 134_000, "2K": 134_000, "4K": 240_000}
GEMINI_FLAT = 134_000
FLUX_FLAT = 80_000
GPT_IMAGE = {"input": 5_000_000, "output": 40_000_000}


def _table(prices: dict[str, int]) -> str:
    return ", ".join(f'"{k}" = {v}' for k, v in prices.items())


def image_models() -> str:
    """Extra config: the image models of the tests."""
    return f"""
[models."dall-e-3"]
kind = "images"
provider = "sim"
owned_by = "openai"
price = {{ image = {DALLE_FLAT}, images = {{ {_table(DALLE_PRICES)} }} }}

[models."gpt-image-1"]
kind = "images"
provider = "sim"
price = {{ input = {GPT_IMAGE["input"]}, output = {GPT_IMAGE["output"]} }}

[models."nano-banana-pro"]
kind = "images"
provider = "sim-gemini"
upstream = "gemini-3-pro-image-preview"
price = {{ image = {GEMINI_FLAT}, images = {{ {_table(GEMINI_PRICES)} }} }}

[models."black-forest-labs/flux-1.1-pro"]
kind = "images"
provider = "sim-gemini"
upstream = "flux-1.1-pro"
price = {{ image = {FLUX_FLAT} }}

[models."dall-e-faulty"]
kind = "images"
provider = "sim"
upstream = "dall-e-3"
fallbacks = ["dall-e-backup"]
price = {{ image = {DALLE_FLAT} }}

[models."dall-e-backup"]
kind = "images"
provider = "sim"
upstream = "dall-e-3"
price = {{ image = {DALLE_FLAT // 2} }}

[models."vendor-flux"]
kind = "images"
provider = "sim"
upstream = "flux-schnell"
price = {{ image = {FLUX_FLAT} }}

[models."dall-e-alone"]
kind = "images"
provider = "sim"
upstream = "dall-e-3"
price = {{ image = {DALLE_FLAT} }}
"""


def start_image_gateway(sim_url: str, tmp: Path, **config: Any) -> Gateway:
    sections = "\n[images]\nallow_private_addresses = true\n" + config.pop("sections", "")
    return start_gateway(sim_url, tmp, extra_models=image_models(), sections=sections, **config)


def decode_png(b64: str) -> Image.Image:
    """A returned image, decoded (raises when it is not an image)."""
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


def png_bytes(
    size: tuple[int, int] = (32, 32), colour: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()
