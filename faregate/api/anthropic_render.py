"""Hub replies rendered as Anthropic Messages: the message object and the SSE event stream.

Content order is thinking (the `thinking_blocks`, else `reasoning_content` as one thinking
block with an empty signature), text, tool_use. Finish reasons map back to stop reasons
(stop -> end_turn, or stop_sequence when the choice names the matched sequence; length ->
max_tokens; tool_calls -> tool_use; content_filter -> refusal). Usage is computed back from
the hub usage: input_tokens = prompt_tokens - cached - cache writes, cache_read_input_tokens =
cached, output_tokens = completion_tokens. The cost is not an Anthropic field: it is only in
the response headers.

Streams open with `message_start` (its usage is the upstream's exact prompt usage when the
upstream sent one before the answer, as an Anthropic upstream does, else the gateway's count
of the prompt; the exact figures come in `message_delta`, which Anthropic defines as
cumulative) and a
`ping`, give each text, thinking and tool call its own content block, and end with
`message_delta` (stop reason and usage) and `message_stop`, or with `event: error`.
"""

from __future__ import annotations

from typing import Any

import orjson

from faregate.api.envelopes import anthropic_body
from faregate.billing.types import Usage
from faregate.errors import FaregateError
from faregate.providers.anthropic_wire import FINISH_TO_STOP, count
from faregate.providers.base import StreamEvent, content_text


def message_id(upstream_id: Any, request_id: str) -> str:
    """The upstream's id when it is an Anthropic one, else one made from the request id."""
    if isinstance(upstream_id, str) and upstream_id.startswith("msg_"):
        return upstream_id
    return "msg_" + request_id.removeprefix("req_")


def anthropic_usage(usage: Usage, hub: Any = None) -> dict[str, Any]:
    """Anthropic usage from the settled usage (and the hub usage dict for cache writes)."""
    details = hub.get("prompt_tokens_details") if isinstance(hub, dict) else None
    writes = count(details.get("cache_write_tokens")) if isinstance(details, dict) else 0
    cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
    writes = min(writes, usage.prompt_tokens - cached)
    out: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens - cached - writes,
        "cache_creation_input_tokens": writes,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.completion_tokens,
    }
    if usage.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


def stop_reason(finish: Any, stop_sequence: Any) -> str:
    if isinstance(stop_sequence, str) and finish in (None, "stop"):
        return "stop_sequence"
    return FINISH_TO_STOP.get(finish if isinstance(finish, str) else "", "end_turn")


def tool_input(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments as an object; text that is not a JSON object is kept under
    `_raw_arguments` rather than lost."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        value = None
    return value if isinstance(value, dict) else {"_raw_arguments": str(arguments)}


def _thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for block in message.get("thinking_blocks") or ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "redacted_thinking":
            blocks.append({"type": "redacted_thinking", "data": str(block.get("data") or "")})
        elif block.get("type") == "thinking":
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": str(block.get("thinking") or ""),
                    "signature": str(block.get("signature") or ""),
                }
            )
    reasoning = message.get("reasoning_content")
    if not blocks and isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    return blocks


def render_message(
    reply: dict[str, Any], usage: Usage, model: str, request_id: str
) -> dict[str, Any]:
    """The Anthropic Message for a hub chat completion."""
    choices = reply.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content = _thinking_blocks(message)
    text = content_text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or "") or f"toolu_{request_id}_{len(content)}",
                "name": str(fn.get("name") or ""),
                "input": tool_input(fn.get("arguments")),
            }
        )
    sequence = choice.get("stop_sequence")
    reason = stop_reason(choice.get("finish_reason"), sequence)
    return {
        "id": message_id(reply.get("id"), request_id),
        "type": "message",
        "role": "assistant",
        "model": str(reply.get("model") or model),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence if reason == "stop_sequence" else None,
        "usage": anthropic_usage(usage, reply.get("usage")),
    }


