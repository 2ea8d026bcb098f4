"""The Anthropic client protocol: request translation to the hub, and rendering back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from faregate.api.anthropic_render import (
    StreamRenderer,
    anthropic_usage,
    error_event,
    render_message,
    stop_reason,
    tool_input,
)
from faregate.api.anthropic_request import to_call
from faregate.billing.types import Usage
from faregate.errors import BadRequest, RateLimited
from faregate.providers.anthropic import AnthropicMessages
from faregate.providers.base import StreamEvent
from faregate.providers.openai import usage_from

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anthropic"
BASE: dict[str, Any] = {
    "model": "claude-sim",
    "max_tokens": 300,
    "messages": [{"role": "user", "content": "Hello"}],
}
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def hub(**fields: Any) -> dict[str, Any]:
    return to_call({**BASE, **fields}, "req_abc").body


def refused(body: dict[str, Any], counting: bool = False) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        to_call(body, "req_abc", counting=counting)
    return info.value


# -- requests ------------------------------------------------------------------------------


def test_minimal_request() -> None:
    call = to_call(dict(BASE), "req_abc")
    assert call.body == {
        "model": "claude-sim",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    assert (call.model, call.stream, call.max_output, call.request_id) == (
        "claude-sim",
        False,
        300,
        "req_abc",
    )


def test_full_request_translation() -> None:
    image = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    body = {
        **BASE,
        "max_tokens": 3000,
        "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image", "source": image},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVB=",
                        },
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Need a tool.", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    },
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "boom"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "And now?"},
                ],
            },
        ],
        "tools": [
            {**WEATHER, "cache_control": {"type": "ephemeral"}},
            {
                "name": "get_time",
                "input_schema": {"type": "object"},
                "strict": True,
                "type": "custom",
            },
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u-7"},
        "stop_sequences": ["END", "STOP"],
        "temperature": 1,
        "top_p": 0.95,
        "top_k": 5,
        "stream": True,
    }
    call = to_call(body, "req_abc")
    assert call.stream and call.include_usage and call.max_output == 3000
    out = call.body
    assert out["messages"] == [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                {
                    "type": "file",
                    "file": {
                        "filename": "document.pdf",
                        "file_data": "data:application/pdf;base64,JVB=",
                    },
                },
                {"type": "text", "text": "notes"},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
            "thinking_blocks": [
                {"type": "thinking", "thinking": "Need a tool.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
            ],
            "reasoning_content": "Need a tool.",
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"},
        {
            "role": "tool",
            "tool_call_id": "toolu_2",
            "content": [{"type": "text", "text": "boom"}],
            "is_error": True,
        },
        {"role": "user", "content": [{"type": "text", "text": "And now?"}]},
    ]
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["input_schema"],
            },
            "cache_control": {"type": "ephemeral"},
        },
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object"}, "strict": True},
        },
    ]
    assert out["tool_choice"] == "auto" and out["parallel_tool_calls"] is False
    assert out["thinking_budget"] == 1024
    assert out["user"] == "u-7"
    assert out["stop"] == ["END", "STOP"]
    assert (out["temperature"], out["top_p"], out["top_k"]) == (1, 0.95, 5)
    assert out["stream"] is True


def test_tool_results_alone_make_no_empty_user_message() -> None:
    messages = [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
    ]
    assert hub(messages=messages)["messages"][1:] == [
        {"role": "tool", "tool_call_id": "t", "content": ""}
    ]


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "none", "disable_parallel_tool_use": True}, "none", None),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
            None,
        ),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any, parallel: bool | None) -> None:
    out = hub(tools=[WEATHER], tool_choice=choice)
    assert out["tool_choice"] == expected
    assert out.get("parallel_tool_calls") == parallel


@pytest.mark.parametrize(
    ("thinking", "budget"),
    [
        ({"type": "enabled", "budget_tokens": 2000}, 2000),
        ({"type": "adaptive"}, -1),
        ({"type": "disabled"}, 0),
    ],
)
def test_thinking(thinking: dict[str, Any], budget: int) -> None:
    assert hub(max_tokens=4000, thinking=thinking)["thinking_budget"] == budget


def test_output_format_becomes_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    out = hub(output_config={"format": {"type": "json_schema", "schema": schema}})
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


def test_count_tokens_body_needs_no_max_tokens() -> None:
    call = to_call(
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}, "r", counting=True
    )
    assert call.max_output is None and "max_tokens" not in call.body
    assert refused({**BASE, "stream": True}, counting=True).param == "max_tokens"


@pytest.mark.parametrize(
    ("body", "param", "text"),
    [
        ({"max_tokens": None}, "max_tokens", "Field required"),
        ({"model": None}, "model", "Field required"),
        ({"messages": None}, "messages", "Field required"),
        ({"model": 5}, "model", "valid string"),
        ({"max_tokens": "10"}, "max_tokens", "valid integer"),
        ({"max_tokens": True}, "max_tokens", "valid integer"),
        ({"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"messages": {"role": "user"}}, "messages", "valid list"),
        ({"messages": []}, "messages", "at least one message"),
        ({"messages": ["hi"]}, "messages.0", "valid dictionary"),
        (
            {"messages": [{"role": "system", "content": "x"}]},
            "messages.0.role",
            "'user' or 'assistant'",
        ),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages.0.content",
            "valid string or list",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_use"}]}]},
            "messages.0.content.0.type",
            "does not match",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "tool_result"}]}]},
            "messages.0.content.0.type",
            "does not match",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]},
            "messages.0.content.0.text",
            "valid string",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}],
                    }
                ]
            },
            "messages.0.content.0.input",
            "valid dictionary",
        ),
        ({"system": 3}, "system", "valid string or list"),
        ({"system": [{"type": "image"}]}, "system.0.type", "'text'"),
        ({"temperature": 1.5}, "temperature", "between 0 and 1"),
        ({"temperature": "hot"}, "temperature", "valid number"),
        ({"top_k": -1}, "top_k", "non-negative"),
        ({"stop_sequences": "END"}, "stop_sequences", "valid list"),
        ({"stop_sequences": [1]}, "stop_sequences.0", "valid string"),
        ({"stream": "yes"}, "stream", "valid boolean"),
        ({"metadata": {"trace": "x"}}, "metadata.trace", "Extra inputs"),
        ({"metadata": {"user_id": 1}}, "metadata.user_id", "valid string"),
        ({"tools": {"name": "x"}}, "tools", "valid list"),
        ({"tools": [{"name": "x"}]}, "tools.0.input_schema", "valid dictionary"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type", "'auto', 'any'"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name", "valid string"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens", "1024"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "max_tokens", "greater than"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type", "'enabled'"),
        ({"frequency_penalty": 1}, "frequency_penalty", "Extra inputs"),
        (
            {"output_config": {"format": {"type": "xml"}}},
            "output_config.format.type",
            "json_schema",
        ),
    ],
)
def test_invalid_requests_name_the_field(body: dict[str, Any], param: str, text: str) -> None:
    err = refused({**BASE, **body})
    assert err.status == 400 and err.type == "invalid_request_error"
    assert err.param == param
    assert err.message.startswith(f"{param}: ") and text in err.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"container": "c"}, "container"),
        ({"mcp_servers": []}, "mcp_servers"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            },
            "messages.0.content.0.source.type",
        ),
        ({"output_config": {"effort": "low"}}, "output_config.effort"),
    ],
)
def test_unsupported_features_are_named(body: dict[str, Any], param: str) -> None:
    err = refused({**BASE, **body})
    assert (err.status, err.code, err.param) == (400, "unsupported_feature", param)


# -- replies -------------------------------------------------------------------------------


def test_anthropic_usage_arithmetic() -> None:
    usage = Usage(prompt_tokens=2160, completion_tokens=14, cached_tokens=2048, reasoning_tokens=4)
    hub_usage = {"prompt_tokens_details": {"cached_tokens": 2048, "cache_write_tokens": 100}}
    assert anthropic_usage(usage, hub_usage) == {
        "input_tokens": 12,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 2048,
        "output_tokens": 14,
        "output_tokens_details": {"thinking_tokens": 4},
    }
    assert anthropic_usage(Usage(10, 5)) == {
        "input_tokens": 10,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 5,
    }


def test_render_round_trips_an_anthropic_reply() -> None:
    raw = (FIXTURES / "response_tool_use.json").read_bytes()
    result = AnthropicMessages().parse_response(raw)
    assert result.usage is not None
    message = render_message(result.body, result.usage, "claude-sim", "req_abc")
    original = orjson.loads(raw)
    assert message["content"] == original["content"]
    for name in ("id", "type", "role", "model", "stop_reason", "stop_sequence"):
        assert message[name] == original[name]
    assert message["usage"] == {
        **original["usage"],
        "output_tokens_details": {"thinking_tokens": 40},
    }


def test_render_an_openai_reply() -> None:
    reply = {
        "id": "chatcmpl-1",
        "model": "",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "Sure."}],
                    "reasoning_content": "thinking out loud",
                    "tool_calls": [
                        {"id": "call_1", "function": {"name": "f", "arguments": '{"x": 1}'}},
                        {"id": "", "function": {"name": "g", "arguments": "not json"}},
                    ],
                },
            }
        ],
    }
    message = render_message(reply, Usage(9, 8), "sim-small", "req_abc")
    assert message["id"] == "msg_abc"
    assert message["model"] == "sim-small"
    assert message["content"] == [
        {"type": "thinking", "thinking": "thinking out loud", "signature": ""},
        {"type": "text", "text": "Sure."},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 1}},
        {
            "type": "tool_use",
            "id": "toolu_req_abc_3",
            "name": "g",
            "input": {"_raw_arguments": "not json"},
        },
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["input_tokens"] == 9


@pytest.mark.parametrize(
    ("finish", "sequence", "reason"),
    [
        ("stop", None, "end_turn"),
        ("stop", "END", "stop_sequence"),
        ("length", None, "max_tokens"),
        ("tool_calls", None, "tool_use"),
        ("content_filter", None, "refusal"),
        (None, None, "end_turn"),
        ("weird", None, "end_turn"),
    ],
)
def test_stop_reason(finish: str | None, sequence: str | None, reason: str) -> None:
    assert stop_reason(finish, sequence) == reason


def test_tool_input() -> None:
    assert tool_input("") == {} and tool_input(None) == {}
    assert tool_input('{"a": [1]}') == {"a": [1]}
    assert tool_input("[1]") == {"_raw_arguments": "[1]"}


# -- streams -------------------------------------------------------------------------------


def parse_sse(chunks: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in b"".join(chunks).split(b"\n\n"):
        if not block:
            continue
        name_line, data_line = block.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        payload = orjson.loads(data_line[6:])
        assert payload["type"] == name_line[7:].decode()
        events.append((payload["type"], payload))
    return events


def render(
    events: list[StreamEvent], model: str = "claude-sim"
) -> list[tuple[str, dict[str, Any]]]:
    renderer = StreamRenderer(model, "req_abc", 42)
    out: list[bytes] = []
    for event in events:
        if event.data is None:
            break
        out += renderer.feed(event)
    return parse_sse(out + renderer.end())


def accumulate(events: list[tuple[str, dict[str, Any]]]) -> Any:
    snapshot = None
    bufs: dict[int, bytes] = {}
    for name, payload in events:
        if name != "ping":
            snapshot = accumulate_event(event=payload, current_snapshot=snapshot, json_bufs=bufs)  # type: ignore[arg-type]
    return snapshot


def test_stream_round_trips_an_anthropic_stream() -> None:
    raw = (FIXTURES / "stream_thinking_tool_use.sse").read_bytes()
    hub_events = AnthropicMessages().stream_decoder().feed(raw)
    events = render(hub_events)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["id"] == "msg_01StreamThinkTool00000"
    # message_start carries the upstream's own prompt usage, not the gateway's estimate (42)
    assert events[0][1]["message"]["usage"] == {
        "input_tokens": 472,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 256,
        "output_tokens": 2,
    }
    message = accumulate(events)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "The user asks about Paris. I will call get_weather."
    assert message.content[0].signature.startswith("EqQB")
    assert message.content[1].text == "Let me check the weather."
    assert message.content[2].id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert message.content[2].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (
        472,
        256,
        89,
    )


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> StreamEvent:
    choice = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
    return StreamEvent(
        {"id": "chatcmpl-9", "model": "sim-small", "choices": [choice]}, None, finish_reason=finish
    )


def test_stream_from_openai_chunks() -> None:
    usage = {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 10},
    }
    hub_events = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "hmm"}),
        _chunk({"reasoning_content": " ok"}),
        _chunk({"content": "Calling."}),
        _chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_a", "function": {"name": "f", "arguments": ""}}
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
        _chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}
                ]
            }
        ),
        _chunk({}, "tool_calls"),
        StreamEvent(
            {"id": "chatcmpl-9", "choices": [], "usage": usage},
            None,
            usage_from(usage),
            is_usage_only=True,
        ),
        StreamEvent(None),
    ]
    events = render(hub_events)
    starts = [p["content_block"]["type"] for n, p in events if n == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use", "tool_use"]
    stops = [p["index"] for n, p in events if n == "content_block_stop"]
    assert stops == [0, 1, 2, 3]
    message = accumulate(events)
    assert message.id == "msg_abc" and message.model == "sim-small"
    assert message.content[0].thinking == "hmm ok" and message.content[0].signature == ""
    assert message.content[2].input == {"x": 1}
    assert message.content[3].name == "g" and message.content[3].input == {}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (20, 10)
    assert message.usage.output_tokens == 12


def test_stream_stop_sequence_and_thinking_blocks_without_text() -> None:
    hub_events = [
        _chunk({"thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}]}),
        _chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": "d"}]}),
        _chunk({"content": "Hi"}),
        _chunk({}, "stop", stop_sequence="END"),
    ]
    events = render(hub_events)
    message = accumulate(events)
    assert [b.type for b in message.content] == ["thinking", "redacted_thinking", "text"]
    assert (message.content[0].thinking, message.content[0].signature) == ("t", "s")
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "END"
    # no usage came: the output is unknown here (the pipeline bills its estimate)
    assert message.usage.input_tokens == 42


def test_empty_stream_still_opens_and_closes() -> None:
    names = [name for name, _ in render([])]
    assert names == ["message_start", "ping", "message_delta", "message_stop"]


def test_error_event() -> None:
    ((name, payload),) = parse_sse([error_event(RateLimited("slow down"))])
    assert name == "error"
    assert payload["type"] == "error"
    assert payload["error"] == {"type": "rate_limit_error", "message": "slow down"}
