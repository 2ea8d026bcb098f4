"""Anthropic Messages SSE events decoded into the hub's OpenAI chat.completion.chunks.

    message_start                 -> a first chunk, delta {"role": "assistant", "content": ""},
                                     its event carrying the upstream's prompt usage
                                     (`prompt_usage`) when the message reported one
    content_block_start text      -> nothing (its deltas follow)
    content_block_start tool_use  -> a tool_calls header: index, id, name, arguments ""
    text_delta                    -> delta.content
    input_json_delta              -> delta.tool_calls[].function.arguments (the json_schema
                                     answer tool: delta.content)
    thinking_delta                -> delta.reasoning_content
    content_block_stop (thinking) -> delta.thinking_blocks: [the whole block, signature included]
    redacted_thinking block       -> delta.thinking_blocks: [{"type": "redacted_thinking", ...}]
    message_delta                 -> remembered: stop reason and the cumulative usage
    message_stop                  -> the finish chunk, a usage-only chunk (choices: []) when the
                                     upstream reported usage, then the end marker
    error                         -> UpstreamError
    ping                          -> nothing

So in a stream, `reasoning_content` carries thinking text as it comes and `thinking_blocks`
carries each finished block once, ready to be sent back on the next turn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from faregate.providers.anthropic_wire import (
    JSON_TOOL,
    STOP_TO_FINISH,
    count,
    hub_usage,
    stream_error,
)
from faregate.providers.base import StreamEvent
from faregate.providers.openai import usage_from
from faregate.providers.sse import SSEDecoder

_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens_details",
)


@dataclass(slots=True)
class _Block:
    kind: str  # text | tool | json | thinking | other
    tool_index: int = -1
    thinking: str = ""
    signature: str = ""


class AnthropicStreamDecoder:
    """Feed upstream bytes in any split; get hub StreamEvents back."""

    __slots__ = (
        "_blocks",
        "_created",
        "_id",
        "_json_answer",
        "_model",
        "_sse",
        "_stop_reason",
        "_stop_sequence",
        "_tools",
        "_usage",
        "_usage_final",
    )

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._id = ""
        self._model = ""
        self._created = 0
        self._usage: dict[str, Any] = {}
        self._usage_final = False
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._json_answer = False
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for name, data, _ in self._sse.feed(chunk):
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            kind = obj.get("type") or name
            if kind == "error":
                raise stream_error(obj)
            handler = _HANDLERS.get(kind)
            if handler is not None:
                handler(self, obj, events)
        return events

    # -- chunks --------------------------------------------------------------------------

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _emit(self, out: list[StreamEvent], delta: dict[str, Any], text: str = "") -> None:
        out.append(StreamEvent(self._chunk(delta), None, text=text))

    # -- events --------------------------------------------------------------------------

    def _message_start(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        message = obj.get("message")
        message = message if isinstance(message, dict) else {}
        self._id = str(message.get("id") or "")
        self._model = str(message.get("model") or "")
        self._created = int(time.time())
        self._merge_usage(message.get("usage"))
        self._emit(out, {"role": "assistant", "content": ""})
        out[-1].prompt_usage = _prompt_usage(message.get("usage"))

    def _block_start(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        block = obj.get("content_block")
        block = block if isinstance(block, dict) else {}
        index = obj.get("index")
        if not isinstance(index, int):
            return
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _Block("text")
            if block.get("text"):
                self._emit(out, {"content": block["text"]}, str(block["text"]))
        elif kind == "tool_use" and block.get("name") == JSON_TOOL:
            self._blocks[index] = _Block("json")
            self._json_answer = True
        elif kind == "tool_use":
            state = self._blocks[index] = _Block("tool", self._tools)
            self._tools += 1
            name = str(block.get("name") or "")
            initial = block.get("input")
            arguments = orjson.dumps(initial).decode() if initial else ""
            header = {
                "index": state.tool_index,
                "id": str(block.get("id") or ""),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            self._emit(out, {"tool_calls": [header]}, name + arguments)
        elif kind == "thinking":
            state = self._blocks[index] = _Block("thinking")
            state.thinking = str(block.get("thinking") or "")
            state.signature = str(block.get("signature") or "")
            if state.thinking:
                self._emit(out, {"reasoning_content": state.thinking}, state.thinking)
        elif kind == "redacted_thinking":
            self._blocks[index] = _Block("other")
            redacted = {"type": "redacted_thinking", "data": str(block.get("data") or "")}
            self._emit(out, {"thinking_blocks": [redacted]})
        else:
            self._blocks[index] = _Block("other")  # server tools and the like: never asked for

    def _block_delta(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        state = self._state(obj)
        delta = obj.get("delta")
        if state is None or not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta" and state.kind == "text":
            text = str(delta.get("text") or "")
            if text:
                self._emit(out, {"content": text}, text)
        elif kind == "input_json_delta" and state.kind in ("tool", "json"):
            part = str(delta.get("partial_json") or "")
            if not part:
                return
            if state.kind == "json":
                self._emit(out, {"content": part}, part)
            else:
                fragment = {"index": state.tool_index, "function": {"arguments": part}}
                self._emit(out, {"tool_calls": [fragment]}, part)
        elif kind == "thinking_delta" and state.kind == "thinking":
            text = str(delta.get("thinking") or "")
            state.thinking += text
            if text:
                self._emit(out, {"reasoning_content": text}, text)
        elif kind == "signature_delta" and state.kind == "thinking":
            state.signature += str(delta.get("signature") or "")

    def _block_stop(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        state = self._state(obj)
        if state is not None and state.kind == "thinking":
            block = {"type": "thinking", "thinking": state.thinking, "signature": state.signature}
            self._emit(out, {"thinking_blocks": [block]})

    def _message_delta(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = obj.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("stop_reason"), str):
                self._stop_reason = delta["stop_reason"]
            if isinstance(delta.get("stop_sequence"), str):
                self._stop_sequence = delta["stop_sequence"]
        if isinstance(obj.get("usage"), dict):
            self._merge_usage(obj["usage"])
            self._usage_final = True

    def _message_stop(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        finish = STOP_TO_FINISH.get(self._stop_reason or "", "stop")
        if finish == "tool_calls" and self._json_answer and not self._tools:
            finish = "stop"
        chunk = self._chunk({}, finish)
        if self._stop_sequence is not None:
            chunk["choices"][0]["stop_sequence"] = self._stop_sequence
        out.append(StreamEvent(chunk, None, finish_reason=finish))
        usage = hub_usage(self._usage) if self._usage_final else None
        if usage is not None:
            final = {**self._chunk({}), "choices": [], "usage": usage}
            out.append(StreamEvent(final, None, usage_from(usage), is_usage_only=True))
        out.append(StreamEvent(None))

    def _state(self, obj: dict[str, Any]) -> _Block | None:
        index = obj.get("index")
        return self._blocks.get(index) if isinstance(index, int) else None

    def _merge_usage(self, usage: Any) -> None:
        """Counts in message_delta are cumulative: present ones replace earlier values."""
        if isinstance(usage, dict):
            for name in _USAGE_FIELDS:
                if usage.get(name) is not None:
                    self._usage[name] = usage[name]


def _prompt_usage(usage: Any) -> dict[str, Any] | None:
    """The prompt side of `message_start`'s usage in hub form (None without `input_tokens`)."""
    if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
        return None
    output = count(usage.get("output_tokens"))
    return hub_usage({**usage, "output_tokens": output, "output_tokens_details": None})


_HANDLERS = {
    "message_start": AnthropicStreamDecoder._message_start,
    "content_block_start": AnthropicStreamDecoder._block_start,
    "content_block_delta": AnthropicStreamDecoder._block_delta,
    "content_block_stop": AnthropicStreamDecoder._block_stop,
    "message_delta": AnthropicStreamDecoder._message_delta,
    "message_stop": AnthropicStreamDecoder._message_stop,
}
