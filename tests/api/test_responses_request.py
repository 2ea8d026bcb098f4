"""Responses requests into the hub call: items, tools, formats, and the refusals."""

from __future__ import annotations

from typing import Any

import pytest

from faregate.api.responses_request import to_request
from faregate.errors import BadRequest

RID = "req_0123456789abcdef01234567"


def _hub(body: dict[str, Any], prefix: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return to_request({"model": "m", **body}, RID, prefix).call.body


def test_string_input_and_instructions() -> None:
    parsed = to_request({"model": "m", "input": "Hi", "instructions": "Be brief."}, RID)
    assert parsed.call.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ]
    [item] = parsed.items
    assert item["type"] == "message"
    assert item["content"] == [{"type": "input_text", "text": "Hi"}]
    assert item["id"] == "msg_0123456789abcdef01234567_0"
    assert parsed.store is True
    assert parsed.call.api == "responses"
    assert "previous_response_id" not in parsed.call.native


def test_items_become_messages_with_tool_calls_and_results() -> None:
    hub = _hub(
        {
            "input": [
                {"role": "developer", "content": "Rules."},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Look"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAA"},
                    ],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "two"}],
                },
            ]
        }
    )
    messages = hub["messages"]
    assert messages[0] == {"role": "system", "content": "Rules."}
    assert messages[1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAA"},
    }
    assert [c["id"] for c in messages[2]["tool_calls"]] == ["c1", "c2"]
    assert messages[3:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]


def test_previous_items_come_first_and_their_calls_count() -> None:
    prefix = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Q"}]},
        {"type": "function_call", "call_id": "c9", "name": "f", "arguments": "{}", "id": "fc_1"},
    ]
    hub = _hub(
        {"input": [{"type": "function_call_output", "call_id": "c9", "output": "ok"}]}, prefix
    )
    assert [m["role"] for m in hub["messages"]] == ["user", "assistant", "tool"]


def test_tools_formats_and_settings() -> None:
    parsed = to_request(
        {
            "model": "m",
            "input": "Hi",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"},
            "parallel_tool_calls": False,
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
            "reasoning": {"effort": "low"},
            "max_output_tokens": 100,
            "temperature": 0.5,
            "top_p": 0.9,
            "metadata": {"a": "b"},
            "store": False,
            "include": ["reasoning.encrypted_content"],
        },
        RID,
    )
    hub = parsed.call.body
    assert hub["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]
    assert hub["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert hub["parallel_tool_calls"] is False
    assert hub["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object"}},
    }
    assert hub["reasoning_effort"] == "low"
    assert hub["max_tokens"] == parsed.call.max_output == 100
    assert (hub["temperature"], hub["top_p"]) == (0.5, 0.9)
    assert "metadata" not in hub
    assert parsed.echo["metadata"] == {"a": "b"}
    assert parsed.store is False
    assert parsed.echo["tools"][0]["strict"] is True


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": [{"type": "web_search_call"}]}, "input[0].type", "unsupported_item_type"),
        (
            {"input": [{"type": "item_reference", "id": "x"}]},
            "input[0].type",
            "unsupported_item_type",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]},
            "input[0].call_id",
            "unknown_call_id",
        ),
        (
            {"input": "x", "tools": [{"type": "file_search"}]},
            "tools[0].type",
            "unsupported_tool_type",
        ),
        ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type", "invalid_value"),
        ({"input": "x", "reasoning": {"effort": "max"}}, "reasoning.effort", "invalid_value"),
        ({"input": "x", "temperature": 3}, "temperature", "invalid_value"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens", "invalid_value"),
        ({"input": "x", "background": True}, "background", "unsupported_parameter"),
        ({"input": "x", "conversation": "c"}, "conversation", "unsupported_parameter"),
        ({"input": "x", "bogus": 1}, "bogus", "unknown_parameter"),
        ({}, "input", "missing_required_parameter"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "invalid_value"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
            "unsupported_parameter",
        ),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(BadRequest) as err:
        to_request({"model": "m", **body}, RID)
    assert err.value.param == param
    assert err.value.code == code
