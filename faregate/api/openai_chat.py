"""`POST /v1/chat/completions` and its aliases: the OpenAI chat protocol to clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import orjson

from faregate.api.chat_kinds import surface
from faregate.api.chat_request import normalize_aliases, parse_chat
from faregate.api.common import (
    admit_class,
    authenticate,
    balancer_metadata,
    cost_headers,
    json_body,
    request_id,
    routing_headers,
    usage_cost,
    wants_metadata,
)
from faregate.api.envelopes import llmage_body, openai_body
from faregate.api.output_cap import clamp_headers
from faregate.billing.types import KeyRecord
from faregate.errors import BadRequest, FaregateError
from faregate.http.request import Request
from faregate.http.responses import SSE_HEADERS, Response, StreamResponse, header_list
from faregate.kinds import Kind
from faregate.pipeline.chat import OpenStream, complete, open_stream
from faregate.pipeline.services import Services
from faregate.providers.base import ChatCall, StreamEvent

DONE = b"data: [DONE]\n\n"

BodyHook = Callable[[dict[str, Any]], None]
ChunkHook = Callable[[dict[str, Any], str], dict[str, Any]]


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _with_cost(data: dict[str, Any], cost: dict[str, Any]) -> dict[str, Any]:
    usage = data.get("usage")
    if isinstance(usage, dict):
        return {**data, "usage": {**usage, **cost}}
    return data


async def _openai_events(
    svc: Services,
    stream: OpenStream,
    call: ChatCall,
    chunk_hook: ChunkHook | None,
    error_body: Callable[[FaregateError], dict[str, Any]],
    metadata: Callable[[StreamEvent], dict[str, Any]] | None = None,
) -> AsyncIterator[bytes]:
    """Upstream events as OpenAI SSE bytes: forwarded unchanged where possible, the usage chunk
    only when the client asked for it (with its cost in dollars and micro-credits), an error
    event if the stream breaks."""
    done = False
    async with aclosing(stream.events) as events:
        async for event in events:
            if isinstance(event, FaregateError):
                yield _sse(error_body(event))
                return
            if event.ends:
                done = True
                yield DONE
                continue
            if metadata is not None and event.cost is not None and call.include_usage:
                assert event.data is not None
                event.data = {**event.data, "_balancer": metadata(event)}
                event.raw = None
            data = _render_chunk(svc, event, call, chunk_hook)
            if data:  # a usage-only chunk the client did not ask for renders as nothing
                yield data
    if not done:
        yield DONE


def _render_chunk(
    svc: Services, event: StreamEvent, call: ChatCall, chunk_hook: ChunkHook | None
) -> bytes:
    if event.cost is None and event.raw is not None and chunk_hook is None:
        return event.raw  # as the upstream sent it (an unread chunk stays unread)
    data = event.data
    assert data is not None
    if event.cost is not None:
        if not call.include_usage:
            if event.is_usage_only:
                return b""
            data = {**data, "usage": None}
        else:
            data = _with_cost(data, usage_cost(svc, event.cost))
    if chunk_hook is not None:
        data = chunk_hook(data, call.request_id)
    return _sse(data)


async def serve_chat(
    svc: Services,
    req: Request,
    body: dict[str, Any],
    *,
    key: KeyRecord | None = None,
    body_hook: BodyHook | None = None,
    chunk_hook: ChunkHook | None = None,
    error_body: Callable[[FaregateError], dict[str, Any]] = openai_body,
) -> Response | StreamResponse:
    """Authenticate (unless the route already did), validate, run the chat pipeline and render
    it in the OpenAI shape; the hooks let compatibility routes adjust the reply."""
    rid = request_id()
    if key is None:
        key = await authenticate(svc, req)
    ignored = normalize_aliases(body)
    call = parse_chat(body, rid)
    extra = {"x-faregate-ignored-fields": ",".join(ignored)} if ignored else {}
    if call.stream:
        stream = await open_stream(svc, key, call)
        extra.update(clamp_headers(svc, call, stream.model))
        headers = SSE_HEADERS + header_list(
            {**cost_headers(svc, rid, stream.model, None), **routing_headers(stream), **extra}
        )
        meta = None
        if wants_metadata(req):

            def meta(event: StreamEvent) -> dict[str, Any]:
                return balancer_metadata(svc, stream.model, event.cost or 0, event.usage, False)

        events = _openai_events(svc, stream, call, chunk_hook, error_body, meta)
        return StreamResponse(events, 200, headers)
    done = await complete(svc, key, call)
    extra.update(clamp_headers(svc, call, done.model))
    reply = done.result.body
    usage = reply.get("usage")
    if isinstance(usage, dict):
        reply["usage"] = {**usage, **usage_cost(svc, done.cost)}
    else:
        reply["usage"] = {
            "prompt_tokens": done.usage.prompt_tokens,
            "completion_tokens": done.usage.completion_tokens,
            "total_tokens": done.usage.prompt_tokens + done.usage.completion_tokens,
            **usage_cost(svc, done.cost),
            "estimated": True,
        }
    if body_hook is not None:
        body_hook(reply)
    if wants_metadata(req):
        reply = {
            "data": reply,
            "_balancer": balancer_metadata(svc, done.model, done.cost, done.usage, done.cached),
        }
    return Response.json(
        reply,
        200,
        {**cost_headers(svc, rid, done.model, done.cost), **routing_headers(done), **extra},
    )


def chat_handler(svc: Services) -> Callable[[Request], Any]:
    async def handle(req: Request) -> Response | StreamResponse:
        body = await json_body(svc, req)
        model = body.get("model")
        entry = svc.catalog.models.get(model) if isinstance(model, str) else None
        other = surface(entry.kind) if entry is not None else None
        # the model's kind picks the surface and the plan class, not the body's fields
        await admit_class(svc, req, entry.kind if other is not None and entry else Kind.CHAT)
        if other is not None:
            return await other(svc, req, body, await authenticate(svc, req))
        return await serve_chat(svc, req, body)

    return handle


def compat_chat_handler(svc: Services) -> Callable[[Request], Any]:
    """`POST /api/v1/chat`: chat completions with that API's documented defaults."""
    compat = svc.config.compat

    async def handle(req: Request) -> Response | StreamResponse:
        body = await json_body(svc, req)
        body.setdefault("model", compat.chat_default_model)
        body.setdefault("temperature", compat.chat_default_temperature)
        if "max_tokens" not in body and "max_completion_tokens" not in body:
            entry = svc.catalog.models.get(str(body["model"]))
            limit = entry.max_output_tokens if entry else compat.chat_default_max_tokens
            body["max_tokens"] = min(compat.chat_default_max_tokens, limit)
        body.setdefault("stream", False)
        return await serve_chat(svc, req, body)

    return handle


