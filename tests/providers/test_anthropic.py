"""The Anthropic Messages adapter against hand-written wire fixtures (no network)."""

from __future__ import annotations

import copy
import itertools
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from faregate.errors import BadRequest, FailureClass, UpstreamError
from faregate.providers.anthropic import AnthropicMessages
from faregate.providers.anthropic_request import JSON_OBJECT_INSTRUCTION
from faregate.providers.base import ChatCall, Credentials, StreamEvent
from faregate.providers.registry import chat_protocol

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anthropic"
CREDS = Credentials("https://api.anthropic.test", "sk-ant-up", {"anthropic-beta": "x"})
ADAPTER = AnthropicMessages()
USER = [{"role": "user", "content": "hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def _call(body: dict[str, Any], max_output: int | None = None, stream: bool = False) -> ChatCall:
    return ChatCall("public", body, stream, stream, max_output, "req_1")


def sent(body: dict[str, Any], max_output: int | None = None, stream: bool = False) -> Any:
    call = _call({"model": "public", "messages": USER, **body}, max_output, stream)
    return orjson.loads(ADAPTER.build_request(call, "claude-up", CREDS).body)


def refused(body: dict[str, Any], max_output: int | None = None) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        sent(body, max_output)
    return info.value


# -- requests ------------------------------------------------------------------------------


def test_the_registry_serves_this_adapter() -> None:
    adapter = chat_protocol("anthropic")
    assert isinstance(adapter, AnthropicMessages)
    assert adapter.name == "anthropic" and adapter.inline_remote_images is False


def test_build_request_matches_the_recorded_wire_request() -> None:
    case = fixture("request_tool_turn.json")
    hub = case["hub"]
    before = copy.deepcopy(hub)
    call = _call(hub, hub["max_tokens"], stream=True)
    req = ADAPTER.build_request(call, "claude-sonnet-4-5", CREDS)
    assert req.path == "/v1/messages"
    assert req.headers == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "x",
        "x-api-key": "sk-ant-up",
    }
    assert orjson.loads(req.body) == case["anthropic"]
    assert hub == before  # the hub body is not modified


def test_max_tokens_defaults_and_plain_system_is_a_string() -> None:
    body = sent({"messages": [{"role": "system", "content": "Be brief"}, *USER]})
    assert body["max_tokens"] == 4096
    assert body["system"] == "Be brief"
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert "stream" not in body and "metadata" not in body
    assert sent({}, max_output=77)["max_tokens"] == 77


def test_same_role_neighbours_merge_and_system_is_hoisted() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "system", "content": "late rule"},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
        {"role": "assistant", "content": ""},  # empty: left out
        {"role": "user", "content": "c"},
    ]
    body = sent({"messages": messages, "stop": "STOP"})
    assert body["system"] == "late rule"
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert [b["text"] for b in body["messages"][0]["content"]] == ["a", "b", "c"]
    assert body["stop_sequences"] == ["STOP"]


def test_pdf_file_data_becomes_a_document() -> None:
    part = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}
    body = sent({"messages": [{"role": "user", "content": [part]}]})
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        }
    ]


@pytest.mark.parametrize(
    ("body", "max_output", "budget", "max_tokens"),
    [
        ({"thinking_budget": 2000}, 5000, 2000, 5000),
        ({"thinking_budget": 2000}, None, 2000, 6096),
        ({"thinking_budget": 10}, 5000, 1024, 5000),  # raised to Anthropic's minimum
        ({"thinking_budget": -1}, None, 8192, 12288),  # dynamic: the medium budget
        ({"thinking_budget": 0}, 5000, None, 5000),  # off
        ({"thinking_level": "minimal"}, None, 1024, 5120),
        ({"thinking_level": "LOW"}, None, 2048, 6144),
        ({"thinking_level": "medium"}, None, 8192, 12288),
        ({"thinking_level": "High"}, None, 16384, 20480),
        ({"reasoning_effort": "xhigh"}, None, 32768, 36864),
        ({"reasoning_effort": "none"}, None, None, 4096),
        ({"reasoning_effort": "high"}, 3000, 2999, 3000),  # a level is capped under max_tokens
        ({"thinking_level": "low", "reasoning_effort": "high"}, None, 2048, 6144),
        ({"thinking_budget": 1500, "thinking_level": "high"}, None, 1500, 5596),
    ],
)
def test_thinking_budgets(
    body: dict[str, Any], max_output: int | None, budget: int | None, max_tokens: int
) -> None:
    out = sent(body, max_output)
    assert out["max_tokens"] == max_tokens
    expected = None if budget is None else {"type": "enabled", "budget_tokens": budget}
    assert out.get("thinking") == expected
    for hub_only in ("thinking_budget", "thinking_level", "reasoning_effort"):
        assert hub_only not in out


