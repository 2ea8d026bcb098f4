"""The simulator's image routes: real PNGs deterministic from the prompt, edits that check
their images, links, and the image faults (`bad_image`, `images=N`)."""

from __future__ import annotations

import base64
import io

import aiohttp
import openai
import pytest
from PIL import Image

from faregate.providers.image_bytes import image_type
from faregate.sim.images import aspect_dimensions, dimensions


def _png(b64: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


def _file(colour: tuple[int, int, int] = (1, 2, 3)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, format="PNG")
    return out.getvalue()


async def test_generations_are_pngs_deterministic_from_the_prompt(
    client: openai.AsyncOpenAI,
) -> None:
    first = await client.images.generate(
        model="dall-e-3", prompt="a cat", n=2, size="1024x1792", response_format="b64_json"
    )
    again = await client.images.generate(
        model="dall-e-3", prompt="a cat", n=2, size="1024x1792", response_format="b64_json"
    )
    other = await client.images.generate(
        model="dall-e-3", prompt="a dog", response_format="b64_json"
    )
    assert first.data and again.data and other.data
    assert [d.b64_json for d in first.data] == [d.b64_json for d in again.data]
    assert first.data[0].b64_json != first.data[1].b64_json != other.data[0].b64_json
    assert _png(first.data[0].b64_json or "").size == (64, 112)
    assert first.data[0].revised_prompt == "A detailed rendering of: a cat"


async def test_gpt_image_models_answer_base64_with_usage(client: openai.AsyncOpenAI) -> None:
    result = await client.images.generate(model="gpt-image-1", prompt="a cat", n=3)
    assert result.data and all(_png(d.b64_json or "") for d in result.data)
    assert result.usage is not None and result.usage.output_tokens == 3 * 272


async def test_links_serve_the_image(
    client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    result = await client.images.generate(model="flux", prompt="linked")
    assert result.data and result.data[0].url
    async with http.get(result.data[0].url) as r:
        assert r.status == 200 and r.content_type == "image/png"
        assert Image.open(io.BytesIO(await r.read())).format == "PNG"


async def test_edits_check_their_images(client: openai.AsyncOpenAI) -> None:
    done = await client.images.edit(
        model="gpt-image-1",
        image=[("a.png", _file(), "image/png"), ("b.png", _file((9, 9, 9)), "image/png")],
        prompt="merge",
    )
    assert done.usage is not None and done.usage.input_tokens_details.image_tokens == 130
    with pytest.raises(openai.BadRequestError) as err:
        await client.images.edit(
            model="dall-e-2", image=("a.png", b"not an image", "image/png"), prompt="x"
        )
    assert err.value.code == "invalid_image_format"


async def test_image_faults(client: openai.AsyncOpenAI) -> None:
    partial = await client.images.generate(
        model="dall-e-3", prompt="x", n=4, response_format="b64_json", user="sim:images=1"
    )
    assert partial.data is not None and len(partial.data) == 1
    bad = await client.images.generate(
        model="dall-e-3", prompt="x", response_format="b64_json", user="sim:bad_image"
    )
    assert bad.data and bad.data[0].b64_json
    raw = base64.b64decode(bad.data[0].b64_json)
    assert raw.startswith(b"\x89PNG\r\n\x1a\n") and image_type(raw) is None


async def test_gemini_image_config_shapes_the_inline_image(
    sim_url: str, http: aiohttp.ClientSession
) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "a harbour"}]}],
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "imageConfig": {"aspectRatio": "9:16", "imageSize": "2K"},
        },
    }
    url = f"{sim_url}/v1beta/models/gemini-3-pro-image-preview:generateContent"
    async with http.post(url, json=body, headers={"x-goog-api-key": "k"}) as r:
        data = await r.json()
    parts = data["candidates"][0]["content"]["parts"]
    (blob,) = [p["inlineData"] for p in parts if "inlineData" in p]
    assert _png(blob["data"]).size == aspect_dimensions("9:16", "2K") == (72, 128)
    body["generationConfig"]["imageConfig"] = {"aspectRatio": "7:5"}
    async with http.post(url, json=body, headers={"x-goog-api-key": "k"}) as r:
        assert r.status == 400


def test_dimensions_keep_the_aspect_ratio() -> None:
    assert dimensions(None) == (64, 64)
    assert dimensions("1792x1024") == (112, 64)
    assert dimensions("256x256") == (16, 16)
    assert aspect_dimensions("16:9", "4K") == (256, 144)
