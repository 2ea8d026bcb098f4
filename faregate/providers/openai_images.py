"""The OpenAI Images protocol (`/images/generations`, `/images/edits`), spoken by OpenAI and
OpenAI-compatible image vendors."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from faregate.billing.types import Usage
from faregate.errors import FailureClass, UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest, reply_object
from faregate.providers.image_bytes import decode_b64, image_type
from faregate.providers.image_types import (
    GeneratedImage,
    ImageCall,
    ImageResult,
    cannot_honour,
)
from faregate.providers.openai import OpenAIChat

# What an OpenAI image upstream has no parameter for.
_FOREIGN = (
    "negative_prompt",
    "google_search",
    "safety_settings",
    "project_id",
    "veon_model_key",
)

# aspect_ratio -> size, by model family (dall-e-3 has wide and tall; the GPT image models 3:2).
_RATIOS: dict[str, dict[str, str]] = {
    "dall-e-2": {"1:1": "1024x1024"},
    "dall-e-3": {"1:1": "1024x1024", "16:9": "1792x1024", "9:16": "1024x1792"},
    "gpt-image": {"1:1": "1024x1024", "3:2": "1536x1024", "2:3": "1024x1536"},
}


def _family(upstream_model: str) -> str:
    for family in ("dall-e-2", "dall-e-3"):
        if upstream_model.startswith(family):
            return family
    return "gpt-image"


def _size(call: ImageCall, upstream_model: str) -> str | None:
    """The size to ask for: `size`, else the one `aspect_ratio` names (None: the default)."""
    if call.size is not None or call.aspect_ratio is None:
        return call.size
    size = _RATIOS[_family(upstream_model)].get(call.aspect_ratio)
    if size is None:
        raise cannot_honour("aspect_ratio", "OpenAI")
    return size


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    prompt, output = data.get("input_tokens"), data.get("output_tokens")
    if not isinstance(prompt, int) or not isinstance(output, int):
        return None
    return Usage(prompt, output)


def _details(data: Any) -> dict[str, int] | None:
    """`input_tokens_details` as reported: its text and image token counts."""
    if not isinstance(data, dict):
        return None
    text, image = data.get("text_tokens"), data.get("image_tokens")
    if not isinstance(text, int) or not isinstance(image, int):
        return None
    return {"text_tokens": text, "image_tokens": image}


def _image(item: Any) -> GeneratedImage | None:
    """One reply item as an image: well-formed bytes or an https URL; None otherwise."""
    if not isinstance(item, dict):
        return None
    revised = item.get("revised_prompt")
    revised = revised if isinstance(revised, str) else None
    b64 = item.get("b64_json")
    if isinstance(b64, str):
        raw = decode_b64(b64)
        kind = image_type(raw) if raw is not None else None
        return GeneratedImage(b64=b64, content_type=kind, revised_prompt=revised) if kind else None
    url = item.get("url")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return GeneratedImage(url=url, revised_prompt=revised)
    return None


def _multipart(fields: list[tuple[str, str | tuple[str, str, bytes]]]) -> tuple[str, bytes]:
    """A multipart/form-data body: (content type, bytes)."""
    boundary = "faregate-" + secrets.token_hex(16)
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, str):
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += value.encode() + b"\r\n"
        else:
            filename, ctype, data = value
            safe = filename.replace('"', "").replace("\r", "").replace("\n", "") or "image"
            out += (
                f'Content-Disposition: form-data; name="{name}"; filename="{safe}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n"
            ).encode()
            out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


class OpenAIImages:
    """`POST /images/generations` (JSON) and `POST /images/edits` (multipart)."""

    name = "openai"

    def check_image_call(self, call: ImageCall, upstream_model: str) -> None:
        asked = call.asked()
        for name in _FOREIGN:
            if name in asked:
                raise cannot_honour(name, "OpenAI")
        if call.resolution not in (None, "1K"):  # the OpenAI sizes are all about 1K
            raise cannot_honour("resolution", "OpenAI")
        if call.reference_images and _family(upstream_model) != "gpt-image":
            raise cannot_honour("reference_images", "OpenAI")  # dall-e edits take one image
        _size(call, upstream_model)

    def _fields(self, call: ImageCall, upstream_model: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": upstream_model, "prompt": call.prompt, "n": call.n}
        size = _size(call, upstream_model)
        optional = {
            "size": size,
            "quality": call.quality,
            "style": call.style,
            "background": call.background,
            "output_format": call.output_format,
            "user": call.user,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if upstream_model.startswith("dall-e"):  # the GPT image models always answer base64
            body["response_format"] = "b64_json"
        return body

    def build_image_request(
        self, call: ImageCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        headers = dict(creds.headers)
        if creds.api_key:
            headers["authorization"] = f"Bearer {creds.api_key}"
        body = self._fields(call, upstream_model)
        if not call.edit and not call.reference_images:
            headers["content-type"] = "application/json"
            return UpstreamRequest("/images/generations", headers, orjson.dumps(body))
        parts: list[tuple[str, str | tuple[str, str, bytes]]] = [
            (k, str(v)) for k, v in body.items()
        ]
        images = [*call.images, *call.reference_images]  # references: images of an edit
        name = "image[]" if len(images) > 1 else "image"
        parts += [(name, (i.filename, i.content_type, i.data)) for i in images]
        if call.mask is not None:
            m = call.mask
            parts.append(("mask", (m.filename, m.content_type, m.data)))
        headers["content-type"], data = _multipart(parts)
        return UpstreamRequest("/images/edits", headers, data)

    def parse_image_response(self, body: bytes, call: ImageCall) -> ImageResult:
        data = reply_object(body, lambda d: isinstance(d.get("data"), list))
        images = [img for item in data["data"] if (img := _image(item)) is not None]
        if not images:
            raise UpstreamError(
                FailureClass.TRANSIENT, "the provider returned no valid image", status=200
            )
        created = data.get("created")
        usage = data.get("usage")
        details = usage.get("input_tokens_details") if isinstance(usage, dict) else None
        return ImageResult(
            images[: call.n],
            _usage(usage),
            created=created if isinstance(created, int) else None,
            input_details=_details(details),
        )

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return _CHAT.classify_error(status, headers, body)


_CHAT = OpenAIChat()
