"""The Gemini protocol adapter against recorded wire fixtures: requests, replies, streams,
errors and embeddings."""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest

from faregate.errors import BadRequest, FailureClass, UpstreamError
from faregate.providers.base import ChatCall, Credentials, EmbedCall, StreamEvent
from faregate.providers.gemini import GeminiEmbeddings, GeminiGenerate, request_body
from faregate.providers.registry import chat_protocol, embeddings_protocol

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gemini"
CREDS = Credentials("https://generativelanguage.googleapis.com", "AIza-up", {"x-extra": "1"})
ADAPTER = GeminiGenerate()
USER = [{"role": "user", "content": "hi"}]


def _fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def _call(body: dict[str, Any], stream: bool = False, cap: int | None = None) -> ChatCall:
    return ChatCall("gemini-sim", body, stream, stream, cap, "req_1")


def _sent(body: dict[str, Any], cap: int | None = None) -> dict[str, Any]:
    return dict(orjson.loads(ADAPTER.build_request(_call(body, cap=cap), "m", CREDS).body))


def test_registry_names_the_gemini_adapters() -> None:
    assert isinstance(chat_protocol("gemini"), GeminiGenerate)
    assert isinstance(embeddings_protocol("gemini"), GeminiEmbeddings)
    assert ADAPTER.inline_remote_images is True


def test_build_request_paths_and_key_header() -> None:
    body = {"model": "public", "messages": USER}
    req = ADAPTER.build_request(_call(body), "models/gemini-2.5-pro", CREDS)
    assert req.path == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert req.headers["x-goog-api-key"] == "AIza-up"
    assert req.headers["x-extra"] == "1"
    assert "authorization" not in req.headers
    streamed = ADAPTER.build_request(_call({**body, "stream": True}, True), "gemini-2.5-pro", CREDS)
    assert streamed.path == "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    assert orjson.loads(req.body) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert body == {"model": "public", "messages": USER}  # the hub body is not modified


def test_recorded_tool_turn_request() -> None:
    fixture = _fixture("request_tool_turn.json")
    assert request_body(fixture["hub"]) == fixture["gemini"]


def test_output_cap_of_the_attempt_wins() -> None:
    assert _sent({"messages": USER}, cap=100)["generationConfig"] == {"maxOutputTokens": 100}
    config = _sent({"messages": USER, "max_completion_tokens": 50}, cap=100)["generationConfig"]
    assert config == {"maxOutputTokens": 50}
    assert _sent({"messages": USER, "max_tokens": 500}, cap=100)["generationConfig"] == {
        "maxOutputTokens": 100
    }


@pytest.mark.parametrize(
    ("fields", "thinking"),
    [
        ({"thinking_level": "HIGH"}, {"thinkingLevel": "HIGH", "includeThoughts": True}),
        ({"thinking_level": "minimal"}, {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
        ({"thinking_budget": 1024}, {"thinkingBudget": 1024, "includeThoughts": True}),
        ({"thinking_budget": 0}, {"thinkingBudget": 0, "includeThoughts": False}),
        ({"reasoning_effort": "none"}, {"thinkingLevel": "MINIMAL", "includeThoughts": False}),
        ({"reasoning_effort": "low"}, {"thinkingLevel": "LOW", "includeThoughts": True}),
        ({"reasoning_effort": "medium"}, {"thinkingLevel": "MEDIUM", "includeThoughts": True}),
        ({"reasoning_effort": "xhigh"}, {"thinkingLevel": "HIGH", "includeThoughts": True}),
        (
            {"reasoning_effort": "high", "thinking_level": "low"},
            {"thinkingLevel": "LOW", "includeThoughts": True},
        ),
    ],
)
def test_reasoning_controls(fields: dict[str, Any], thinking: dict[str, Any]) -> None:
    assert _sent({"messages": USER, **fields})["generationConfig"]["thinkingConfig"] == thinking


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        (
            {"type": "function", "function": {"name": "b"}},
            {"mode": "ANY", "allowedFunctionNames": ["b"]},
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "required", "tools": [{"type": "function", "name": "a"}]},
            },
            {"mode": "ANY", "allowedFunctionNames": ["a"]},
        ),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    tools = [{"type": "function", "function": {"name": n}} for n in ("a", "b")]
    sent = _sent({"messages": USER, "tools": tools, "tool_choice": choice})
    assert sent["toolConfig"] == {"functionCallingConfig": config}
    assert [d["name"] for d in sent["tools"][0]["functionDeclarations"]] == ["a", "b"]


def test_json_object_and_modalities_and_faults_from_metadata() -> None:
    sent = _sent(
        {
            "messages": USER,
            "response_format": {"type": "json_object"},
            "response_modalities": ["text", "Image"],
            "metadata": {"sim_fault": "status=500", "other": "x"},
            "user": "someone",
        }
    )
    assert sent["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseModalities": ["TEXT", "IMAGE"],
    }
    assert sent["labels"] == {"sim_fault": "status=500"}


