"""The OpenAI protocol adapter against recorded wire fixtures."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from faregate.errors import FailureClass, UpstreamError
from faregate.providers.base import ChatCall, Credentials
from faregate.providers.openai import OpenAIChat

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai"
CREDS = Credentials("https://api.example.test/v1", "sk-up", {"x-org": "o"})
ADAPTER = OpenAIChat()


def _call(body: dict[str, object], stream: bool = False) -> ChatCall:
    return ChatCall("public", body, stream, False, None, "req_1")


def test_build_request_renames_model_and_keeps_every_parameter() -> None:
    body = {
        "model": "public",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "seed": 3,
        "logit_bias": {"50256": -100},
        "vendor_specific": {"a": 1},
    }
    req = ADAPTER.build_request(_call(body), "gpt-4o-2024", CREDS)
    sent = orjson.loads(req.body)
    assert sent == {**body, "model": "gpt-4o-2024"}
    assert req.path == "/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-up"
    assert req.headers["x-org"] == "o"
    assert body["model"] == "public"  # the client's body is not modified


def test_streams_always_ask_for_usage() -> None:
    body = {"model": "m", "messages": [], "stream": True, "stream_options": {"x": 1}}
    sent = orjson.loads(ADAPTER.build_request(_call(body, True), "m", CREDS).body)
    assert sent["stream_options"] == {"x": 1, "include_usage": True}


def test_thinking_level_becomes_reasoning_effort() -> None:
    body = {"model": "m", "messages": [], "thinking_level": "LOW", "response_modalities": ["TEXT"]}
    sent = orjson.loads(ADAPTER.build_request(_call(body), "m", CREDS).body)
    assert sent["reasoning_effort"] == "low"
    assert "thinking_level" not in sent
    assert "response_modalities" not in sent and "modalities" not in sent


def test_parse_response_reads_usage() -> None:
    raw = (FIXTURES / "response_text.json").read_bytes()
    result = ADAPTER.parse_response(raw)
    assert result.raw == raw
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (14, 2)


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"object": "x"}'])
def test_parse_response_refuses_garbage(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as err:
        ADAPTER.parse_response(raw)
    assert err.value.failure is FailureClass.TRANSIENT


@pytest.mark.parametrize("split", [1, 7, 64, 10_000])
def test_stream_decoder_any_chunking(split: int) -> None:
    raw = (FIXTURES / "stream_tool_calls.sse").read_bytes()
    decoder = ADAPTER.stream_decoder()
    events = []
    for i in range(0, len(raw), split):
        events += decoder.feed(raw[i : i + split])
    assert [e.data is None for e in events] == [False] * 5 + [True]
    assert "".join(e.text for e in events) == 'get_weather{"city":"Paris"}'
    assert events[3].finish_reason == "tool_calls"
    usage = events[4].usage
    assert usage is not None and events[4].is_usage_only
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (80, 17, 64)
    assert b"".join(e.raw or b"" for e in events) == raw


def test_stream_decoder_handles_crlf() -> None:
    decoder = ADAPTER.stream_decoder()
    events = decoder.feed(
        b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\ndata: [DONE]\r\n\r\n'
    )
    assert [e.text for e in events] == ["a", ""]


def test_error_event_mid_stream_raises() -> None:
    decoder = ADAPTER.stream_decoder()
    with pytest.raises(UpstreamError):
        decoder.feed(b'data: {"error": {"message": "overloaded"}}\n\n')


def _sse(*chunks: bytes) -> bytes:
    return b"".join(b"data: " + c + b"\n\n" for c in chunks)


@pytest.mark.parametrize(
    "chunk",
    [
        b'{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}',
        b'{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}',
        b'{"choices":[{"delta":{"content":"Hi"}}]}',
        b'{"choices":[{"delta":{"content":"say \\"usage\\":{} and \\"finish_reason\\""}}]}',
    ],
)
def test_a_chunk_without_usage_or_finish_is_forwarded_unread(chunk: bytes) -> None:
    [event] = ADAPTER.stream_decoder().feed(_sse(chunk))
    assert not event.parsed and not event.ends
    assert event.raw == _sse(chunk)
    assert (event.usage, event.finish_reason, event.cost) == (None, None, None)
    assert event.text == orjson.loads(chunk)["choices"][0]["delta"]["content"]  # on demand
    assert event.parsed and event.data == orjson.loads(chunk)


def test_a_plain_chunk_written_with_spaces_is_parsed_and_forwarded_the_same() -> None:
    chunk = b'{"choices":[{"delta":{"content":"Hi"},"finish_reason" :  null}],"usage": null}'
    [event] = ADAPTER.stream_decoder().feed(_sse(chunk))
    assert event.parsed  # only the compact `:null` is recognised unread
    assert event.raw == _sse(chunk)
    assert (event.usage, event.finish_reason, event.cost, event.text) == (None, None, None, "Hi")


@pytest.mark.parametrize(
    ("chunk", "finish", "usage"),
    [
        (b'{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":null}', "stop", None),
        (b'{"choices":[{"delta":{},"finish_reason" : "length"}]}', "length", None),
        (b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}', None, (3, 2)),
        (
            b'{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null},'
            b'{"index":1,"delta":{},"finish_reason":"stop"}]}',
            "stop",
            None,
        ),
    ],
)
def test_a_chunk_with_usage_or_a_finish_reason_is_parsed(
    chunk: bytes, finish: str | None, usage: tuple[int, int] | None
) -> None:
    [event] = ADAPTER.stream_decoder().feed(_sse(chunk))
    assert event.parsed
    assert event.finish_reason == finish
    got = (
        None if event.usage is None else (event.usage.prompt_tokens, event.usage.completion_tokens)
    )
    assert got == usage


def test_keys_inside_a_string_do_not_make_a_chunk_look_final() -> None:
    text = 'say \\"usage\\": 5, \\"finish_reason\\": \\"stop\\", \\"error\\"'
    chunk = b'{"choices":[{"delta":{"content":"' + text.encode() + b'"},"finish_reason":null}]}'
    [event] = ADAPTER.stream_decoder().feed(_sse(chunk))
    assert not event.parsed
    assert event.text == orjson.loads(chunk)["choices"][0]["delta"]["content"]


def test_an_unread_chunk_that_is_not_json_reads_as_empty() -> None:
    [event] = ADAPTER.stream_decoder().feed(_sse(b"{not json"))
    assert event.raw == _sse(b"{not json")
    assert (event.data, event.text) == ({}, "")


@pytest.mark.parametrize(
    ("status", "body", "headers", "failure", "retry"),
    [
        (
            429,
            b'{"error":{"message":"slow down","type":"requests"}}',
            {"retry-after": "2"},
            FailureClass.RATE_LIMIT,
            2.0,
        ),
        (429, (FIXTURES / "error_quota.json").read_bytes(), {}, FailureClass.QUOTA, None),
        (429, b"{}", {"retry-after-ms": "1500"}, FailureClass.RATE_LIMIT, 1.5),
        (401, b'{"error":{"message":"bad key"}}', {}, FailureClass.CREDENTIAL, None),
        (403, b"", {}, FailureClass.REFUSED, None),  # this request, not the key
        (400, b'{"error":{"message":"bad"}}', {}, FailureClass.CALLER, None),
        (422, b"", {}, FailureClass.CALLER, None),
        (409, b"", {}, FailureClass.CALLER, None),  # any other 4xx is the request's
        (415, b"", {}, FailureClass.CALLER, None),
        (404, b"", {}, FailureClass.TRANSIENT, None),  # the deployment's model is missing
        (500, b"oops", {}, FailureClass.TRANSIENT, None),
        (503, b"", {}, FailureClass.TRANSIENT, None),
        (504, b"", {}, FailureClass.TIMEOUT, None),
    ],
)
def test_classify_error(
    status: int, body: bytes, headers: dict[str, str], failure: FailureClass, retry: float | None
) -> None:
    err = ADAPTER.classify_error(status, headers, body)
    assert err.failure is failure
    assert err.retry_after == retry
    assert err.status == status


def test_output_cap_injected_or_lowered() -> None:
    base = {"model": "m", "messages": []}
    call = ChatCall("m", dict(base), False, False, 100, "r")
    sent = orjson.loads(ADAPTER.build_request(call, "m", CREDS).body)
    assert sent["max_tokens"] == 100
    creds = Credentials("u", None, {}, "max_completion_tokens")
    sent = orjson.loads(ADAPTER.build_request(call, "m", creds).body)
    assert sent["max_completion_tokens"] == 100 and "max_tokens" not in sent
    call = ChatCall("m", {**base, "max_completion_tokens": 500}, False, False, 100, "r")
    assert (
        orjson.loads(ADAPTER.build_request(call, "m", CREDS).body)["max_completion_tokens"] == 100
    )


def test_hub_only_fields_do_not_reach_openai() -> None:
    body = {
        "model": "m",
        "thinking_budget": 5000,
        "messages": [
            {
                "role": "assistant",
                "content": "x",
                "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}],
            },
            {"role": "tool", "tool_call_id": "c", "content": "oops", "is_error": True},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            },
        ],
        "tools": [
            {"type": "function", "function": {"name": "f"}, "cache_control": {"type": "ephemeral"}}
        ],
        "top_k": 5,
    }
    sent = orjson.loads(ADAPTER.build_request(_call(body), "m", CREDS).body)
    assert sent["reasoning_effort"] == "medium" and "thinking_budget" not in sent
    assert "thinking_blocks" not in sent["messages"][0]
    assert "is_error" not in sent["messages"][1]
    assert sent["messages"][2]["content"] == [{"type": "text", "text": "hi"}]
    assert sent["tools"] == [{"type": "function", "function": {"name": "f"}}]
    assert sent["top_k"] == 5
    assert "thinking_blocks" in body["messages"][0]  # the hub body itself is untouched
