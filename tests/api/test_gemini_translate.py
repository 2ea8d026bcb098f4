"""Gemini-native requests to the internal chat body, and internal replies back to Gemini."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from faregate.api.chat_request import parse_chat
from faregate.api.gemini_config import json_schema
from faregate.api.gemini_render import Chunker, render_reply, usage_metadata
from faregate.api.gemini_translate import to_hub
from faregate.billing.types import Usage
from faregate.errors import BadRequest
from faregate.providers.base import StreamEvent
from faregate.providers.gemini import GeminiGenerate, request_body

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gemini"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def _hub(body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    return to_hub("m", body, stream)[0]


def test_recorded_native_request() -> None:
    fixture = orjson.loads((FIXTURES / "native_request.json").read_bytes())
    hub, thoughts = to_hub(fixture["model"], fixture["request"], False)
    assert hub == fixture["hub"]
    assert thoughts is True
    call = parse_chat(hub, "req_1")
    assert call.max_output == 300 and not call.stream


def test_native_to_gemini_upstream_round_trip() -> None:
    """A Gemini client's request reaches a Gemini upstream with the same meaning."""
    fixture = orjson.loads((FIXTURES / "native_request.json").read_bytes())
    sent = request_body(fixture["hub"])
    request = fixture["request"]
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief.\nUse metric."}]}
    assert sent["contents"][1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": "c2lnLTE=",
            }
        ],
    }
    assert sent["contents"][2]["parts"][0] == {
        "functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}
    }
    assert sent["contents"][3] == {"role": "user", "parts": [{"text": "Thanks. Tomorrow?"}]}
    assert sent["toolConfig"] == request["toolConfig"]
    assert sent["safetySettings"] == request["safetySettings"]
    assert sent["labels"] == request["labels"]
    config = sent["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 128, "includeThoughts": True}
    assert config["stopSequences"] == ["##"] and config["candidateCount"] == 2
    assert config["responseJsonSchema"] == {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
    }


def test_stream_flag_and_defaults() -> None:
    hub = _hub(HELLO, stream=True)
    assert hub == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert parse_chat(hub, "r").include_usage


def test_include_thoughts_alone_asks_for_dynamic_thinking() -> None:
    config = {"thinkingConfig": {"includeThoughts": True}}
    hub, thoughts = to_hub("m", {**HELLO, "generationConfig": config}, False)
    assert hub["thinking_budget"] == -1 and thoughts
    hub, thoughts = to_hub(
        "m", {**HELLO, "generationConfig": {"thinkingConfig": {"thinkingLevel": "HIGH"}}}, False
    )
    assert hub["thinking_level"] == "high" and not thoughts


@pytest.mark.parametrize(
    ("config", "choice"),
    [
        ({"mode": "AUTO"}, "auto"),
        ({"mode": "none"}, "none"),
        ({"mode": "ANY"}, "required"),
        (
            {"mode": "ANY", "allowedFunctionNames": ["a"]},
            {"type": "function", "function": {"name": "a"}},
        ),
        (
            {"mode": "ANY", "allowedFunctionNames": ["a", "b"]},
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [
                        {"type": "function", "function": {"name": "a"}},
                        {"type": "function", "function": {"name": "b"}},
                    ],
                },
            },
        ),
    ],
)
def test_function_calling_modes(config: dict[str, Any], choice: Any) -> None:
    body = {**HELLO, "tool_config": {"function_calling_config": config}}
    assert _hub(body)["tool_choice"] == choice


def test_multiple_allowed_names_reach_a_gemini_upstream_as_any() -> None:
    tools = [{"functionDeclarations": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}]
    choice = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["a", "b"]}}
    sent = request_body(_hub({**HELLO, "tools": tools, "toolConfig": choice}))
    assert sent["toolConfig"] == choice