def test_media_parts() -> None:
    content = [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
        },
        {"type": "image_url", "image_url": {"url": "gs://bucket/cat.png"}},
    ]
    parts = _sent({"messages": [{"role": "user", "content": content}]})["contents"][0]["parts"]
    assert parts == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/cat.png"}},
    ]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"response_modalities": ["AUDIO"]}, "response_modalities"),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"response_format": {"type": "grammar"}}, "response_format"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {}}]}]},
            "messages[0].content[0]",
        ),
    ],
)
def test_unsupported_features_are_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        _sent({"messages": USER, **fields})
    assert err.value.code == "unsupported_feature"
    assert err.value.param == param


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"thinking_level": "low", "thinking_budget": 10}, "thinking_budget"),
        ({"thinking_level": "extreme"}, "thinking_level"),
        ({"reasoning_effort": "max"}, "reasoning_effort"),
        (
            {"messages": [*USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}]},
            "messages[1].tool_call_id",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"safety_settings": ["x"]}, "safety_settings"),
    ],
)
def test_invalid_values_are_refused(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        _sent({"messages": USER, **fields})
    assert err.value.param == param


def test_parse_text_reply_with_thoughts_and_cache() -> None:
    result = ADAPTER.parse_response((FIXTURES / "response_text.json").read_bytes())
    body = result.body
    assert body["id"] == "mfQ5aPuKL9a_nvgPk9SyuQw"
    assert body["model"] == "gemini-2.5-pro"
    assert body["object"] == "chat.completion"
    message = body["choices"][0]["message"]
    assert message["content"] == "The sea covers about 71% of the Earth's surface."
    assert message["reasoning_content"].startswith("**Weighing the question**")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": 1210,
        "completion_tokens": 92,
        "total_tokens": 1302,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 80},
    }
    usage = result.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (1210, 92)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (1024, 80)


def test_parse_function_calls_keep_thought_signatures() -> None:
    body = ADAPTER.parse_response((FIXTURES / "response_function_calls.json").read_bytes()).body
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    first, second = choice["message"]["tool_calls"]
    assert first["id"].startswith("call_") and first["id"] != second["id"]
    assert first["type"] == "function"
    assert first["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    signature = "CiQB0e2Kb7zLq5YtQ1dMZ3hUQ2pkR0VYbUpXQ0ZzZ0lUUlZG"
    assert first["extra_content"] == {"google": {"thought_signature": signature}}
    assert "extra_content" not in second
    assert body["usage"]["completion_tokens"] == 74


def test_parse_blocked_prompt_image_and_other_finishes() -> None:
    blocked = ADAPTER.parse_response((FIXTURES / "response_blocked.json").read_bytes())
    assert blocked.body["choices"][0]["finish_reason"] == "content_filter"
    assert blocked.usage is not None and blocked.usage.completion_tokens == 0
    image = ADAPTER.parse_response((FIXTURES / "response_image.json").read_bytes()).body
    message = image["choices"][0]["message"]
    assert message["content"] == "Here is a small red square."
    assert message["images"][0]["type"] == "image_url"
    assert message["images"][0]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    two = ADAPTER.parse_response(
        (FIXTURES / "response_max_tokens_two_candidates.json").read_bytes()
    ).body
    assert [c["finish_reason"] for c in two["choices"]] == ["length", "content_filter"]
    assert [c["index"] for c in two["choices"]] == [0, 1]
    assert two["choices"][1]["message"]["content"] is None


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"object": "x"}'])
def test_parse_response_refuses_garbage(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as err:
        ADAPTER.parse_response(raw)
    assert err.value.failure is FailureClass.TRANSIENT


def _decode(raw: bytes, split: int) -> list[StreamEvent]:
    decoder = ADAPTER.stream_decoder()
    events: list[StreamEvent] = []
    for i in range(0, len(raw), split):
        events += decoder.feed(raw[i : i + split])
    return events


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7, 64, 10_000])
def test_stream_decoder_thoughts_and_tool_call_any_chunking(split: int) -> None:
    raw = (FIXTURES / "stream_thoughts_tool_call.sse").read_bytes()
    events = _decode(raw, split)
    assert events[-1].data is None
    chunks = [e.data for e in events[:-1] if e.data is not None]
    assert all(c["id"] == "jvg5aO2YLLGlnvgPhMO7yAQ" for c in chunks)
    assert all(c["model"] == "gemini-2.5-pro" for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert reasoning == "**Checking the forecast**\n\nI need the weather tool for Paris."
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check."
    calls = [c for d in deltas for c in d.get("tool_calls", ())]
    assert len(calls) == 1 and calls[0]["index"] == 0 and calls[0]["id"].startswith("call_")
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    signature = "CiIB0e2Kb3Rlc3Qtc2lnbmF0dXJlLWZvci1wYXJpcw=="
    assert calls[0]["extra_content"] == {"google": {"thought_signature": signature}}
    finish = [e for e in events if e.finish_reason]
    assert [e.finish_reason for e in finish] == ["tool_calls"]
    usage_event = events[-2]
    assert usage_event.is_usage_only and usage_event.data and usage_event.data["choices"] == []
    usage = usage_event.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens) == (62, 59, 40)
    assert "Let me check." in "".join(e.text for e in events)