@pytest.mark.parametrize(
    ("body", "max_output", "param"),
    [
        ({"thinking_budget": 4000}, 4000, "thinking_budget"),
        ({"thinking_level": "low"}, 1000, "max_tokens"),
        ({"thinking_level": "extreme"}, None, "thinking_level"),
        ({"reasoning_effort": 3}, None, "reasoning_effort"),
        ({"thinking_budget": "lots"}, None, "thinking_budget"),
    ],
)
def test_thinking_that_cannot_fit_is_refused(
    body: dict[str, Any], max_output: int | None, param: str
) -> None:
    err = refused(body, max_output)
    assert err.status == 400 and err.param == param


def test_sampling_and_user() -> None:
    body = sent({"temperature": 0.3, "top_p": 0.9, "top_k": 40, "user": "u-1", "metadata": {}})
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.3, 0.9, 40)
    assert body["metadata"] == {"user_id": "u-1"}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (None, None, None),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: Any) -> None:
    body = sent({"tools": TOOLS, "tool_choice": choice, "parallel_tool_calls": parallel})
    assert body.get("tool_choice") == expected
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]


def test_tool_choice_without_tools() -> None:
    assert "tool_choice" not in sent({"tool_choice": "none"})
    assert refused({"tool_choice": "required"}).param == "tool_choice"


def test_json_object_is_a_forced_answer_tool() -> None:
    body = sent({"response_format": {"type": "json_object"}})
    assert body["tools"][0]["name"] == "json_response"
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    assert body["tool_choice"]["type"] == "tool"
    assert "system" not in body


def test_json_object_with_thinking_is_asked_in_words() -> None:
    body = sent(
        {"response_format": {"type": "json_object"}, "thinking_budget": 1024},
        max_output=4000,
    )
    assert body["system"] == JSON_OBJECT_INSTRUCTION
    assert "tools" not in body


def test_json_schema_is_a_forced_answer_tool() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
    body = sent({"response_format": fmt})
    assert body["tools"][0]["name"] == "json_response"
    assert body["tools"][0]["input_schema"] == SCHEMA
    assert "person" in body["tools"][0]["description"]
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "json_response",
        "disable_parallel_tool_use": True,
    }


def test_json_schema_with_tools_lets_the_model_choose() -> None:
    fmt = {"type": "json_schema", "json_schema": {"schema": SCHEMA}}
    body = sent({"response_format": fmt, "tools": TOOLS})
    assert [t["name"] for t in body["tools"]] == ["get_weather", "json_response"]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    forced = sent({"response_format": fmt, "tools": TOOLS, "tool_choice": "required"})
    assert [t["name"] for t in forced["tools"]] == ["get_weather"]
    assert forced["tool_choice"] == {"type": "any"}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"thinking_level": "low"}, "response_format", "unsupported_feature"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "array"}},
                }
            },
            "response_format.json_schema.schema",
            "unsupported_feature",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "json_response"}}]},
            "tools",
            "invalid_value",
        ),
    ],
)
def test_json_schema_that_cannot_be_expressed(body: dict[str, Any], param: str, code: str) -> None:
    fmt = {"type": "json_schema", "json_schema": {"schema": SCHEMA}}
    err = refused({"response_format": fmt, **body}, 5000)
    assert (err.param, err.code) == (param, code)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"seed": 7}, "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": -1}, "frequency_penalty"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"safety_settings": [{"category": "HARM", "threshold": "BLOCK_NONE"}]}, "safety_settings"),
        ({"response_modalities": ["TEXT", "IMAGE"]}, "response_modalities"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"store": True}, "store"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"prediction": {"type": "content"}}, "prediction"),
        ({"n": True}, "n"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        (
            {"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/bmp;base64,Qk0="},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url",
        ),
    ],
)
def test_unsupported_features_are_named(body: dict[str, Any], param: str) -> None:
    err = refused(body)
    assert err.status == 400
    assert err.code == "unsupported_feature"
    assert err.param == param
    assert "not supported by Anthropic" in err.message