def test_function_responses_match_by_id_then_by_name() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "go"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"id": "x1", "name": "f", "args": {}}},
                {"functionCall": {"name": "f", "args": {"n": 2}}},
                {"functionCall": {"name": "g"}},
            ],
        },
        {
            "role": "function",
            "parts": [
                {"functionResponse": {"name": "g", "response": {"ok": True}}},
                {"functionResponse": {"name": "f", "response": {"n": 2}}},
                {"functionResponse": {"id": "x1", "name": "f", "response": {}}},
            ],
        },
    ]
    messages = _hub({"contents": contents})["messages"]
    ids = [c["id"] for c in messages[1]["tool_calls"]]
    assert ids == ["x1", "call_2", "call_3"]
    assert [(m["role"], m["tool_call_id"]) for m in messages[2:]] == [
        ("tool", "call_3"),
        ("tool", "call_2"),
        ("tool", "x1"),
    ]


def test_unanswerable_function_response_is_refused() -> None:
    contents = [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]
    with pytest.raises(BadRequest) as err:
        _hub({"contents": contents})
    assert err.value.param == "contents[0].parts[0]"


def test_media_parts() -> None:
    parts = [
        {"inlineData": {"mimeType": "audio/mp3", "data": "SUQz"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png"}},
    ]
    content = _hub({"contents": [{"role": "user", "parts": parts}]})["messages"][0]["content"]
    assert content == [
        {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]


def test_model_turn_image_round_trips_to_a_gemini_upstream() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "draw"}]},
        {"role": "model", "parts": [{"inlineData": {"mimeType": "image/png", "data": "AAA"}}]},
        {"role": "user", "parts": [{"text": "again"}]},
    ]
    sent = request_body(_hub({"contents": contents}))
    assert sent["contents"][1] == {
        "role": "model",
        "parts": [{"inlineData": {"mimeType": "image/png", "data": "AAA"}}],
    }


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "contents", "invalid_argument"),
        ({"contents": []}, "contents", "invalid_argument"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role", None),
        ({"contents": [{"parts": []}]}, "contents[0].parts", None),
        ({**HELLO, "bogus": 1}, "bogus", "invalid_argument"),
        ({**HELLO, "generationConfig": {"maxTokens": 5}}, "generationConfig.maxTokens", None),
        (
            {**HELLO, "generationConfig": {"temperature": "hot"}},
            "generationConfig.temperature",
            None,
        ),
        ({**HELLO, "generationConfig": {"topK": 1.5}}, "generationConfig.topK", None),
        (
            {**HELLO, "generationConfig": {"stopSequences": "x"}},
            "generationConfig.stopSequences",
            None,
        ),
        (
            {
                **HELLO,
                "generationConfig": {
                    "thinkingConfig": {"thinkingLevel": "LOW", "thinkingBudget": 5}
                },
            },
            "generationConfig.thinkingConfig",
            None,
        ),
        (
            {**HELLO, "generationConfig": {"thinkingConfig": {"thinkingLevel": "ULTRA"}}},
            "generationConfig.thinkingConfig.thinkingLevel",
            None,
        ),
        (
            {**HELLO, "generationConfig": {"responseMimeType": "text/csv"}},
            "generationConfig.responseMimeType",
            None,
        ),
        ({**HELLO, "safetySettings": [{"category": "X"}]}, "safetySettings[0]", None),
        ({**HELLO, "labels": {"a": 1}}, "labels", None),
        (
            {**HELLO, "tools": [{"functionDeclarations": [{"description": "x"}]}]},
            "tools[0].functionDeclarations[0].name",
            None,
        ),
        ({**HELLO, "cachedContent": "cachedContents/abc"}, "cachedContent", "unsupported_feature"),
        (
            {**HELLO, "tools": [{"googleSearch": {}}]},
            "tools[0].googleSearch",
            "unsupported_feature",
        ),
        (
            {**HELLO, "tools": [{"codeExecution": {}}]},
            "tools[0].codeExecution",
            "unsupported_feature",
        ),
        (
            {**HELLO, "generationConfig": {"responseLogprobs": True}},
            "generationConfig.responseLogprobs",
            "unsupported_feature",
        ),
        (
            {**HELLO, "generationConfig": {"speechConfig": {}}},
            "generationConfig.speechConfig",
            "unsupported_feature",
        ),
        (
            {**HELLO, "generationConfig": {"responseMimeType": "text/x.enum"}},
            "generationConfig.responseMimeType",
            "unsupported_feature",
        ),
        (
            {**HELLO, "toolConfig": {"functionCallingConfig": {"mode": "VALIDATED"}}},
            "toolConfig.functionCallingConfig.mode",
            "unsupported_feature",
        ),
        (
            {
                "contents": [
                    {
                        "parts": [
                            {
                                "fileData": {
                                    "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/x",
                                    "mimeType": "application/pdf",
                                }
                            }
                        ]
                    }
                ]
            },
            "contents[0].parts[0]",
            "unsupported_feature",
        ),
        (
            {"contents": [{"parts": [{"executableCode": {"code": "1"}}]}]},
            "contents[0].parts[0]",
            "unsupported_feature",
        ),
        (
            {**HELLO, "systemInstruction": {"parts": [{"inlineData": {}}]}},
            "systemInstruction",
            "unsupported_feature",
        ),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], param: str, code: str | None) -> None:
    with pytest.raises(BadRequest) as err:
        _hub(body)
    assert err.value.param == param
    if code is not None:
        assert err.value.code == code