def _llmage_body(reply: dict[str, Any]) -> None:
    choices = reply.get("choices") or [{}]
    message = choices[0].get("message") or {}
    reply["content"] = message.get("content") or ""
    reply["reasoning_content"] = message.get("reasoning_content")
    reply["finish"] = "1"


def _llmage_chunk(data: dict[str, Any], rid: str) -> dict[str, Any]:
    """Each chunk also carries its text as `content`, `finish` ("1" on the final usage chunk,
    which that API always sends) and the request's `llmusageid`."""
    choices = data.get("choices") or []
    delta = (choices[0].get("delta") or {}) if choices else {}
    return {
        **data,
        "reasoning_content": delta.get("reasoning_content"),
        "content": delta.get("content") or "",
        "finish": "1" if not choices else "0",
        "llmusageid": rid,
    }


def llmage_chat_handler(svc: Services) -> Callable[[Request], Any]:
    """`POST /llmage/v1/chat/completions`: `prompt` / `sys_prompt` or `messages`."""

    async def handle(req: Request) -> Response | StreamResponse:
        key = await authenticate(svc, req)
        body = await json_body(svc, req)
        prompt = body.pop("prompt", None)
        sys_prompt = body.pop("sys_prompt", None)
        if "messages" not in body:
            if not isinstance(prompt, str) or not prompt:
                raise BadRequest("Missing required parameter: prompt", param="prompt")
            messages = []
            if isinstance(sys_prompt, str) and sys_prompt:
                messages.append({"role": "system", "content": sys_prompt})
            messages.append({"role": "user", "content": prompt})
            body["messages"] = messages
        if body.get("stream") is True:  # that API always ends a stream with its usage
            options = body.get("stream_options")
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        return await serve_chat(
            svc,
            req,
            body,
            key=key,
            body_hook=_llmage_body,
            chunk_hook=_llmage_chunk,
            error_body=llmage_body,
        )

    return handle
