"""The image adapters: requests each upstream protocol understands, fields it cannot honour
refused by name, replies parsed into checked images."""

from __future__ import annotations

import base64
import io
from typing import Any

import orjson
import pytest
from PIL import Image

from faregate.errors import BadRequest, FailureClass, UpstreamError
from faregate.providers.base import Credentials
from faregate.providers.gemini_images import GeminiImages
from faregate.providers.image_bytes import image_type
from faregate.providers.image_types import ImageCall, InputImage
from faregate.providers.openai_images import OpenAIImages

CREDS = Credentials("http://up.test/v1", "sk-up")


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (9, 9, 9)).save(out, format="PNG")
    return out.getvalue()


PNG = base64.b64encode(png_bytes()).decode()


def call(**fields: Any) -> ImageCall:
    return ImageCall(model="m", prompt="a cat", n=fields.pop("n", 1), request_id="r", **fields)


def test_openai_generation_request() -> None:
    req = OpenAIImages().build_image_request(
        call(n=2, size="1792x1024", quality="hd", style="vivid", user="u1"), "dall-e-3", CREDS
    )
    assert req.path == "/images/generations"
    assert req.headers["authorization"] == "Bearer sk-up"
    assert orjson.loads(req.body) == {
        "model": "dall-e-3",
        "prompt": "a cat",
        "n": 2,
        "size": "1792x1024",
        "quality": "hd",
        "style": "vivid",
        "user": "u1",
        "response_format": "b64_json",
    }


def test_openai_maps_aspect_ratios_per_family() -> None:
    adapter = OpenAIImages()
    wide = adapter.build_image_request(call(aspect_ratio="16:9"), "dall-e-3", CREDS)
    assert orjson.loads(wide.body)["size"] == "1792x1024"
    gpt = adapter.build_image_request(call(aspect_ratio="3:2"), "gpt-image-1", CREDS)
    assert orjson.loads(gpt.body)["size"] == "1536x1024"
    with pytest.raises(BadRequest) as err:
        adapter.check_image_call(call(aspect_ratio="16:9"), "gpt-image-1")
    assert err.value.param == "aspect_ratio"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"negative_prompt": "dogs"}, "negative_prompt"),
        ({"google_search": True}, "google_search"),
        ({"safety_settings": []}, "safety_settings"),
        ({"project_id": "p"}, "project_id"),
        ({"veon_model_key": "k"}, "veon_model_key"),
        ({"resolution": "2K"}, "resolution"),
        ({"reference_images": [InputImage(b"x", "image/png")]}, "reference_images"),
    ],
)
def test_openai_refuses_what_it_cannot_honour(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        OpenAIImages().check_image_call(call(**fields), "dall-e-3")
    assert (err.value.param, err.value.code) == (param, "unsupported_parameter")


def test_openai_reference_images_are_an_edit_of_the_gpt_image_models() -> None:
    ref = InputImage(png_bytes(), "image/png", "ref.png")
    OpenAIImages().check_image_call(call(reference_images=[ref]), "gpt-image-1")
    req = OpenAIImages().build_image_request(call(reference_images=[ref]), "gpt-image-1", CREDS)
    assert req.path == "/images/edits"
    assert b'name="image"; filename="ref.png"' in req.body


def test_openai_edit_is_multipart() -> None:
    image = InputImage(png_bytes(), "image/png", "a.png")
    req = OpenAIImages().build_image_request(
        call(edit=True, images=[image, image], mask=image), "gpt-image-1", CREDS
    )
    assert req.path == "/images/edits"
    assert req.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert req.body.count(b'name="image[]"; filename="a.png"') == 2
    assert b'name="mask"; filename="a.png"' in req.body
    assert b'name="prompt"\r\n\r\na cat\r\n' in req.body


def test_openai_reply_keeps_valid_images_only() -> None:
    body = {
        "created": 5,
        "data": [
            {"b64_json": PNG, "revised_prompt": "a fine cat"},
            {"b64_json": base64.b64encode(b"\x89PNG\r\n\x1a\ngarbage").decode()},
            {"url": "https://cdn.test/x.png"},
        ],
        "usage": {"input_tokens": 3, "output_tokens": 9},
    }
    result = OpenAIImages().parse_image_response(orjson.dumps(body), call(n=3))
    assert [(i.b64 is not None, i.url) for i in result.images] == [
        (True, None),
        (False, "https://cdn.test/x.png"),
    ]
    assert result.images[0].revised_prompt == "a fine cat" and result.created == 5
    assert result.usage is not None and result.usage.completion_tokens == 9
    with pytest.raises(UpstreamError) as err:
        OpenAIImages().parse_image_response(b'{"data": [{"b64_json": "!!"}]}', call())
    assert err.value.failure is FailureClass.TRANSIENT


def test_gemini_request_maps_the_seed_fields() -> None:
    ref = InputImage(png_bytes(), "image/png")
    req = GeminiImages().build_image_request(
        call(
            n=2,
            size="1536x1024",
            resolution="2K",
            google_search=True,
            safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            reference_images=[ref],
            user="sim:status=500",
        ),
        "models/gemini-3-pro-image-preview",
        CREDS,
    )
    assert req.path == "/v1beta/models/gemini-3-pro-image-preview:generateContent"
    assert req.headers["x-goog-api-key"] == "sk-up"
    body = orjson.loads(req.body)
    assert body["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "candidateCount": 2,
        "imageConfig": {"aspectRatio": "3:2", "imageSize": "2K"},
    }
    parts = body["contents"][0]["parts"]
    assert parts[0] == {"text": "a cat"} and parts[1]["inlineData"]["mimeType"] == "image/png"
    assert body["tools"] == [{"googleSearch": {}}]
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert body["labels"] == {"sim_fault": "status=500"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"style": "vivid"}, "style"),
        ({"quality": "hd"}, "quality"),
        ({"background": "transparent"}, "background"),
        ({"output_format": "jpeg"}, "output_format"),
        ({"negative_prompt": "x"}, "negative_prompt"),
        ({"size": "512x512"}, "size"),
        ({"aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"resolution": "8K"}, "resolution"),
        ({"mask": InputImage(b"x", "image/png")}, "mask"),
    ],
)
def test_gemini_refuses_what_it_cannot_honour(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        GeminiImages().check_image_call(call(**fields), "gemini-3-pro-image-preview")
    assert err.value.param == param


def test_gemini_reply_reads_inline_images() -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "Here"},
                        {"inlineData": {"mimeType": "image/png", "data": PNG}},
                    ]
                }
            },
            {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]}},
        ],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1290},
    }
    result = GeminiImages().parse_image_response(orjson.dumps(body), call(n=2))
    assert len(result.images) == 1 and result.text == "Here"
    assert result.usage is not None and result.usage.completion_tokens == 1290
    with pytest.raises(UpstreamError):
        GeminiImages().parse_image_response(b'{"candidates": []}', call())


def test_image_type_refuses_what_is_not_a_whole_image() -> None:
    data = png_bytes()
    assert image_type(data) == "image/png"
    assert image_type(data[:-8]) is None
    assert image_type(b"GIF89a") is None
    assert image_type(b"hello") is None
