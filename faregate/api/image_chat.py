"""The chat-completions form of image generation: messages, `modalities` and `image_config`
(or `responseModalities`) on an image model, read into an image call."""

from __future__ import annotations

from typing import Any

from faregate.api.images_request import CHOICES, MAX_IMAGES
from faregate.errors import BadRequest, ValidationFailed
from faregate.providers.image_types import ImageCall

MODALITY_FIELDS = ("modalities", "response_modalities", "responseModalities")
SAFETY_FIELDS = ("safety_settings", "safetySettings")
KNOWN = {"model", "messages", "image_config", "n", "stream", "user"}
KNOWN |= {*MODALITY_FIELDS, *SAFETY_FIELDS}


def _one_of(body: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    sent = [n for n in names if body.get(n) is not None]
    if len(sent) > 1:
        raise ValidationFailed(
            f"{' and '.join(repr(n) for n in sent)} are the same field; send only one of them.",
            code="duplicate_field",
            param=",".join(sent),
        )
    return (sent[0], body[sent[0]]) if sent else None


def _modalities(body: dict[str, Any]) -> None:
    found = _one_of(body, MODALITY_FIELDS)
    if found is None:
        return
    name, value = found
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise ValidationFailed(f"'{name}' must be a list of strings.", param=name)
    asked = {m.lower() for m in value}
    if "image" not in asked or not asked <= {"image", "text"}:
        raise BadRequest(
            f"'{name}' of an image model must include 'image' (and may include 'text').",
            code="unsupported_value",
            param=name,
        )


def _texts_and_images(messages: Any) -> tuple[str, list[Any]]:
    """The last user message's text, and the images of every user message."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest(
            "'messages' must be a non-empty list.", code="invalid_value", param="messages"
        )
    prompt = ""
    refs: list[Any] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValidationFailed(f"'messages[{i}]' must be an object.", param=f"messages[{i}]")
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            prompt = content
            continue
        texts = []
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text") or ""))
            elif isinstance(part, dict) and part.get("type") == "image_url":
                refs.append(part.get("image_url"))
        prompt = " ".join(t for t in texts if t)
    if not prompt.strip():
        raise BadRequest(
            "An image model needs a text prompt in the last user message.",
            code="empty_prompt",
            param="messages",
        )
    return prompt, refs


def parse_chat_images(body: dict[str, Any], rid: str) -> tuple[ImageCall, list[Any]]:
    """(the image call, its reference images as sent) from a chat-completions body."""
    for name in body:
        if name not in KNOWN:
            raise BadRequest(
                f"'{name}' is not supported by image models on the chat route.",
                code="unsupported_parameter",
                param=name,
            )
    if body.get("stream") not in (None, False):
        raise BadRequest(
            "Image models answer whole replies; 'stream' must be false.",
            code="unsupported_value",
            param="stream",
        )
    _modalities(body)
    prompt, refs = _texts_and_images(body.get("messages"))
    config = body.get("image_config") or {}
    if not isinstance(config, dict):
        raise ValidationFailed("'image_config' must be an object.", param="image_config")
    for name in config:
        if name not in ("aspect_ratio", "image_size"):
            raise BadRequest(
                f"'image_config.{name}' is not supported.",
                code="unsupported_parameter",
                param=f"image_config.{name}",
            )
    ratio, size = config.get("aspect_ratio"), config.get("image_size")
    for name, value in (("aspect_ratio", ratio), ("image_size", size)):
        if value is not None and not isinstance(value, str):
            raise ValidationFailed(
                f"'image_config.{name}' must be a string.", param=f"image_config.{name}"
            )
    if size is not None and size not in CHOICES["resolution"]:
        raise BadRequest(
            f"'image_config.image_size' must be one of {', '.join(CHOICES['resolution'])}.",
            code="invalid_value",
            param="image_config.image_size",
        )
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_IMAGES:
        raise BadRequest(f"'n' must be from 1 to {MAX_IMAGES}.", code="invalid_value", param="n")
    user = body.get("user")
    safety = _one_of(body, SAFETY_FIELDS)
    call = ImageCall(
        model=str(body.get("model")),
        prompt=prompt,
        n=n,
        request_id=rid,
        aspect_ratio=ratio,
        resolution=size,
        user=user if isinstance(user, str) else None,
        safety_settings=safety[1] if safety is not None else None,
    )
    return call, refs
