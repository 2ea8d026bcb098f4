"""Gemini image models: `models/{model}:generateContent` with IMAGE output (`inlineData` parts)."""

from __future__ import annotations

import base64
import math
from typing import Any

import orjson

from faregate.errors import FailureClass, UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest, reply_object
from faregate.providers.gemini import classify
from faregate.providers.gemini_stream import usage_dict
from faregate.providers.image_bytes import decode_b64, image_type
from faregate.providers.image_types import (
    GeneratedImage,
    ImageCall,
    ImageResult,
    cannot_honour,
)
from faregate.providers.openai import usage_from

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGE_SIZES = ("1K", "2K", "4K")
_WIDE = {"1792x1024": "16:9", "1024x1792": "9:16"}  # the OpenAI wide and tall sizes
_DEFAULTS = {"quality": ("auto", "standard"), "background": ("auto",), "output_format": ("png",)}
# What a Gemini image model has no parameter for.
_FOREIGN = ("style", "project_id", "veon_model_key", "negative_prompt", "mask")


def _ratio_of(size: str) -> tuple[str, str]:
    """(aspect ratio, image size) of a `WxH` size, or a 400 naming `size`."""
    if size in _WIDE:
        return _WIDE[size], "1K"
    width, _, height = size.partition("x")
    w, h = int(width), int(height)
    g = math.gcd(w, h)
    ratio = f"{w // g}:{h // g}"
    if ratio not in ASPECT_RATIOS or max(w, h) < 1024:
        raise cannot_honour("size", "Gemini")
    longest = max(w, h)
    return ratio, "1K" if longest <= 1536 else "2K" if longest <= 3072 else "4K"


def image_config(call: ImageCall) -> dict[str, str]:
    """Gemini's `imageConfig` for the call's size, aspect ratio and resolution."""
    config: dict[str, str] = {}
    if call.size not in (None, "auto"):
        config["aspectRatio"], config["imageSize"] = _ratio_of(str(call.size))
    if call.aspect_ratio is not None:
        if call.aspect_ratio not in ASPECT_RATIOS:
            raise cannot_honour("aspect_ratio", "Gemini")
        config["aspectRatio"] = call.aspect_ratio
    if call.resolution is not None:
        if call.resolution not in IMAGE_SIZES:
            raise cannot_honour("resolution", "Gemini")
        config["imageSize"] = call.resolution
    return config


def _inline(data: bytes, content_type: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": content_type, "data": base64.b64encode(data).decode()}}


def request_body(call: ImageCall) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": call.prompt}]
    parts += [_inline(i.data, i.content_type) for i in (*call.images, *call.reference_images)]
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if call.n > 1:
        config["candidateCount"] = call.n
    if imaging := image_config(call):
        config["imageConfig"] = imaging
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}]}
    body["generationConfig"] = config
    if call.safety_settings is not None:
        body["safetySettings"] = call.safety_settings
    if call.google_search:
        body["tools"] = [{"googleSearch": {}}]
    if call.user is not None and call.user.startswith("sim:"):
        body["labels"] = {"sim_fault": call.user[4:]}
    return body


def _images(data: dict[str, Any]) -> tuple[list[GeneratedImage], str]:
    images: list[GeneratedImage] = []
    texts: list[str] = []
    for cand in data.get("candidates") or ():
        content = cand.get("content") if isinstance(cand, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict) or part.get("thought"):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            inline = part.get("inlineData")
            if isinstance(inline, dict) and isinstance(inline.get("data"), str):
                raw = decode_b64(inline["data"])
                kind = image_type(raw) if raw is not None else None
                if kind is not None:
                    images.append(GeneratedImage(b64=inline["data"], content_type=kind))
    return images, "".join(texts)


class GeminiImages:
    """Image generation and edits on Gemini image models (`generateContent`)."""

    name = "gemini"

    def check_image_call(self, call: ImageCall, upstream_model: str) -> None:
        asked = call.asked()
        for name in _FOREIGN:
            if name in asked:
                raise cannot_honour(name, "Gemini")
        for name, accepted in _DEFAULTS.items():
            if asked.get(name) not in (None, *accepted):
                raise cannot_honour(name, "Gemini")
        image_config(call)

    def build_image_request(
        self, call: ImageCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        headers = {"content-type": "application/json", **creds.headers}
        if creds.api_key:
            headers["x-goog-api-key"] = creds.api_key
        model = upstream_model.removeprefix("models/")
        body = orjson.dumps(request_body(call))
        return UpstreamRequest(f"/v1beta/models/{model}:generateContent", headers, body)

    def parse_image_response(self, body: bytes, call: ImageCall) -> ImageResult:
        data = reply_object(body, lambda d: isinstance(d.get("candidates"), list))
        images, text = _images(data)
        if not images:
            raise UpstreamError(
                FailureClass.TRANSIENT, "the provider returned no valid image", status=200
            )
        usage = usage_from(usage_dict(data.get("usageMetadata")))
        return ImageResult(images[: call.n], usage, text)

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return classify(status, headers, body)
