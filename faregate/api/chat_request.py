"""The OpenAI chat request: validated field by field, aliases normalized, the rest passed on."""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from faregate.errors import BadRequest, ValidationFailed
from faregate.providers.base import ChatCall

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _Message(msgspec.Struct):
    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class _Chat(msgspec.Struct):
    """Types of the fields the gateway reads or that upstreams are strict about; any other
    field is passed to the upstream unchanged."""

    model: str
    messages: list[_Message]
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    response_modalities: list[str] | None = None
    thinking_level: str | None = None
    safety_settings: list[dict[str, Any]] | None = None


_MISSING = re.compile(r"Object missing required field `(\w+)`")

# Gemini-oriented camelCase names accepted on chat routes, and their canonical names.
ALIASES = {
    "responseModalities": "response_modalities",
    "thinkingLevel": "thinking_level",
    "safetySettings": "safety_settings",
}

# camelCase names that are not normalized on chat routes: removed, and named in a header.
IGNORED_CAMEL = ("maxTokens", "topP", "toolChoice", "responseFormat", "reasoningEffort")

_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "n": (1, 128),
    "max_tokens": (1, 10_000_000),
    "max_completion_tokens": (1, 10_000_000),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
    "top_logprobs": (0, 20),
}


def normalize_aliases(body: dict[str, Any]) -> list[str]:
    """Rename accepted aliases in place; drop the camelCase fields that are not normalized and
    return their names."""
    for alias, canonical in ALIASES.items():
        if alias in body:
            value = body.pop(alias)
            body.setdefault(canonical, value)
    return [name for name in IGNORED_CAMEL if body.pop(name, None) is not None]


def parse_chat(body: dict[str, Any], request_id: str) -> ChatCall:
    """Validate `body` (400 for missing or out-of-range fields, 422 for wrong types)."""
    if "model" not in body:
        raise BadRequest("You must provide a model parameter.", code="missing_model", param="model")
    if "messages" not in body:
        raise BadRequest(
            "Missing required parameter: 'messages'.", code="missing_messages", param="messages"
        )
    try:
        chat = msgspec.convert(body, _Chat)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = text.rsplit("`$.", 1)[-1].rstrip("`") if "`$." in text else None
        missing = _MISSING.match(text)
        if missing:  # a required field of a nested object: a bad request, not a bad type
            field = f"{param}.{missing[1]}" if param else missing[1]
            raise BadRequest(
                f"Missing required parameter: '{field}'.", code="missing_field", param=field
            ) from None
        raise ValidationFailed(f"Invalid request: {text}", param=param) from None
    if not chat.messages:
        raise BadRequest(
            "'messages' must contain at least one message.",
            code="empty_messages",
            param="messages",
        )
    for name, (low, high) in _RANGES.items():
        value = getattr(chat, name)
        if value is not None and not low <= value <= high:
            raise BadRequest(
                f"Invalid '{name}': {value} is outside the range {low} to {high}.",
                code="invalid_value",
                param=name,
            )
    if chat.stop is not None and isinstance(chat.stop, list) and len(chat.stop) > 4:
        raise BadRequest("'stop' takes at most 4 sequences.", code="invalid_value", param="stop")
    stream = bool(chat.stream)
    options = chat.stream_options or {}
    if not stream:
        body.pop("stream_options", None)
    return ChatCall(
        model=chat.model,
        body=body,
        stream=stream,
        include_usage=stream and bool(options.get("include_usage")),
        max_output=chat.max_completion_tokens or chat.max_tokens,
        request_id=request_id,
    )