@pytest.mark.parametrize("split", [1, 4, 9, 10_000])
def test_stream_decoder_max_tokens(split: int) -> None:
    events = _decode((FIXTURES / "stream_text_max_tokens.sse").read_bytes(), split)
    assert "".join(e.text for e in events) == "The sea is deep"
    assert [e.finish_reason for e in events if e.finish_reason] == ["length"]
    usage = events[-2].usage
    assert usage is not None and (usage.prompt_tokens, usage.cached_tokens) == (8, 4)
    assert events[-1].data is None


def test_stream_decoder_ignores_bytes_after_the_end() -> None:
    raw = (FIXTURES / "stream_text_max_tokens.sse").read_bytes()
    decoder = ADAPTER.stream_decoder()
    assert decoder.feed(raw)[-1].data is None
    assert decoder.feed(raw) == []


def test_stream_decoder_without_usage_never_ends_by_itself() -> None:
    chunk = {"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]}
    events = ADAPTER.stream_decoder().feed(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
    assert [e.finish_reason for e in events] == [None, None, "stop"]
    assert all(e.data is not None for e in events)


def test_stream_decoder_two_candidates_end_when_both_finish() -> None:
    def sse(obj: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"

    meta = {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}
    decoder = ADAPTER.stream_decoder()
    first = decoder.feed(
        sse(
            {
                "candidates": [
                    {"content": {"parts": [{"text": "a"}]}, "index": 0, "finishReason": "STOP"},
                    {"content": {"parts": [{"text": "b"}]}, "index": 1},
                ],
                "usageMetadata": meta,
            }
        )
    )
    assert all(e.data is not None for e in first)
    last = decoder.feed(
        sse({"candidates": [{"index": 1, "finishReason": "STOP"}], "usageMetadata": meta})
    )
    assert last[-1].data is None and last[-2].is_usage_only


def test_stream_blocked_prompt_ends_with_content_filter() -> None:
    raw = (
        b"data: "
        + (FIXTURES / "response_blocked.json").read_bytes().replace(b"\n", b"")
        + b"\r\n\r\n"
    )
    events = ADAPTER.stream_decoder().feed(raw)
    assert [e.finish_reason for e in events if e.finish_reason] == ["content_filter"]
    assert events[-1].data is None


def test_error_event_mid_stream_raises_classified() -> None:
    decoder = ADAPTER.stream_decoder()
    error = {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED"}
    with pytest.raises(UpstreamError) as err:
        decoder.feed(b"data: " + orjson.dumps({"error": error}) + b"\r\n\r\n")
    assert err.value.failure is FailureClass.RATE_LIMIT
    with pytest.raises(UpstreamError) as err:
        ADAPTER.stream_decoder().feed(b'data: {"error": {"code": 500, "message": "boom"}}\n\n')
    assert err.value.failure is FailureClass.TRANSIENT


ERRORS = {
    "invalid_argument": (FailureClass.CALLER, None),
    "failed_precondition": (FailureClass.CALLER, None),
    "api_key_invalid": (FailureClass.CREDENTIAL, None),
    "unauthenticated": (FailureClass.CREDENTIAL, None),
    "permission_denied": (FailureClass.CREDENTIAL, None),  # no key: "unregistered callers"
    "not_found": (FailureClass.TRANSIENT, None),
    "rate_limited": (FailureClass.RATE_LIMIT, 27.0),
    "quota_exhausted": (FailureClass.QUOTA, 3600.0),
    "internal": (FailureClass.TRANSIENT, None),
    "unavailable": (FailureClass.TRANSIENT, 4.0),
    "deadline_exceeded": (FailureClass.TIMEOUT, None),
    "stream_array_error": (FailureClass.RATE_LIMIT, None),
}


def _google(status: int, name: str, message: str, reason: str | None = None) -> bytes:
    error: dict[str, Any] = {"code": status, "message": message, "status": name}
    if reason is not None:
        info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}
        error["details"] = [info]
    return orjson.dumps({"error": error})


KEY = FailureClass.CREDENTIAL


@pytest.mark.parametrize(
    ("status", "body", "failure"),
    [
        # a 403 about the model or the request is that request's, not the key's
        (403, _google(403, "PERMISSION_DENIED", "no access to tuned model"), FailureClass.REFUSED),
        (403, _google(403, "PERMISSION_DENIED", "blocked", "API_KEY_SERVICE_BLOCKED"), KEY),
        (403, _google(403, "PERMISSION_DENIED", "suspended", "CONSUMER_SUSPENDED"), KEY),
        (400, _google(400, "INVALID_ARGUMENT", "API key expired. Renew it."), KEY),
        # a prompt's words in a 400 never make it a key failure
        (400, _google(400, "INVALID_ARGUMENT", "bad value: 'my api key'"), FailureClass.CALLER),
    ],
)
def test_only_the_keys_own_errors_are_credential_failures(
    status: int, body: bytes, failure: FailureClass
) -> None:
    assert ADAPTER.classify_error(status, {}, body).failure is failure


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_classify_recorded_errors(name: str) -> None:
    case = _fixture("errors.json")[name]
    body = orjson.dumps(case["body"])
    err = ADAPTER.classify_error(case["status"], case["headers"], body)
    failure, retry = ERRORS[name]
    assert err.failure is failure
    assert err.retry_after == retry
    assert err.status == case["status"]
    assert err.body == body
    assert err.message != f"HTTP {case['status']}"


def test_not_found_is_the_operators_fault_not_the_callers() -> None:
    err = ADAPTER.classify_error(
        404, {}, orjson.dumps(_fixture("errors.json")["not_found"]["body"])
    )
    client = err.to_client()
    assert client.status == 502


def test_classify_garbage_bodies() -> None:
    assert ADAPTER.classify_error(502, {}, b"<html>").failure is FailureClass.TRANSIENT
    assert ADAPTER.classify_error(429, {"retry-after": "2"}, b"").retry_after == 2.0
    assert ADAPTER.classify_error(408, {}, b"").failure is FailureClass.TIMEOUT


EMBED = GeminiEmbeddings()


def _embed_call(body: dict[str, Any]) -> EmbedCall:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return EmbedCall("gemini-embed", [str(i) for i in inputs], body, "req_e")


def test_embeddings_request() -> None:
    call = _embed_call({"model": "gemini-embed", "input": ["a", "b c"], "dimensions": 4})
    req = EMBED.build_embed_request(call, "gemini-embedding-001", CREDS)
    assert req.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert req.headers["x-goog-api-key"] == "AIza-up"
    assert orjson.loads(req.body) == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "a"}]},
                "outputDimensionality": 4,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "b c"}]},
                "outputDimensionality": 4,
            },
        ]
    }


