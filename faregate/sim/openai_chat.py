"""The OpenAI Chat Completions protocol: `POST /v1/chat/completions`.

Replies are deterministic (see `faregate.sim.text`) and usage is exact:

* prompt_tokens = `faregate.tokens.count_messages(messages, tools)` with the
  request's raw `messages` and `tools`.
* completion_tokens = per choice, `count_text(content)` for a text reply or
  the sum of `count_text(name) + count_text(arguments)` over its tool calls,
  plus its reasoning tokens; summed over the `n` choices.
* reasoning_tokens = per choice 8/16/32/64 for `reasoning_effort`
  low/medium/high/xhigh (0 when unset, "none" or "minimal"); the
  `reasoning_tokens=N` directive overrides it.
* cached_tokens = the largest multiple of 128 not above prompt_tokens / 2 when
  the request has a `prompt_cache_key` or prompt_tokens >= 1024, else 0; the
  `cached_tokens=N` directive overrides it (capped at prompt_tokens).

`max_completion_tokens` (or `max_tokens`) caps reasoning plus visible text;
a reply cut by the cap ends with finish_reason "length". Stop sequences cut
the text first. Tool-call replies are never capped. The `tokens=N` directive
fixes the text of plain and json_object replies (before stop and cap); it does
not apply to json_schema replies or tool calls. `no_usage` leaves `usage` out of a
reply, and the usage chunk out of a stream.

Streams send one content delta per token. For stall_after/cut_after, every
chunk after a choice's first one counts as a content chunk except the finish,
usage and [DONE] chunks: text deltas, and for tool calls the argument
fragments and the header chunks of the second and later calls.

Requests are validated in `openai_chat_request`; choices, usage, payloads and stream
chunks are built in `openai_chat_reply`.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from faregate.sim.delivery import play_stream, send_json
from faregate.sim.openai_chat_reply import completion_payload, generate, stream_chunks, usage_for
from faregate.sim.openai_chat_request import parse_request
from faregate.sim.openai_common import openai_dialect, request_headers
from faregate.sim.prologue import prologue

ROUTE = "/v1/chat/completions"

DIALECT = openai_dialect(
    "We could not parse the JSON body of your request. (HINT: This likely means you "
    "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
    "but what was sent was not valid JSON.)"
)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Handle one chat completion request, faults included."""
    admitted = await prologue(request, ROUTE, DIALECT)
    if isinstance(admitted, web.Response):
        return admitted
    script = admitted.script
    parsed = parse_request(admitted.body)
    if isinstance(parsed, web.Response):
        return parsed
    choices = generate(parsed, script)
    usage = usage_for(parsed, choices, script)
    if parsed.stream:
        headers = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            **request_headers(),
        }
        return await play_stream(
            request, script, headers, stream_chunks(parsed, choices, usage, script)
        )
    body = completion_payload(parsed, choices, usage)
    if script.no_usage:
        del body["usage"]
    payload = orjson.dumps(body)
    return await send_json(request, script, payload, request_headers())