def test_openapi_schema_becomes_json_schema() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "tags": {
                "type": "ARRAY",
                "items": {"type": "STRING", "enum": ["a", "b"]},
                "min_items": 1,
            },
            "type": {"type": "STRING", "nullable": True, "description": "a property named type"},
            "nested": {"anyOf": [{"type": "INTEGER"}, {"type": "NULL"}]},
        },
        "required": ["tags"],
        "property_ordering": ["tags", "type"],
    }
    assert json_schema(schema) == {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"type": "string", "enum": ["a", "b"]},
                "minItems": 1,
            },
            "type": {"type": ["string", "null"], "description": "a property named type"},
            "nested": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["tags"],
    }


def test_render_reply_from_a_gemini_upstream() -> None:
    result = GeminiGenerate().parse_response(
        (FIXTURES / "response_function_calls.json").read_bytes()
    )
    assert result.usage is not None
    out = render_reply(result.body, result.usage, thoughts=False)
    parts = out["candidates"][0]["content"]["parts"]
    assert parts[0]["functionCall"]["name"] == "get_weather"
    assert parts[0]["functionCall"]["args"] == {"city": "Paris"}
    assert parts[0]["thoughtSignature"] == "CiQB0e2Kb7zLq5YtQ1dMZ3hUQ2pkR0VYbUpXQ0ZzZ0lUUlZG"
    assert "thoughtSignature" not in parts[1]
    assert out["candidates"][0]["finishReason"] == "STOP"
    assert out["usageMetadata"] == {
        "promptTokenCount": 96,
        "candidatesTokenCount": 24,
        "totalTokenCount": 170,
        "thoughtsTokenCount": 50,
    }
    assert out["modelVersion"] == "gemini-2.5-flash"
    assert out["responseId"] == "7vQ5aOKZHYnUnvgP2Yy2mQg"


def test_render_reply_thoughts_only_when_asked() -> None:
    result = GeminiGenerate().parse_response((FIXTURES / "response_text.json").read_bytes())
    assert result.usage is not None
    hidden = render_reply(result.body, result.usage, thoughts=False)
    assert [p.get("thought") for p in hidden["candidates"][0]["content"]["parts"]] == [None]
    shown = render_reply(result.body, result.usage, thoughts=True)
    assert [p.get("thought") for p in shown["candidates"][0]["content"]["parts"]] == [True, None]
    assert shown["usageMetadata"]["cachedContentTokenCount"] == 1024


