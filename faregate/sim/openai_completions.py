"""The legacy OpenAI Completions protocol: `POST /v1/completions`, whole and streamed.

Each prompt (a string or a list of strings) is answered as a one-message chat request would
be, `n` choices per prompt, `max_tokens` 16 by default; `echo` puts the prompt before the
text; `logprobs` (0-5) adds per-token log probabilities (-0.5 each, a fixed alternative per
position); usage is exact (the prompt tokens of every prompt, the completion tokens of every
choice). Streams send one chunk per token, a finish chunk per choice, the usage chunk when
`stream_options.include_usage`, then `[DONE]`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from faregate.sim import text
from faregate.sim.delivery import play_stream, send_json
from faregate.sim.faults import FaultScript
from faregate.sim.openai_chat_reply import generate
from faregate.sim.openai_chat_request import parse_request
from faregate.sim.openai_common import invalid_param, now, openai_dialect, request_headers
from faregate.sim.prologue import prologue
from faregate.tokens import count_messages

ROUTE = "/v1/completions"
DIALECT = openai_dialect("We could not parse the JSON body of your request.")
DEFAULT_MAX_TOKENS = 16


def _logprobs(content: str, offset: int, top: int) -> dict[str, Any]:
    tokens = text.segments(content)
    offsets: list[int] = []
    at = offset
    for token in tokens:
        offsets.append(at)
        at += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [-0.5] * len(tokens),
        "top_logprobs": [{t: -0.5} for t in tokens] if top else None,
        "text_offset": offsets,
    }


def _choices(
    body: dict[str, Any], script: FaultScript
) -> tuple[list[dict[str, Any]], dict[str, int]] | web.Response:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        return invalid_param("'prompt' must be a string or an array of strings.", "prompt")
    n = body.get("n") or 1
    echo = body.get("echo") is True
    logprobs = body.get("logprobs")
    choices: list[dict[str, Any]] = []
    prompt_tokens = completion_tokens = 0
    for p in prompts:
        chat: dict[str, Any] = {
            "model": body.get("model"),
            "messages": [{"role": "user", "content": p}],
            "max_tokens": body.get("max_tokens", DEFAULT_MAX_TOKENS),
            "n": n,
            **{k: body[k] for k in ("stop", "seed", "temperature", "top_p") if k in body},
        }
        req = parse_request(chat)
        if isinstance(req, web.Response):
            return req
        prompt_tokens += count_messages(req.messages, None)
        for choice in generate(req, script):
            content = choice.content or ""
            completion_tokens += choice.completion_tokens
            out = (p if echo else "") + content
            entry: dict[str, Any] = {
                "text": out,
                "index": len(choices),
                "logprobs": _logprobs(out, 0, int(logprobs)) if isinstance(logprobs, int) else None,
                "finish_reason": choice.finish_reason,
            }
            choices.append(entry)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return choices, usage


def _chunks(
    base: dict[str, Any], choices: list[dict[str, Any]], usage: dict[str, int], with_usage: bool
) -> Iterator[tuple[bytes, bool]]:
    def sse(data: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(data) + b"\n\n"

    for choice in choices:
        for piece in text.segments(choice["text"]):
            entry = {
                "text": piece,
                "index": choice["index"],
                "logprobs": None,
                "finish_reason": None,
            }
            yield sse({**base, "choices": [entry]}), True
        final = {"text": "", "index": choice["index"], "logprobs": None}
        yield sse({**base, "choices": [{**final, "finish_reason": choice["finish_reason"]}]}), False
    if with_usage:
        yield sse({**base, "choices": [], "usage": usage}), False
    yield b"data: [DONE]\n\n", False


async def completions(request: web.Request) -> web.StreamResponse:
    """Handle one legacy completion request, faults included."""
    admitted = await prologue(request, ROUTE, DIALECT)
    if isinstance(admitted, web.Response):
        return admitted
    body, script = admitted.body, admitted.script
    result = _choices(body, script)
    if isinstance(result, web.Response):
        return result
    choices, usage = result
    base = {
        "id": "cmpl-" + uuid.uuid4().hex,
        "object": "text_completion",
        "created": now(),
        "model": body.get("model"),
    }
    if body.get("stream") is True:
        options = body.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        chunks = _chunks(base, choices, usage, with_usage and not script.no_usage)
        return await play_stream(request, script, {**headers, **request_headers()}, chunks)
    reply: dict[str, Any] = {**base, "choices": choices, "usage": usage}
    if script.no_usage:
        del reply["usage"]
    return await send_json(request, script, orjson.dumps(reply), request_headers())
