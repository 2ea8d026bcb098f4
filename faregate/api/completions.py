"""`POST /v1/completions`: the legacy OpenAI Completions API.

A deployment whose provider serves `/completions` itself (`completions = true`, e.g. vLLM)
is sent the request as written and its reply or chunks are returned as they came (the usage
chunk only when the client asked for it). Every other deployment serves it as a chat call:
the prompt becomes one user message, `max_tokens` (default 16, as OpenAI's), `stop`,
`temperature`, `top_p`, `n`, `seed`, the penalties, `logit_bias` and `user` carry over, and
the chat reply is rendered as a text completion (`echo` puts the prompt before the text).
`logprobs`, `suffix`, `best_of`, several prompts and token-array prompts need an upstream that
serves completions: they are refused (400) for a model any of whose deployments does not.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from functools import partial
from typing import Any

import orjson

from faregate.api.chat_request import parse_chat
from faregate.api.common import (
    authenticate,
    cost_headers,
    json_body,
    request_id,
    routing_headers,
    usage_cost,
)
from faregate.api.envelopes import openai_body
from faregate.errors import BadRequest, FaregateError
from faregate.http.request import Request
from faregate.http.responses import SSE_HEADERS, Response, StreamResponse, header_list
from faregate.pipeline.chat import OpenStream
from faregate.pipeline.completions import all_native, complete, open_stream
from faregate.pipeline.services import Services
from faregate.providers.base import StreamEvent
from faregate.providers.native import NativeCall
from faregate.providers.openai_completions import is_completion

DONE = b"data: [DONE]\n\n"
DEFAULT_MAX_TOKENS = 16
_CARRIED: tuple[str, ...] = ("stop", "temperature", "top_p", "n", "seed", "presence_penalty")
_CARRIED += ("frequency_penalty", "logit_bias", "user")
_KNOWN = frozenset(
    {
        *_CARRIED, "model", "prompt", "max_tokens", "echo", "logprobs", "stream",
        "stream_options", "suffix", "best_of",
    }
)  # fmt: skip


def _prompts(body: dict[str, Any]) -> tuple[list[str], bool]:
    """The prompts as text, and whether the prompt needs a native upstream (several, or
    token arrays)."""
    prompt = body.get("prompt")
    if prompt is None:
        raise BadRequest(
            "Missing required parameter: 'prompt'.",
            code="missing_required_parameter",
            param="prompt",
        )
    if isinstance(prompt, str):
        return [prompt], False
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt), len(prompt) > 1
    if isinstance(prompt, list) and prompt and all(isinstance(p, int | list) for p in prompt):
        return [orjson.dumps(prompt).decode()], True  # token ids: the hold counts their text
    raise BadRequest(
        "'prompt' must be a string, an array of strings or an array of token arrays.",
        code="invalid_type",
        param="prompt",
    )


def to_call(svc: Services, body: dict[str, Any], rid: str) -> NativeCall:
    """The hub chat call of a completions body (validated as a chat call would be)."""
    for name in body:
        if name not in _KNOWN:
            raise BadRequest(f"Unknown parameter: '{name}'.", code="unknown_parameter", param=name)
    if not isinstance(body.get("model"), str):
        raise BadRequest("You must provide a model parameter.", code="missing_model", param="model")
    prompts, native_only = _prompts(body)
    if body.get("echo") is not None and not isinstance(body["echo"], bool):
        raise BadRequest("'echo' must be a boolean.", code="invalid_type", param="echo")
    wants = [n for n in ("logprobs", "suffix") if body.get(n) is not None]
    best_of = body.get("best_of")
    if best_of is not None and best_of != 1:
        wants.append("best_of")
    if native_only:
        wants.append("prompt")
    if wants:
        entry = svc.catalog.get(body["model"])
        if not all_native(svc, entry):
            raise BadRequest(
                f"'{wants[0]}' needs an upstream that serves legacy completions itself, and "
                f"'{body['model']}' is not served only by such upstreams.",
                code="unsupported_parameter",
                param=wants[0],
            )
    max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    hub: dict[str, Any] = {
        "model": body["model"],
        "messages": [{"role": "user", "content": p} for p in prompts],
        "max_tokens": max_tokens,
    }
    for name in _CARRIED:
        if body.get(name) is not None:
            hub[name] = body[name]
    if len(prompts) > 1:  # only for upstreams sent the request as written: the hold covers
        hub["n"] = (body.get("n") or 1) * len(prompts)  # every prompt's choices
    if body.get("stream") is not None:
        hub["stream"] = body["stream"]
        if isinstance(body.get("stream_options"), dict):
            hub["stream_options"] = body["stream_options"]
    chat = parse_chat(hub, rid)
    return NativeCall(
        model=chat.model,
        body=chat.body,
        stream=chat.stream,
        include_usage=chat.include_usage,
        max_output=chat.max_output,
        request_id=rid,
        api="completions",
        native=body,
    )


def _completion_id(rid: str) -> str:
    return "cmpl-" + rid.removeprefix("req_")


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _finish(reason: Any) -> str | None:
    if reason is None:
        return None
    return reason if reason in ("length", "content_filter") else "stop"


def from_chat(
    reply: dict[str, Any], call: NativeCall, model: str, prompt: int, out: int
) -> dict[str, Any]:
    """A text completion from a hub chat completion."""
    echo = call.native.get("echo") is True
    prefix = str(call.body["messages"][0]["content"]) if echo else ""
    choices = []
    for i, choice in enumerate(reply.get("choices") or ()):
        message = choice.get("message") or {}
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        choices.append(
            {
                "text": prefix + text,
                "index": choice.get("index", i),
                "logprobs": None,
                "finish_reason": _finish(choice.get("finish_reason")) or "stop",
            }
        )
    return {
        "id": _completion_id(call.request_id),
        "object": "text_completion",
        "created": int(reply.get("created") or time.time()),
        "model": model,
        "choices": choices,
        "usage": _usage(prompt, out),
    }


class _Chunks:
    """Hub chunks as text-completion chunks (the prompt before each choice's first text when
    echoing)."""

    def __init__(self, call: NativeCall, model: str) -> None:
        self._call = call
        self._model = model
        self._created = int(time.time())
        self._echo: set[int] | None = set() if call.native.get("echo") is True else None

    def render(self, event: StreamEvent) -> dict[str, Any] | None:
        data = event.data or {}
        if is_completion(data) or data.get("object") == "text_completion":
            return data
        choices = []
        for choice in data.get("choices") or ():
            index = choice.get("index", 0)
            text = (choice.get("delta") or {}).get("content")
            text = text if isinstance(text, str) else ""
            if self._echo is not None and index not in self._echo:
                self._echo.add(index)
                text = self._call.body["messages"][0]["content"] + text
            finish = _finish(choice.get("finish_reason"))
            if not text and finish is None:
                continue
            choices.append(
                {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
            )
        usage = event.usage
        if not choices and usage is None:
            return None
        chunk: dict[str, Any] = {
            "id": _completion_id(self._call.request_id),
            "object": "text_completion",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = _usage(usage.prompt_tokens, usage.completion_tokens)
        return chunk


async def _events(
    stream: OpenStream, call: NativeCall, cost_fields: Callable[[int], dict[str, Any]]
) -> AsyncIterator[bytes]:
    chunks = _Chunks(call, stream.model)
    done = False
    async with aclosing(stream.events) as events:
        async for event in events:
            if isinstance(event, FaregateError):
                yield b"data: " + orjson.dumps(openai_body(event)) + b"\n\n"
                return
            if event.data is None:
                done = True
                yield DONE
                continue
            if event.usage is not None and not call.include_usage:
                if event.is_usage_only:
                    continue
                event.data = {**event.data, "usage": None}
            data = chunks.render(event)
            if data is not None and event.cost is not None and isinstance(data.get("usage"), dict):
                data = {**data, "usage": {**data["usage"], **cost_fields(event.cost)}}
            if data is not None:
                yield b"data: " + orjson.dumps(data) + b"\n\n"
    if not done:
        yield DONE


def completions_handler(svc: Services) -> Callable[[Request], Any]:
    async def handle(req: Request) -> Response | StreamResponse:
        rid = request_id()
        key = await authenticate(svc, req)
        call = to_call(svc, await json_body(svc, req), rid)
        if call.stream:
            stream = await open_stream(svc, key, call)
            headers = {**cost_headers(svc, rid, stream.model, None), **routing_headers(stream)}
            return StreamResponse(
                _events(stream, call, partial(usage_cost, svc)),
                200,
                SSE_HEADERS + header_list(headers),
            )
        done = await complete(svc, key, call)
        reply = done.result.body
        usage = done.usage
        if not is_completion(reply):
            reply = from_chat(reply, call, done.model, usage.prompt_tokens, usage.completion_tokens)
        elif not isinstance(reply.get("usage"), dict):
            reply["usage"] = _usage(usage.prompt_tokens, usage.completion_tokens)
        if isinstance(reply.get("usage"), dict):
            reply["usage"] = {**reply["usage"], **usage_cost(svc, done.cost)}
        headers = {**cost_headers(svc, rid, done.model, done.cost), **routing_headers(done)}
        return Response.json(reply, 200, headers)

    return handle