def test_render_reply_from_an_openai_upstream() -> None:
    reply = {
        "id": "chatcmpl-1",
        "model": "sim-small",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi"},
                "finish_reason": "length",
            },
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "f", "arguments": "not json"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            },
        ],
    }
    out = render_reply(reply, Usage(10, 5), thoughts=True)
    first, second = out["candidates"]
    assert first == {
        "content": {"parts": [{"text": "Hi"}], "role": "model"},
        "finishReason": "MAX_TOKENS",
        "index": 0,
    }
    assert second["content"]["parts"] == [
        {"functionCall": {"name": "f", "args": {"arguments": "not json"}, "id": "call_9"}}
    ]
    assert out["usageMetadata"] == {
        "promptTokenCount": 10,
        "candidatesTokenCount": 5,
        "totalTokenCount": 15,
    }


def test_usage_metadata_from_hub_usage() -> None:
    meta = usage_metadata(Usage(100, 30, cached_tokens=64, reasoning_tokens=20))
    assert meta == {
        "promptTokenCount": 100,
        "candidatesTokenCount": 10,
        "totalTokenCount": 130,
        "cachedContentTokenCount": 64,
        "thoughtsTokenCount": 20,
    }


def _event(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> StreamEvent:
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return StreamEvent(
        {"id": "c1", "model": "sim-small", "choices": [choice]}, finish_reason=finish
    )


def test_chunker_openai_fragments() -> None:
    chunker = Chunker(thoughts=False)
    out: list[dict[str, Any]] = []
    out += chunker.feed(_event({"role": "assistant", "content": ""}))
    assert out == []
    out += chunker.feed(_event({"reasoning_content": "hmm"}))
    out += chunker.feed(_event({"content": "Hel"}))
    out += chunker.feed(_event({"content": "lo"}))
    header = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_", "arguments": ""},
    }
    out += chunker.feed(_event({"tool_calls": [header]}))
    out += chunker.feed(
        _event({"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": '{"ci'}}]})
    )
    out += chunker.feed(
        _event({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Oslo"}'}}]})
    )
    out += chunker.feed(_event({}, "tool_calls"))
    assert len(out) == 2  # the thought is hidden; tool calls wait for the end
    usage = StreamEvent(
        {"id": "c1", "model": "sim-small", "choices": [], "usage": {}},
        usage=Usage(7, 9),
        is_usage_only=True,
    )
    out += chunker.feed(usage)
    out += chunker.feed(StreamEvent(None))
    assert [c["candidates"][0]["content"]["parts"] for c in out[:2]] == [
        [{"text": "Hel"}],
        [{"text": "lo"}],
    ]
    last = out[-1]
    assert len(out) == 3
    assert last["candidates"] == [
        {
            "finishReason": "STOP",
            "index": 0,
            "content": {
                "parts": [
                    {
                        "functionCall": {
                            "name": "get_weather",
                            "args": {"city": "Oslo"},
                            "id": "call_1",
                        }
                    }
                ],
                "role": "model",
            },
        }
    ]
    assert last["usageMetadata"] == {
        "promptTokenCount": 7,
        "candidatesTokenCount": 9,
        "totalTokenCount": 16,
    }
    assert last["modelVersion"] == "sim-small" and last["responseId"] == "c1"


def test_chunker_thoughts_and_signatures_from_a_gemini_stream() -> None:
    raw = (FIXTURES / "stream_thoughts_tool_call.sse").read_bytes()
    events = GeminiGenerate().stream_decoder().feed(raw)
    chunker = Chunker(thoughts=True)
    out = [chunk for event in events for chunk in chunker.feed(event)]
    thoughts = [
        p
        for c in out
        for cand in c["candidates"]
        for p in cand.get("content", {}).get("parts", ())
        if p.get("thought")
    ]
    assert "".join(p["text"] for p in thoughts).startswith("**Checking the forecast**")
    last = out[-1]
    part = last["candidates"][0]["content"]["parts"][0]
    assert part["thoughtSignature"] == "CiIB0e2Kb3Rlc3Qtc2lnbmF0dXJlLWZvci1wYXJpcw=="
    assert part["functionCall"]["args"] == {"city": "Paris"}
    assert last["usageMetadata"]["thoughtsTokenCount"] == 40
    assert last["usageMetadata"]["candidatesTokenCount"] == 19