def test_neutral_values_of_unsupported_fields_pass() -> None:
    body = sent(
        {
            "n": 1,
            "logprobs": False,
            "presence_penalty": 0,
            "safety_settings": [],
            "response_modalities": ["TEXT"],
            "store": False,
            "service_tier": "auto",
            "stream_options": {"include_usage": True},
            "seed": None,
        }
    )
    assert set(body) == {"model", "max_tokens", "messages"}


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            {
                "role": "assistant",
                "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{oops"}}],
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]},
            "messages[0].tool_calls[0]",
        ),
        ({"role": "tool", "content": "x"}, "messages[0].tool_call_id"),
        (
            {"role": "assistant", "thinking_blocks": [{"type": "thinking"}]},
            "messages[0].thinking_blocks[0]",
        ),
        (
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "data:image/png,xyz"}}],
            },
            "messages[0].content[0].image_url",
        ),
        ({"role": "critic", "content": "x"}, "messages[0].role"),
    ],
)
def test_malformed_messages_are_400s(message: dict[str, Any], param: str) -> None:
    err = refused({"messages": [message]})
    assert err.status == 400 and err.param == param


# -- replies -------------------------------------------------------------------------------


def test_parse_text_response_and_usage() -> None:
    result = ADAPTER.parse_response((FIXTURES / "response_text.json").read_bytes())
    body = result.body
    assert body["object"] == "chat.completion"
    assert body["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert body["model"] == "claude-sonnet-4-5-20250929"
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Hello! The sea covers about 71% of the Earth.",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    assert choice["stop_sequence"] == "\n\nHuman:"
    assert body["usage"]["prompt_tokens"] == 12 + 100 + 2048
    assert body["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 2048,
        "cache_write_tokens": 100,
    }
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.cached_tokens) == (2160, 2048)
    assert (result.usage.completion_tokens, result.usage.reasoning_tokens) == (14, 0)
    assert result.raw is None


def test_parse_thinking_and_tool_use() -> None:
    result = ADAPTER.parse_response((FIXTURES / "response_tool_use.json").read_bytes())
    choice = result.body["choices"][0]
    message = choice["message"]
    assert choice["finish_reason"] == "tool_calls"
    assert message["content"] == "I'll check the weather."
    assert message["reasoning_content"].startswith("The user wants the weather")
    assert [b["type"] for b in message["thinking_blocks"]] == ["thinking", "redacted_thinking"]
    assert message["thinking_blocks"][0]["signature"].startswith("EqQB")
    calls = message["tool_calls"]
    assert [c["id"] for c in calls] == [
        "toolu_01A09q90qw90lq917835lq9",
        "toolu_01B7Hn2m3k4j5h6g7f8d9s0a",
    ]
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert calls[1]["function"] == {"name": "get_time", "arguments": "{}"}
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (472, 91)
    assert result.usage.reasoning_tokens == 40


def test_parse_json_answer_tool_as_text() -> None:
    result = ADAPTER.parse_response((FIXTURES / "response_json_answer.json").read_bytes())
    choice = result.body["choices"][0]
    assert orjson.loads(choice["message"]["content"]) == {"name": "Ada", "age": 36}
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"


