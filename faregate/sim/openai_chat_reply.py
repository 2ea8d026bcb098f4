"""Deterministic OpenAI chat replies for the simulator: choices, usage, payload and chunks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from faregate.sim import text
from faregate.sim.faults import FaultScript
from faregate.sim.openai_chat_request import REASONING_TOKENS, ChatRequest, forced_tool
from faregate.sim.openai_common import now
from faregate.tokens import count_messages, count_text

FINGERPRINT = "fp_sim"
CACHE_THRESHOLD = 1024
CACHE_BLOCK = 128


@dataclass(slots=True)
class Choice:
    """One generated choice: text or tool calls, and its token accounting."""

    index: int
    content: str | None
    finish_reason: str
    completion_tokens: int
    reasoning_tokens: int
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def last_user_text(messages: list[Any]) -> str:
    """The text of the last user message ("" when there is none)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    part["text"]
                    for part in content
                    if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
            return ""
    return ""


def tools_to_call(req: ChatRequest, prompt: str) -> list[dict[str, Any]]:
    """The function tools this request makes the simulated model call.

    "none" calls nothing; a forced function is always called; otherwise the
    tools named in the last user message are called (a message mentioning
    "weather" names the weather tool, or the first tool), unless the last
    message is a tool result; "required" falls back to the first tool. With
    `parallel_tool_calls` false, only the first is called.
    """
    if not req.tools or req.tool_choice == "none":
        return []
    forced = forced_tool(req.tool_choice)
    if forced is not None:
        return [next(t for t in req.tools if t["function"]["name"] == forced)]
    required = req.tool_choice == "required"
    last = req.messages[-1]
    if last.get("role") in ("tool", "function") and not required:
        return []
    lowered = prompt.lower()
    named = [t for t in req.tools if _mentions(lowered, t["function"]["name"])]
    if not named and "weather" in lowered:
        weather = [t for t in req.tools if "weather" in t["function"]["name"].lower()]
        named = weather[:1] or req.tools[:1]
    if not named and required:
        named = req.tools[:1]
    return named if req.parallel_tool_calls else named[:1]


def _mentions(lowered_text: str, name: str) -> bool:
    name = name.lower()
    return name in lowered_text or name.replace("_", " ") in lowered_text


def generate(req: ChatRequest, script: FaultScript) -> list[Choice]:
    """The `n` choices of a request, deterministically."""
    prompt = last_user_text(req.messages)
    calls = tools_to_call(req, prompt)
    reasoning = script.reasoning_tokens
    if reasoning is None:
        reasoning = REASONING_TOKENS.get(req.reasoning_effort or "none", 0)
    choices: list[Choice] = []
    for index in range(req.n):
        salt = f"{req.seed}|{index}|{prompt}"
        if calls:
            choices.append(_tool_choice(index, calls, prompt, salt, reasoning))
        else:
            choices.append(_text_choice(index, req, prompt, salt, reasoning, script))
    return choices


