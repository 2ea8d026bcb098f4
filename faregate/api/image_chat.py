"""The chat-completions form of image generation: messages, `modalities` and `image_config`
(or `responseModalities`) on an image model, answered as a chat completion (or its stream)
whose message carries the images as data URLs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from faregate.api.common import (
    cost_headers,
    request_id,
    routing_headers,
    usage_cost,
    wants_metadata,
)
from faregate.api.images import b64_of, image_metadata
from faregate.api.images_request import CHOICES, MAX_IMAGES, reference_images
from faregate.billing.types import KeyRecord
from faregate.errors import BadRequest, ValidationFailed
from faregate.http.request import Request
from faregate.http.responses import SSE_HEADERS, Response, StreamResponse, header_list
from faregate.pipeline.images import Generated, generate
from faregate.pipeline.services import Services
from faregate.providers.image_bytes import data_url
from faregate.providers.image_types import ImageCall, ImageResult

MODALITY_FIELDS = ("modalities", "response_modalities", "responseModalities")
SAFETY_FIELDS = ("safety_settings", "safetySettings")
KNOWN = {"model", "messages", "image_config", "n", "stream", "stream_options", "user"}
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
    if not isinstance(body.get("stream", False), bool):
        raise ValidationFailed("'stream' must be a boolean.", param="stream")
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


def _usage(svc: Services, done: Generated) -> dict[str, Any]:
    u = done.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        **usage_cost(svc, done.cost),
    }


def _sse(data: dict[str, Any] | str) -> bytes:
    return b"data: " + (data.encode() if isinstance(data, str) else orjson.dumps(data)) + b"\n\n"


def _chunks(
    head: dict[str, Any],
    message: dict[str, Any],
    usage: dict[str, Any] | None,
    meta: dict[str, Any] | None,
) -> list[bytes]:
    """The reply as a stream: the message in one delta, the finish, the usage if asked (with
    the `_balancer` metadata when opted in)."""
    chunk = {**head, "object": "chat.completion.chunk"}
    out = [
        _sse({**chunk, "choices": [{"index": 0, "delta": message, "finish_reason": None}]}),
        _sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ]
    if usage is not None:
        last = {**chunk, "choices": [], "usage": usage}
        out.append(_sse(last if meta is None else {**last, "_balancer": meta}))
    return [*out, _sse("[DONE]")]


async def chat_images(
    svc: Services, req: Request, body: dict[str, Any], key: KeyRecord
) -> Response | StreamResponse:
    """A chat completion from an image model: the message carries the images as data URLs
    (`message.images`), its text as `content`; `_balancer` adds `images_count`. A stream
    sends the whole message in one chunk once the images are there (an image is not
    produced in pieces)."""
    rid = request_id()
    call, refs = parse_chat_images(body, rid)
    call.reference_images = await reference_images(svc, refs)
    images: list[dict[str, Any]] = []

    async def finish(result: ImageResult) -> None:
        for image in result.images:
            kind, b64 = await b64_of(svc, image)
            images.append({"type": "image_url", "image_url": {"url": data_url(kind, b64)}})

    done = await generate(svc, key, call, finish)
    head = {"id": "chatcmpl-" + rid.removeprefix("req_"), "created": int(time.time())}
    head["model"] = done.model
    message = {"role": "assistant", "content": done.result.text or None, "images": images}
    headers = {**cost_headers(svc, rid, done.model, done.cost), **routing_headers(done)}
    meta = image_metadata(svc, done) if wants_metadata(req) else None
    if body.get("stream"):
        options = body.get("stream_options")
        usage = None
        if isinstance(options, dict) and options.get("include_usage"):
            usage = _usage(svc, done)
        frames = _chunks(head, message, usage, meta)

        async def stream() -> AsyncIterator[bytes]:
            for frame in frames:
                yield frame

        return StreamResponse(stream(), 200, SSE_HEADERS + header_list(headers))
    choice = {"index": 0, "message": {**message, "refusal": None}, "finish_reason": "stop"}
    reply: dict[str, Any] = {
        **head,
        "object": "chat.completion",
        "choices": [{**choice, "logprobs": None}],
        "usage": _usage(svc, done),
    }
    if meta is not None:
        reply = {"data": reply, "_balancer": meta}
    return Response.json(reply, 200, headers)
