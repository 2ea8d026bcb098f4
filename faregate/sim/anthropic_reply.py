"""Deterministic Anthropic replies for the simulator: content blocks, usage and SSE events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from faregate.sim import text
from faregate.sim.anthropic_request import MessagesRequest, sign
from faregate.sim.faults import FaultScript
from faregate.tokens import count_text

DEFAULT_THINKING_TOKENS = 16


@dataclass(slots=True)
class Reply:
    blocks: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int
    thinking_tokens: int


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message that has text (tool results alone are skipped)."""
    for message in reversed(messages):
        if message["role"] != "user":
            continue
        texts = [b["text"] for b in message["content"] if b["type"] == "text"]
        if texts:
            return " ".join(texts)
    return ""


def tools_to_call(req: MessagesRequest, prompt: str) -> list[dict[str, Any]]:
    """The tools the simulated model calls: the forced one (`tool`); else, unless the last
    message answers earlier calls, the tools the prompt names (a prompt mentioning "weather"
    names the weather tool, or the first tool), the first tool for `any`; `none` calls none.
    With `disable_parallel_tool_use`, only the first."""
    kind = req.tool_choice["type"]
    if not req.tools or kind == "none":
        return []
    if kind == "tool":
        return [t for t in req.tools if t["name"] == req.tool_choice["name"]]
    last = req.messages[-1]
    answered = any(b["type"] == "tool_result" for b in last["content"])
    if last["role"] == "user" and answered and kind != "any":
        return []
    lowered = prompt.lower()
    named = [t for t in req.tools if _mentions(lowered, t["name"])]
    if not named and "weather" in lowered:
        named = [t for t in req.tools if "weather" in t["name"].lower()][:1] or req.tools[:1]
    if not named and kind == "any":
        named = req.tools[:1]
    return named[:1] if req.tool_choice.get("disable_parallel_tool_use") else named


def _mentions(lowered: str, name: str) -> bool:
    name = name.lower()
    return name in lowered or name.replace("_", " ") in lowered


def _cut_at_stop(reply: str, stops: list[str]) -> tuple[str, str | None]:
    found = [(reply.find(s), s) for s in stops if s and s in reply]
    if not found:
        return reply, None
    index, stop = min(found)
    return reply[:index], stop


def generate(req: MessagesRequest, script: FaultScript) -> Reply:
    """The reply: a thinking block when thinking is on, then tool calls (with a short text
    before them unless tool use is forced) or text cut at a stop sequence and at max_tokens."""
    prompt = last_user_text(req.messages)
    salt = f"anthropic|{prompt}"
    blocks: list[dict[str, Any]] = []
    thinking = 0
    if req.thinking_budget is not None:
        wanted = script.reasoning_tokens
        thinking = min(DEFAULT_THINKING_TOKENS if wanted is None else wanted, req.thinking_budget)
        thought = text.filler("thinking|" + salt, thinking) if thinking else ""
        blocks.append({"type": "thinking", "thinking": thought, "signature": sign(thought)})
    calls = tools_to_call(req, prompt)
    if calls:
        output = thinking
        if req.tool_choice["type"] == "auto":
            preamble = f"I will call {' and '.join(t['name'] for t in calls)}."
            blocks.append({"type": "text", "text": preamble})
            output += count_text(preamble)
        for position, tool in enumerate(calls):
            name = tool["name"]
            value = text.schema_value(tool["input_schema"], f"{name}|{prompt}")
            call_id = "toolu_" + text.stable_hex(f"toolu|{salt}|{position}|{name}")
            blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": value})
            output += count_text(name) + count_text(orjson.dumps(value).decode())
        return Reply(blocks, "tool_use", None, output, thinking)
    reply, stop = _cut_at_stop(text.reply_text(prompt, salt, script.tokens), req.stop_sequences)
    reason = "end_turn" if stop is None else "stop_sequence"
    visible = req.max_tokens - thinking
    if count_text(reply) > visible:
        reply, reason, stop = text.truncate_tokens(reply, visible), "max_tokens", None
    if reply:
        blocks.append({"type": "text", "text": reply})
    return Reply(blocks, reason, stop, thinking + count_text(reply), thinking)


def usage_of(req: MessagesRequest, reply: Reply, script: FaultScript) -> dict[str, Any]:
    cached = min(script.cached_tokens or 0, req.input_tokens)
    usage: dict[str, Any] = {
        "input_tokens": req.input_tokens - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": reply.output_tokens,
        "service_tier": "standard",
    }
    if req.thinking_budget is not None:
        usage["output_tokens_details"] = {"thinking_tokens": reply.thinking_tokens}
    return usage


def message_payload(
    message_id: str, req: MessagesRequest, reply: Reply, usage: dict[str, Any]
) -> dict[str, Any]:
    """The non-streaming Message object."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": reply.blocks,
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": usage,
    }


def sse(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def stream_events(
    message_id: str, req: MessagesRequest, reply: Reply, usage: dict[str, Any], with_usage: bool
) -> Iterator[tuple[bytes, bool]]:
    """(SSE event bytes, whether it carries generated content), in Anthropic's order:
    message_start, ping, per block start/deltas/stop, message_delta, message_stop."""
    start = {**message_payload(message_id, req, reply, usage), "content": []}
    start.update(stop_reason=None, stop_sequence=None)
    start["usage"] = {**usage, "output_tokens": 1}
    start["usage"].pop("output_tokens_details", None)
    yield sse("message_start", {"type": "message_start", "message": start}), False
    yield sse("ping", {"type": "ping"}), False
    for index, block in enumerate(reply.blocks):
        for event, content in _block_events(index, block):
            yield sse(event["type"], event), content
    final: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
    }
    if with_usage:
        final["usage"] = {k: v for k, v in usage.items() if k != "service_tier"}
    yield sse("message_delta", final), False
    yield sse("message_stop", {"type": "message_stop"}), False


def _block_events(index: int, block: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    kind = block["type"]

    def delta(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return {"type": "content_block_delta", "index": index, "delta": body}, True

    if kind == "text":
        empty: dict[str, Any] = {"type": "text", "text": ""}
    elif kind == "thinking":
        empty = {"type": "thinking", "thinking": "", "signature": ""}
    else:
        empty = {**block, "input": {}}
    yield {"type": "content_block_start", "index": index, "content_block": empty}, False
    if kind == "text":
        for piece in text.segments(block["text"]):
            yield delta({"type": "text_delta", "text": piece})
    elif kind == "thinking":
        for piece in text.segments(block["thinking"]):
            yield delta({"type": "thinking_delta", "thinking": piece})
        yield delta({"type": "signature_delta", "signature": block["signature"]})
    else:
        yield delta({"type": "input_json_delta", "partial_json": ""})
        for piece in text.segments(orjson.dumps(block["input"]).decode()):
            yield delta({"type": "input_json_delta", "partial_json": piece})
    yield {"type": "content_block_stop", "index": index}, False