def _tool_choice(
    index: int, calls: list[dict[str, Any]], prompt: str, salt: str, reasoning: int
) -> Choice:
    tool_calls: list[dict[str, Any]] = []
    tokens = reasoning
    for position, tool in enumerate(calls):
        function = tool["function"]
        name: str = function["name"]
        params = function.get("parameters") or {"type": "object", "properties": {}}
        arguments = orjson.dumps(text.schema_value(params, f"{name}|{prompt}")).decode()
        tool_calls.append(
            {
                "id": "call_" + text.stable_hex(f"call|{salt}|{position}|{name}"),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        )
        tokens += count_text(name) + count_text(arguments)
    return Choice(index, None, "tool_calls", tokens, reasoning, tool_calls)


def _text_choice(
    index: int, req: ChatRequest, prompt: str, salt: str, reasoning: int, script: FaultScript
) -> Choice:
    tokens = script.tokens
    if script.reply is not None:
        content = script.reply
    elif req.response_format == "json_schema":
        content = orjson.dumps(text.schema_value(req.json_schema, salt)).decode()
    elif req.response_format == "json_object":
        content = text.json_reply(salt, tokens)
    else:
        content = text.reply_text(prompt, salt, tokens)
    content, _ = text.cut_at_stop(content, req.stops)
    finish = "stop"
    if req.cap is not None:
        reasoning = min(reasoning, req.cap)
        visible_cap = req.cap - reasoning
        if count_text(content) > visible_cap:
            content = text.truncate_tokens(content, visible_cap)
            finish = "length"
    return Choice(index, content, finish, count_text(content) + reasoning, reasoning)


def usage_for(req: ChatRequest, choices: list[Choice], script: FaultScript) -> dict[str, Any]:
    """The exact usage object of a response."""
    prompt = count_messages(req.messages, req.raw_tools)
    if script.cached_tokens is not None:
        cached = min(script.cached_tokens, prompt)
    elif req.prompt_cache_key or prompt >= CACHE_THRESHOLD:
        cached = prompt // 2 // CACHE_BLOCK * CACHE_BLOCK
    else:
        cached = 0
    completion = sum(choice.completion_tokens for choice in choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": sum(choice.reasoning_tokens for choice in choices),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_payload(
    req: ChatRequest, choices: list[Choice], usage: dict[str, Any]
) -> dict[str, Any]:
    """The non-streaming `chat.completion` object."""
    out: list[dict[str, Any]] = []
    for choice in choices:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": choice.content,
            "refusal": None,
            "annotations": [],
        }
        if choice.tool_calls:
            message["tool_calls"] = choice.tool_calls
        out.append(
            {
                "index": choice.index,
                "message": message,
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
        )
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": now(),
        "model": req.model,
        "choices": out,
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def _completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def _choice_deltas(choice: Choice) -> list[tuple[dict[str, Any], bool]]:
    """The (delta, is_content) pairs of one streamed choice, before its finish chunk."""
    if not choice.tool_calls:
        first = {"role": "assistant", "content": "", "refusal": None}
        pieces = text.segments(choice.content or "")
        return [(first, False), *(({"content": piece}, True) for piece in pieces)]
    deltas: list[tuple[dict[str, Any], bool]] = []
    for position, call in enumerate(choice.tool_calls):
        header = {
            "index": position,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        if position == 0:
            deltas.append(({"role": "assistant", "content": None, "tool_calls": [header]}, False))
        else:
            deltas.append(({"tool_calls": [header]}, True))
        for piece in text.segments(call["function"]["arguments"]):
            fragment = {"index": position, "function": {"arguments": piece}}
            deltas.append(({"tool_calls": [fragment]}, True))
    return deltas


def stream_chunks(
    req: ChatRequest, choices: list[Choice], usage: dict[str, Any], script: FaultScript
) -> Iterator[tuple[bytes, bool]]:
    """(SSE chunk bytes, whether it counts as a content chunk): the choices' deltas
    interleaved, their finish chunks, the usage chunk when asked for, then [DONE]."""
    base: dict[str, Any] = {
        "id": _completion_id(),
        "object": "chat.completion.chunk",
        "created": now(),
        "model": req.model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    if req.include_usage:
        base["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish: str | None) -> bytes:
        entry = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**base, "choices": [entry]}) + b"\n\n"

    per_choice = [_choice_deltas(choice) for choice in choices]
    for step in range(max(len(deltas) for deltas in per_choice)):
        for choice, deltas in zip(choices, per_choice, strict=True):
            if step < len(deltas):
                delta, is_content = deltas[step]
                yield chunk(choice.index, delta, None), is_content
    for choice in choices:
        yield chunk(choice.index, {}, choice.finish_reason), False
    if req.include_usage and not script.no_usage:
        final = {**base, "choices": [], "usage": usage}
        yield b"data: " + orjson.dumps(final) + b"\n\n", False
    yield b"data: [DONE]\n\n", False
