"""The OpenAI Responses protocol: `POST /v1/responses`, whole and streamed.

The request is read the way the gateway reads a Responses request (instructions, input items,
function tools, `text.format`, `reasoning.effort`, `max_output_tokens`) into a chat request,
answered as `/v1/chat/completions` would answer it (same text, tool calls and exact usage),
and written back as a `response` object or its typed event sequence (`response.created`,
`response.in_progress`, per item `response.output_item.added`, `response.content_part.added`,
`response.output_text.delta` / `response.function_call_arguments.delta`, the `.done` events,
`response.output_item.done`, then `response.completed` or `response.incomplete`), numbered
from 0. `previous_response_id` is refused (nothing is stored), as is `store: true` with it.
Reasoning, when asked for, is reported in usage only, as OpenAI does without a summary.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from faregate.api.responses_render import from_hub, response_object
from faregate.api.responses_request import to_request
from faregate.api.responses_stream import StreamRenderer
from faregate.billing.types import Usage
from faregate.errors import FaregateError
from faregate.providers.base import StreamEvent
from faregate.providers.openai import usage_from
from faregate.sim import text
from faregate.sim.delivery import play_stream, send_json
from faregate.sim.faults import FaultScript
from faregate.sim.openai_chat_reply import Choice, completion_payload, generate, usage_for
from faregate.sim.openai_chat_request import ChatRequest, parse_request
from faregate.sim.openai_common import invalid_param, openai_dialect, request_headers
from faregate.sim.prologue import prologue

ROUTE = "/v1/responses"
DIALECT = openai_dialect("We could not parse the JSON body of your request.")


def _deltas(choice: Choice) -> Iterator[tuple[dict[str, Any], bool]]:
    """The hub deltas of one choice: text one token at a time, or each call's header and its
    argument fragments."""
    if not choice.tool_calls:
        for piece in text.segments(choice.content or ""):
            yield {"content": piece}, True
        return
    for position, call in enumerate(choice.tool_calls):
        fn = call["function"]
        header = {"index": position, "id": call["id"], "function": {"name": fn["name"]}}
        yield {"tool_calls": [header]}, position > 0
        for piece in text.segments(fn["arguments"]):
            yield {"tool_calls": [{"index": position, "function": {"arguments": piece}}]}, True


def _events(renderer: StreamRenderer, choice: Choice, usage: Usage) -> Iterator[tuple[bytes, bool]]:
    for chunk in renderer.start():
        yield chunk, False
    for delta, content in _deltas(choice):
        data = {"choices": [{"index": 0, "delta": delta}]}
        for chunk in renderer.feed(StreamEvent(data)):
            yield chunk, content
    final = {"choices": [{"index": 0, "delta": {}, "finish_reason": choice.finish_reason}]}
    renderer.feed(StreamEvent(final, usage=usage))
    for chunk in renderer.end():
        yield chunk, False


async def responses(request: web.Request) -> web.StreamResponse:
    """Handle one Responses request, faults included."""
    admitted = await prologue(request, ROUTE, DIALECT)
    if isinstance(admitted, web.Response):
        return admitted
    script: FaultScript = admitted.script
    body = dict(admitted.body)
    if body.get("previous_response_id") is not None:
        return invalid_param(
            "Previous response not found (nothing is stored here).", "previous_response_id"
        )
    rid = "req_" + uuid.uuid4().hex[:24]
    try:
        parsed = to_request(body, rid)
    except FaregateError as exc:
        return invalid_param(exc.message, exc.param, exc.code)
    chat = parse_request(parsed.call.body)
    if isinstance(chat, web.Response):
        return chat
    req: ChatRequest = chat
    req.n = 1
    choice = generate(req, script)[0]
    usage_dict = usage_for(req, [choice], script)
    usage = usage_from(usage_dict) or Usage(0, 0)
    args: dict[str, Any] = {
        "request_id": rid,
        "model": req.model,
        "previous_response_id": None,
        "store": False,
    }
    if req.stream:
        base = response_object(parsed.echo, status="in_progress", output=[], usage=None, **args)
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        renderer = StreamRenderer(base, rid)
        events = _events(renderer, choice, usage)
        return await play_stream(request, script, {**headers, **request_headers()}, events)
    reply = completion_payload(req, [choice], usage_dict)
    out = from_hub(reply, usage, parsed.echo, **args)
    if script.no_usage:
        out["usage"] = None
    return await send_json(request, script, orjson.dumps(out), request_headers())
