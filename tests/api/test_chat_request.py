"""Chat request validation and alias normalization."""

from __future__ import annotations

from typing import Any

import pytest

from faregate.api.chat_request import normalize_aliases, parse_chat
from faregate.errors import BadRequest, ValidationFailed

BASE: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_minimal_request() -> None:
    call = parse_chat(dict(BASE), "r")
    assert (call.model, call.stream, call.include_usage, call.max_output) == (
        "m",
        False,
        False,
        None,
    )


def test_stream_with_usage_and_max_completion_tokens() -> None:
    call = parse_chat(
        {
            **BASE,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": 9,
            "max_tokens": 20,
        },
        "r",
    )
    assert call.stream and call.include_usage and call.max_output == 9


def test_stream_options_dropped_when_not_streaming() -> None:
    body = {**BASE, "stream_options": {"include_usage": True}}
    parse_chat(body, "r")
    assert "stream_options" not in body


def test_unknown_fields_pass_through() -> None:
    body = {**BASE, "vendor_knob": 3}
    assert parse_chat(body, "r").body["vendor_knob"] == 3


def test_multimodal_and_tool_messages_are_valid() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "x"},
                {"type": "image_url", "image_url": {"url": "data:,"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "42"},
    ]
    assert parse_chat({**BASE, "messages": messages}, "r").body["messages"] == messages


@pytest.mark.parametrize(
    ("patch", "error", "param"),
    [
        ({"max_tokens": "1"}, ValidationFailed, "max_tokens"),
        ({"max_tokens": True}, ValidationFailed, "max_tokens"),
        ({"n": 0}, BadRequest, "n"),
        ({"top_p": 1.5}, BadRequest, "top_p"),
        ({"tools": {}}, ValidationFailed, "tools"),
        ({"messages": [{"content": "x"}]}, BadRequest, "messages[0].role"),
    ],
)
def test_errors_name_the_field(
    patch: dict[str, Any], error: type[Exception], param: str | None
) -> None:
    with pytest.raises(error) as exc:
        parse_chat({**BASE, **patch}, "r")
    assert getattr(exc.value, "param", None) == param


def test_aliases() -> None:
    body = {
        **BASE,
        "thinkingLevel": "HIGH",
        "safetySettings": [{"category": "c"}],
        "responseModalities": ["TEXT"],
        "maxTokens": 5,
        "reasoningEffort": "low",
    }
    ignored = normalize_aliases(body)
    assert ignored == ["maxTokens", "reasoningEffort"]
    assert body["thinking_level"] == "HIGH"
    assert body["safety_settings"] == [{"category": "c"}]
    assert body["response_modalities"] == ["TEXT"]
    assert "maxTokens" not in body and "thinkingLevel" not in body


def test_canonical_name_wins_over_alias() -> None:
    body = {**BASE, "thinking_level": "LOW", "thinkingLevel": "HIGH"}
    normalize_aliases(body)
    assert body["thinking_level"] == "LOW"