def test_embeddings_token_ids_are_unsupported() -> None:
    call = EmbedCall("gemini-embed", ["1 2"], {"model": "m", "input": [1, 2]}, "r")
    with pytest.raises(BadRequest) as err:
        EMBED.build_embed_request(call, "m", CREDS)
    assert (err.value.code, err.value.param) == ("unsupported_feature", "input")


def test_embeddings_response_and_usage() -> None:
    raw = (FIXTURES / "embed_response.json").read_bytes()
    call = _embed_call({"model": "gemini-embed", "input": ["a", "b"]})
    result = EMBED.parse_embed_response(raw, call)
    assert result.body == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.0123, -0.0456, 0.0789, 0.5]},
            {"object": "embedding", "index": 1, "embedding": [-0.25, 0.125, 0.0, 1.0]},
        ],
        "model": "gemini-embed",
        "usage": {"prompt_tokens": 11, "total_tokens": 11},
    }
    assert result.usage is not None and result.usage.prompt_tokens == 11
    unreported = EMBED.parse_embed_response(b'{"embeddings": [{"values": [1.0]}]}', call)
    assert unreported.usage is None and "usage" not in unreported.body


def test_embeddings_base64_encoding() -> None:
    raw = (FIXTURES / "embed_response.json").read_bytes()
    call = _embed_call({"model": "g", "input": ["a", "b"], "encoding_format": "base64"})
    row = EMBED.parse_embed_response(raw, call).body["data"][1]["embedding"]
    assert struct.unpack("<4f", base64.b64decode(row)) == (-0.25, 0.125, 0.0, 1.0)


def test_embeddings_garbage_and_errors() -> None:
    with pytest.raises(UpstreamError):
        EMBED.parse_embed_response(b"{}", _embed_call({"model": "g", "input": "a"}))
    err = EMBED.classify_error(
        429, {}, orjson.dumps(_fixture("errors.json")["rate_limited"]["body"])
    )
    assert err.failure is FailureClass.RATE_LIMIT


def test_empty_assistant_text_is_not_sent() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
    messages = [
        *USER,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "ok"}]},
        {"role": "assistant", "content": ""},
    ]
    contents = _sent({"messages": messages})["contents"]
    assert contents[1] == {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "f", "response": {"output": "ok"}}}
    ]
    assert len(contents) == 3
