"""The Gemini-native client protocol: `models/{model}:generateContent` and friends.

Served under `/v1beta` and `/api/v1beta`, and under `/v1` and `/api/v1` too because the
google-genai SDK defaults to API version v1. There `GET models` and `GET models/{model}` are
shared with the OpenAI routes: a request authenticated Google's way (`x-goog-api-key` or
`?key=`, no Authorization header) gets Gemini's shapes and error envelope, any other the
OpenAI ones. Streams are SSE (`data: {...}\\r\\n\\r\\n`) with `alt=sse`, otherwise one JSON array
written element by element as the chunks arrive; an error after the first byte becomes a last
`{"error": {...}}` element.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import orjson

from faregate import tokens
from faregate.api import gemini_images
from faregate.api.chat_request import parse_chat
from faregate.api.common import (
    authenticate,
    cost_headers,
    json_body,
    request_id,
    routing_headers,
)
from faregate.api.envelopes import gemini_body, render_error
from faregate.api.gemini_config import fields, invalid
from faregate.api.gemini_render import Chunker, render_reply
from faregate.api.gemini_translate import to_hub
from faregate.api.output_cap import clamp_headers
from faregate.errors import FaregateError, NotFound
from faregate.http.request import Request
from faregate.http.responses import JSON_TYPE, SSE_HEADERS, Response, StreamResponse, header_list
from faregate.kinds import Kind
from faregate.pipeline.admission import check_model_allowed
from faregate.pipeline.chat import OpenStream, complete, open_stream
from faregate.pipeline.embeddings import embed
from faregate.pipeline.services import Services
from faregate.providers.base import EmbedCall
from faregate.routing.catalog import ModelEntry

Handler = Callable[[Request], Awaitable[Response | StreamResponse]]
CHAT_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]
EMBED_METHODS = ["embedContent", "batchEmbedContents"]
IMAGE_METHODS = ["generateContent", "streamGenerateContent"]


def _model_card(entry: ModelEntry) -> dict[str, Any]:
    chat = entry.kind == "chat"
    return {
        "name": f"models/{entry.name}",
        "baseModelId": entry.name,
        "version": "001",
        "displayName": entry.name,
        "description": f"{entry.name}, served by faregate ({entry.owned_by}).",
        "outputTokenLimit": entry.max_output_tokens if chat else 1,
        "supportedGenerationMethods": CHAT_METHODS
        if chat
        else IMAGE_METHODS
        if entry.kind == Kind.IMAGES
        else EMBED_METHODS,
    }


def _allowed_entry(svc: Services, allowed: frozenset[str] | None, name: str) -> ModelEntry:
    entry = svc.catalog.models.get(name.removeprefix("models/"))
    if entry is None or (allowed is not None and entry.name not in allowed):
        raise NotFound(f"models/{name} is not found.", code="model_not_found", param="model")
    return entry


def list_handler(svc: Services) -> Handler:
    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        allowed = key.allowed_models
        cards = [
            _model_card(entry)
            for name, entry in svc.catalog.models.items()
            if allowed is None or name in allowed
        ]
        return Response.json({"models": cards})

    return handle


def get_handler(svc: Services) -> Handler:
    async def handle(req: Request) -> Response:
        key = await authenticate(svc, req)
        return Response.json(
            _model_card(_allowed_entry(svc, key.allowed_models, req.params["model"]))
        )

    return handle


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\r\n\r\n"


async def _chunks(stream: OpenStream, thoughts: bool, sse: bool) -> AsyncIterator[bytes]:
    """Hub events as Gemini chunks: SSE events, or the elements of one JSON array."""
    chunker = Chunker(thoughts)
    first = True

    def frame(data: dict[str, Any]) -> bytes:
        nonlocal first
        if sse:
            return _sse(data)
        head, first = (b"[" if first else b",\r\n"), False
        return head + orjson.dumps(data)

    async with aclosing(stream.events) as events:
        async for event in events:
            if isinstance(event, FaregateError):
                yield frame(gemini_body(event))
                break
            for data in chunker.feed(event):
                yield frame(data)
        else:
            for data in chunker.flush(None):
                yield frame(data)
    if not sse:
        yield b"[]" if first else b"]"


async def _generate(
    svc: Services, req: Request, model: str, stream: bool
) -> Response | StreamResponse:
    entry = svc.catalog.models.get(model)
    if entry is not None and entry.kind is Kind.IMAGES:  # images as inlineData parts
        return await gemini_images.generate_content(svc, req, model, stream)
    rid = request_id()
    key = await authenticate(svc, req)
    hub, thoughts = to_hub(model, await json_body(svc, req), stream)
    call = parse_chat(hub, rid)
    if stream:
        opened = await open_stream(svc, key, call)
        sse = req.query.get("alt") == "sse"
        kind = SSE_HEADERS if sse else [JSON_TYPE]
        extra = header_list(
            {
                **cost_headers(svc, rid, opened.model, None),
                **routing_headers(opened),
                **clamp_headers(svc, call, opened.model),
            }
        )
        return StreamResponse(_chunks(opened, thoughts, sse), 200, kind + extra)
    done = await complete(svc, key, call)
    body = render_reply(done.result.body, done.usage, thoughts)
    headers = {
        **cost_headers(svc, rid, done.model, done.cost),
        **routing_headers(done),
        **clamp_headers(svc, call, done.model),
    }
    return Response.json(body, 200, headers)


async def _count_tokens(svc: Services, req: Request, model: str) -> Response:
    key = await authenticate(svc, req)
    raw = await json_body(svc, req)
    inner = fields(
        raw.get("generateContentRequest") or raw.get("generate_content_request"),
        "generateContentRequest",
    )
    hub, _ = to_hub(model, inner or {k: v for k, v in raw.items() if k != "model"}, False)
    svc.catalog.get(model)
    check_model_allowed(key, model)
    total = tokens.count_messages(hub["messages"], hub.get("tools"))
    return Response.json({"totalTokens": total})


def _embed_texts(request: Any, where: str) -> str:
    content = fields(fields(request, where).get("content"), f"{where}.content")
    parts = content.get("parts")
    texts = [fields(p, where).get("text") for p in parts] if isinstance(parts, list) else []
    if not texts or not all(isinstance(t, str) for t in texts):
        raise invalid(f"{where}.content", f"'{where}.content' needs text parts.")
    return " ".join(str(t) for t in texts)


async def _embed(svc: Services, req: Request, model: str, batch: bool) -> Response:
    rid = request_id()
    key = await authenticate(svc, req)
    raw = await json_body(svc, req)
    items = raw.get("requests") if batch else [raw]
    if not isinstance(items, list) or not items:
        raise invalid("requests", "* BatchEmbedContentsRequest.requests: requests is not specified")
    inputs = [_embed_texts(item, f"requests[{i}]") for i, item in enumerate(items)]
    body: dict[str, Any] = {"model": model, "input": inputs}
    dims = fields(items[0], "requests[0]").get("outputDimensionality")
    if isinstance(dims, int):
        body["dimensions"] = dims
    done = await embed(svc, key, EmbedCall(model, inputs, body, rid))
    vectors = [{"values": row.get("embedding")} for row in done.result.body.get("data") or ()]
    usage = {
        "promptTokenCount": done.usage.prompt_tokens,
        "totalTokenCount": done.usage.prompt_tokens,
    }
    out: dict[str, Any] = {"embeddings": vectors} if batch else {"embedding": vectors[0]}
    out["usageMetadata"] = usage
    return Response.json(out, 200, cost_headers(svc, rid, done.model, done.cost))


def generate_handler(svc: Services) -> Handler:
    """`POST .../models/{model}:METHOD`."""

    async def handle(req: Request) -> Response | StreamResponse:
        model, sep, method = req.params["model"].rpartition(":")
        model = model.removeprefix("models/")
        if not sep or not model:
            raise NotFound(f"No route for POST {req.path}.", code="unknown_route")
        if method in ("generateContent", "streamGenerateContent"):
            return await _generate(svc, req, model, method == "streamGenerateContent")
        if method == "countTokens":
            return await _count_tokens(svc, req, model)
        if method in ("embedContent", "batchEmbedContents"):
            return await _embed(svc, req, model, method == "batchEmbedContents")
        raise NotFound(f"Method not found: {method}.", code="unknown_route")

    return handle


def _google_client(req: Request) -> bool:
    headers = req.headers
    return "authorization" not in headers and ("x-goog-api-key" in headers or "key" in req.query)


def by_client(gemini: Handler, openai: Handler) -> Handler:
    """One route for both protocols: Google-authenticated requests get Gemini's answer."""

    async def handle(req: Request) -> Response | StreamResponse:
        protocol = "gemini" if _google_client(req) else "openai"
        try:
            return await (gemini if protocol == "gemini" else openai)(req)
        except FaregateError as exc:
            return render_error(protocol, exc)

    return handle
