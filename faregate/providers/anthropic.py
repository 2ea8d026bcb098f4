"""The Anthropic Messages upstream protocol: pure translation to and from the hub chat shape.

Request (`anthropic_request.py`): `POST /v1/messages` with `x-api-key` and
`anthropic-version: 2023-06-01`. System and developer messages become `system` (wherever they
stand); tool messages become `tool_result` blocks of one user turn; same-role neighbours are
merged; `thinking_blocks` of assistant messages are sent back first in their turn, and
`reasoning_content` without them is dropped (unsigned thinking cannot be sent back, and
Anthropic ignores the thinking of earlier turns anyway). Images become base64 or URL image
sources (no fetching), PDF `file_data` a document block; `cache_control` on parts and tools is
kept. `user` becomes `metadata.user_id`; the hub's `metadata` (OpenAI stored-completion tags)
and message `name`s have no Anthropic counterpart and are ignored.

`max_tokens` is the caller's cap, else 4096 (plus the thinking budget when thinking is on).

Thinking: `thinking_budget` (0 off, -1 dynamic = the medium budget, 1..1023 raised to 1024),
else `thinking_level`, else `reasoning_effort`:

    none -> off   minimal -> 1024   low -> 2048   medium -> 8192   high -> 16384   xhigh -> 32768

A level's budget is capped at max_tokens - 1 (thinking counts against max_tokens); an explicit
budget that does not fit, or max_tokens <= 1024 with thinking, is a 400.

JSON output: `json_object` is a forced answer tool whose input schema is any object (with
thinking, where no tool can be forced, a system instruction asks for one JSON object).
`json_schema` adds a tool named `json_response` whose input schema is the JSON schema (the
root must be an object) and forces it (`tool_choice: tool`, or `any` when the caller's tools
may be called instead); the reply's `json_response` call comes back as the message text with
finish_reason "stop". Anthropic forbids forced tool use with thinking, so json_schema with
thinking is a 400 unsupported_feature.

Unsupported (400 unsupported_feature, naming the field): n > 1, logprobs, top_logprobs,
presence/frequency penalties, logit_bias, seed, store, service tiers, safety_settings, output
modalities other than text, audio input, non-function tools, the legacy function role, and
any other field the hub does not define.

Reply: text blocks -> content, tool_use -> tool_calls (arguments as a JSON string), thinking ->
reasoning_content and thinking_blocks; stop reasons end_turn/stop_sequence/pause_turn -> stop,
max_tokens -> length, tool_use -> tool_calls, refusal -> content_filter (the matched
`stop_sequence` is kept on the choice). Usage: see `anthropic_wire.py`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from faregate.errors import UpstreamError
from faregate.providers.anthropic_request import build_body
from faregate.providers.anthropic_stream import AnthropicStreamDecoder
from faregate.providers.anthropic_wire import (
    API_VERSION,
    JSON_TOOL,
    STOP_TO_FINISH,
    failure_of,
    hub_usage,
)
from faregate.providers.base import (
    ChatCall,
    ChatResult,
    Credentials,
    UpstreamRequest,
    reply_object,
)
from faregate.providers.openai import usage_from


def hub_message(blocks: Any, stop_reason: Any) -> tuple[dict[str, Any], str]:
    """An OpenAI assistant message and finish reason from Anthropic content blocks."""
    texts: list[str] = []
    reasoning: list[str] = []
    thinking: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    answer: str | None = None
    for block in blocks if isinstance(blocks, list) else ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking") or ""))
            thinking.append(
                {
                    "type": "thinking",
                    "thinking": str(block.get("thinking") or ""),
                    "signature": str(block.get("signature") or ""),
                }
            )
        elif kind == "redacted_thinking":
            thinking.append({"type": "redacted_thinking", "data": str(block.get("data") or "")})
        elif kind == "tool_use" and block.get("name") == JSON_TOOL:
            answer = orjson.dumps(block.get("input") or {}).decode()
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": str(block.get("id") or ""),
                    "type": "function",
                    "function": {"name": str(block.get("name") or ""), "arguments": arguments},
                }
            )
    finish = STOP_TO_FINISH.get(stop_reason if isinstance(stop_reason, str) else "", "stop")
    if answer is not None:
        texts = [answer]  # the JSON answer is the whole reply
        if not calls and finish == "tool_calls":
            finish = "stop"
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if reasoning:
        message["reasoning_content"] = "\n\n".join(reasoning)
    if thinking:
        message["thinking_blocks"] = thinking
    if calls:
        message["tool_calls"] = calls
    return message, finish


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


class AnthropicMessages:
    name = "anthropic"
    inline_remote_images = False  # Anthropic fetches URL image sources itself

    def build_request(
        self, call: ChatCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        body = build_body(call, upstream_model)
        headers = {
            "content-type": "application/json",
            "anthropic-version": API_VERSION,
            **creds.headers,
        }
        if creds.api_key:
            headers["x-api-key"] = creds.api_key
        return UpstreamRequest("/v1/messages", headers, orjson.dumps(body))

    def parse_response(self, body: bytes) -> ChatResult:
        data = reply_object(body, lambda d: d.get("type") == "message")
        message, finish = hub_message(data.get("content"), data.get("stop_reason"))
        message.setdefault("refusal", None)
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish,
        }
        if isinstance(data.get("stop_sequence"), str):
            choice["stop_sequence"] = data["stop_sequence"]
        out: dict[str, Any] = {
            "id": str(data.get("id") or ""),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(data.get("model") or ""),
            "choices": [choice],
        }
        usage = hub_usage(data.get("usage"))
        if usage is not None:
            out["usage"] = usage
        return ChatResult(out, usage_from(usage))

    def stream_decoder(self) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        message = f"HTTP {status}"
        kind = ""
        try:
            error = orjson.loads(body).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            error = None
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            kind = str(error.get("type") or "")
        failure = failure_of(kind, status, message)
        return UpstreamError(
            failure, message, status=status, retry_after=_retry_after(headers), body=body
        )