def test_parse_refusal() -> None:
    result = ADAPTER.parse_response((FIXTURES / "response_refusal.json").read_bytes())
    choice = result.body["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] is None


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
    ],
)
def test_stop_reasons(stop_reason: str | None, finish: str) -> None:
    body = {"type": "message", "content": [], "stop_reason": stop_reason, "usage": {}}
    result = ADAPTER.parse_response(orjson.dumps(body))
    assert result.body["choices"][0]["finish_reason"] == finish
    assert result.usage is None  # a usage without its two counts is no usage


@pytest.mark.parametrize("raw", [b"not json", b'{"type": "error", "error": {}}', b"[]"])
def test_unexpected_bodies_are_transient(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        ADAPTER.parse_response(raw)
    assert info.value.failure is FailureClass.TRANSIENT


@pytest.mark.parametrize("case", fixture("errors.json"), ids=lambda c: c["name"])
def test_classify_error(case: dict[str, Any]) -> None:
    body = case["body"]
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    err = ADAPTER.classify_error(case["status"], case["headers"], raw)
    assert err.failure.value == case["failure"]
    assert err.status == case["status"]
    assert err.retry_after == case.get("retry_after")
    assert err.body == raw
    if isinstance(body, dict):
        assert err.message == body["error"]["message"]


# -- streams -------------------------------------------------------------------------------


def decode(raw: bytes, splits: list[int] | None = None) -> list[StreamEvent]:
    decoder = ADAPTER.stream_decoder()
    cuts = [0, *(splits or []), len(raw)]
    events: list[StreamEvent] = []
    for start, end in itertools.pairwise(cuts):
        events += decoder.feed(raw[start:end])
    return events


def _comparable(events: list[StreamEvent]) -> list[Any]:
    out = []
    for e in events:
        data = None if e.data is None else {k: v for k, v in e.data.items() if k != "created"}
        out.append((data, e.text, e.usage, e.is_usage_only, e.finish_reason))
    return out


def _deltas(events: list[StreamEvent]) -> list[dict[str, Any]]:
    return [e.data["choices"][0]["delta"] for e in events if e.data and e.data["choices"]]


def test_stream_with_thinking_and_tool_use() -> None:
    events = decode((FIXTURES / "stream_thinking_tool_use.sse").read_bytes())
    deltas = _deltas(events)
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert all(e.raw is None for e in events)
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert reasoning == "The user asks about Paris. I will call get_weather."
    blocks = [b for d in deltas for b in d.get("thinking_blocks", ())]
    assert blocks == [
        {
            "type": "thinking",
            "thinking": reasoning,
            "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
        }
    ]
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check the weather."
    calls = [c for d in deltas for c in d.get("tool_calls", ())]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Paris"}'
    finish, usage_event, end = events[-3:]
    assert finish.finish_reason == "tool_calls"
    assert usage_event.is_usage_only and usage_event.data is not None
    assert usage_event.data["choices"] == []
    assert usage_event.usage is not None
    assert usage_event.usage.prompt_tokens == 472 + 256
    assert usage_event.usage.cached_tokens == 256
    assert usage_event.usage.completion_tokens == 89
    assert end.data is None
    assert all(e.data is None or e.data["id"] == "msg_01StreamThinkTool00000" for e in events)
    text = "".join(e.text for e in events)
    assert "Let me check the weather." in text and "get_weather" in text and "Paris" in text


@pytest.mark.parametrize("name", ["stream_thinking_tool_use.sse", "stream_text_stop_sequence.sse"])
@pytest.mark.parametrize("seed", range(12))
def test_stream_decoder_is_split_proof(name: str, seed: int) -> None:
    raw = (FIXTURES / name).read_bytes()
    whole = _comparable(decode(raw))
    rng = random.Random(seed)
    if seed == 0:
        splits = list(range(1, len(raw)))  # one byte at a time
    else:
        splits = sorted(rng.sample(range(1, len(raw)), rng.randint(1, 40)))
    assert _comparable(decode(raw, splits)) == whole
    crlf = raw.replace(b"\n", b"\r\n")
    cut = len(crlf) // 3
    cut += crlf[cut - 1 : cut] == b"\r"  # keep each CRLF pair within one chunk
    assert _comparable(decode(crlf, [cut])) == whole


def test_stream_cumulative_usage_and_stop_sequence() -> None:
    events = decode((FIXTURES / "stream_text_stop_sequence.sse").read_bytes())
    assert "".join(d.get("content") or "" for d in _deltas(events)) == "Hello world"
    finish = next(e for e in events if e.finish_reason)
    assert finish.finish_reason == "stop"
    assert finish.data is not None and finish.data["choices"][0]["stop_sequence"] == "END"
    usage = next(e.usage for e in events if e.usage)
    assert usage is not None
    # message_delta counts are cumulative and replace message_start's (20 -> 12 + 8 cached)
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (20, 8, 5)
    assert events[-1].data is None


def test_stream_first_event_carries_the_upstream_prompt_usage() -> None:
    events = decode((FIXTURES / "stream_thinking_tool_use.sse").read_bytes())
    assert events[0].prompt_usage is not None
    assert events[0].prompt_usage["prompt_tokens"] == 472 + 256
    assert events[0].prompt_usage["prompt_tokens_details"] == {
        "cached_tokens": 256,
        "cache_write_tokens": 0,
    }
    assert all(e.prompt_usage is None for e in events[1:])
    bare = {"type": "message_start", "message": {"id": "msg_1", "model": "c"}}
    assert decode(_sse(bare))[0].prompt_usage is None


def test_stream_error_event_raises() -> None:
    raw = (FIXTURES / "stream_overloaded.sse").read_bytes()
    head, _, _ = raw.partition(b"event: error")
    assert [d.get("content") for d in _deltas(decode(head))][-1] == "Hello"
    with pytest.raises(UpstreamError) as info:
        decode(raw)
    assert info.value.failure is FailureClass.TRANSIENT
    assert info.value.status == 529
    assert info.value.message == "Overloaded"


@pytest.mark.parametrize(
    ("kind", "failure"),
    [
        ("rate_limit_error", FailureClass.RATE_LIMIT),
        ("api_error", FailureClass.TRANSIENT),
        ("invalid_request_error", FailureClass.TRANSIENT),
        ("billing_error", FailureClass.QUOTA),
    ],
)
def test_stream_error_types(kind: str, failure: FailureClass) -> None:
    raw = b'event: error\ndata: {"type":"error","error":{"type":"' + kind.encode() + b'"}}\n\n'
    with pytest.raises(UpstreamError) as info:
        decode(raw)
    assert info.value.failure is failure


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


START = {
    "type": "message_start",
    "message": {"id": "msg_1", "model": "c", "usage": {"input_tokens": 5, "output_tokens": 1}},
}


def test_stream_json_answer_and_missing_usage() -> None:
    raw = _sse(
        START,
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t", "name": "json_response", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"a": '},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": "1}"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
        {"type": "message_stop"},
    )
    events = decode(raw)
    deltas = _deltas(events)
    assert "".join(d.get("content") or "" for d in deltas) == '{"a": 1}'
    assert not any("tool_calls" in d for d in deltas)
    assert [e.finish_reason for e in events if e.finish_reason] == ["stop"]
    assert not any(e.usage for e in events)  # no usage in message_delta: none reported
    assert events[-1].data is None


def test_stream_redacted_thinking_and_unknown_blocks() -> None:
    raw = _sse(
        START,
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "redacted_thinking", "data": "opaque"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "server_tool_use", "id": "s", "name": "web_search"},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
    )
    deltas = _deltas(decode(raw))
    assert deltas[1] == {"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}]}
    assert len(deltas) == 3  # role chunk, redacted block, finish