def sse(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def error_event(err: FaregateError) -> bytes:
    return sse("error", anthropic_body(err))


class StreamRenderer:
    """Hub stream events in, Anthropic SSE event bytes out (one content block at a time)."""

    def __init__(self, model: str, request_id: str, input_estimate: int) -> None:
        self._model = model
        self._request_id = request_id
        self._input_estimate = input_estimate
        self._started = False
        self._index = -1
        self._open: str | None = None  # kind of the open block: text | thinking | tool
        self._thinking_streamed = False
        self._tools: dict[int, int] = {}  # hub tool-call index -> block index
        self._finish: str | None = None
        self._stop_sequence: str | None = None
        self._usage: Usage | None = None
        self._usage_dict: Any = None

    def feed(self, event: StreamEvent) -> list[bytes]:
        data = event.data or {}
        out: list[bytes] = []
        if not self._started:
            out += self._start(data, event.prompt_usage)
        if event.usage is not None:
            self._usage, self._usage_dict = event.usage, data.get("usage")
        for choice in data.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                out += self._choice(choice)
        return out

    def end(self) -> list[bytes]:
        """`message_delta` and `message_stop` (after the blocks still open)."""
        out = [] if self._started else self._start({})
        out += self._close()
        reason = stop_reason(self._finish, self._stop_sequence)
        usage = self._usage or Usage(self._input_estimate, 0, estimated=True)
        final = {
            "type": "message_delta",
            "delta": {
                "stop_reason": reason,
                "stop_sequence": self._stop_sequence if reason == "stop_sequence" else None,
            },
            "usage": anthropic_usage(usage, self._usage_dict),
        }
        return [*out, sse("message_delta", final), sse("message_stop", {"type": "message_stop"})]

    def _start(self, data: dict[str, Any], prompt: dict[str, Any] | None = None) -> list[bytes]:
        self._started = True
        usage: dict[str, Any] = {"input_tokens": self._input_estimate, "output_tokens": 0}
        if prompt is not None:
            details = prompt.get("prompt_tokens_details") or {}
            reported = Usage(
                count(prompt.get("prompt_tokens")),
                count(prompt.get("completion_tokens")),
                cached_tokens=count(details.get("cached_tokens")),
            )
            usage = anthropic_usage(reported, prompt)
        message: dict[str, Any] = {
            "id": message_id(data.get("id"), self._request_id),
            "type": "message",
            "role": "assistant",
            "model": str(data.get("model") or self._model),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [
            sse("message_start", {"type": "message_start", "message": message}),
            sse("ping", {"type": "ping"}),
        ]

    def _choice(self, choice: dict[str, Any]) -> list[bytes]:
        delta = choice.get("delta") or {}
        out: list[bytes] = []
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            out += self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            self._thinking_streamed = True
            out.append(self._delta({"type": "thinking_delta", "thinking": reasoning}))
        for block in delta.get("thinking_blocks") or ():
            if isinstance(block, dict):
                out += self._thinking_block(block)
        content = delta.get("content")
        if isinstance(content, str) and content:
            out += self._begin("text", {"type": "text", "text": ""})
            out.append(self._delta({"type": "text_delta", "text": content}))
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out += self._tool_call(call)
        if choice.get("finish_reason"):
            self._finish = str(choice["finish_reason"])
        if isinstance(choice.get("stop_sequence"), str):
            self._stop_sequence = choice["stop_sequence"]
        return out

    def _thinking_block(self, block: dict[str, Any]) -> list[bytes]:
        """A finished thinking block: its signature closes the block streamed so far, or the
        whole block is sent when its text was not streamed."""
        out: list[bytes] = []
        if block.get("type") == "redacted_thinking":
            out += self._close()
            data = str(block.get("data") or "")
            out += self._begin("redacted", {"type": "redacted_thinking", "data": data})
            return out + self._close()
        if block.get("type") != "thinking":
            return out
        if not (self._open == "thinking" and self._thinking_streamed):
            out += self._close()
            out += self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if block.get("thinking"):
                text = str(block["thinking"])
                out.append(self._delta({"type": "thinking_delta", "thinking": text}))
        if block.get("signature"):
            signature = str(block["signature"])
            out.append(self._delta({"type": "signature_delta", "signature": signature}))
        return out + self._close()

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        position = call.get("index", 0)
        position = position if isinstance(position, int) else 0
        fn = call.get("function") or {}
        if position not in self._tools:
            call_id = str(call.get("id") or "") or f"toolu_{self._request_id}_{position}"
            start = {"type": "tool_use", "id": call_id, "name": str(fn.get("name") or "")}
            out += self._begin("tool", {**start, "input": {}}, force=True)
            self._tools[position] = self._index
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            body = {"type": "input_json_delta", "partial_json": arguments}
            out.append(self._delta(body, self._tools[position]))
        return out

    def _begin(self, kind: str, block: dict[str, Any], *, force: bool = False) -> list[bytes]:
        if self._open == kind and not force:
            return []
        out = self._close()
        self._index += 1
        self._open = kind
        self._thinking_streamed = False
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return [*out, sse("content_block_start", start)]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [sse("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        at = self._index if index is None else index
        return sse(
            "content_block_delta", {"type": "content_block_delta", "index": at, "delta": delta}
        )
