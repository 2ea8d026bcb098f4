"""The `openai-responses` upstream protocol: native and translated requests, replies and
events read back into the hub shape."""

from __future__ import annotations

import orjson

from faregate.providers.base import ChatCall, Credentials
from faregate.providers.native import NativeCall, NativeEvent
from faregate.providers.openai_responses import OpenAIResponses

CREDS = Credentials("http://up/v1", "sk-x")


def _body(call: ChatCall) -> dict:
    return orjson.loads(OpenAIResponses().build_request(call, "up-model", CREDS).body)


def test_a_responses_client_request_is_sent_as_written_capped_and_unstored() -> None:
    native = {"model": "m", "input": [{"type": "message", "role": "user", "content": "hi"}]}
    native["reasoning"] = {"effort": "high"}
    native["max_output_tokens"] = 500
    call = NativeCall("m", {"messages": []}, True, True, 200, "req_1", "responses", native)
    request = OpenAIResponses().build_request(call, "up-model", CREDS)
    assert request.path == "/responses"
    assert request.headers["authorization"] == "Bearer sk-x"
    body = orjson.loads(request.body)
    assert body == {
        **native,
        "model": "up-model",
        "store": False,
        "max_output_tokens": 200,
        "stream": True,
    }


def test_a_hub_call_is_translated() -> None:
    hub = {
        "messages": [
            {"role": "system", "content": "S"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Q"},
                    {"type": "image_url", "image_url": {"url": "u"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "R"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}},
        "reasoning_effort": "low",
        "temperature": 0.2,
    }
    body = _body(ChatCall("m", hub, False, False, 50, "req_1"))
    assert body["input"] == [
        {"type": "message", "role": "system", "content": "S"},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Q"},
                {"type": "input_image", "image_url": "u"},
            ],
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "R"},
    ]
    assert body["tools"] == [{"type": "function", "name": "f", "parameters": {}}]
    assert body["tool_choice"] == {"type": "function", "name": "f"}
    assert body["text"] == {"format": {"type": "json_schema", "name": "n", "schema": {}}}
    assert body["reasoning"] == {"effort": "low"}
    assert body["max_output_tokens"] == 50
    assert body["store"] is False
    assert "stream" not in body


def test_a_reply_is_read_into_the_hub_shape() -> None:
    reply = {
        "id": "resp_up",
        "object": "response",
        "status": "completed",
        "output": [
            {
                "type": "reasoning",
                "id": "rs",
                "summary": [{"type": "summary_text", "text": "think"}],
            },
            {
                "type": "message",
                "id": "m",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi"}],
            },
            {"type": "function_call", "id": "fc", "call_id": "c1", "name": "f", "arguments": "{}"},
        ],
        "usage": {
            "input_tokens": 10,
            "output_tokens": 7,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens_details": {"reasoning_tokens": 3},
        },
    }
    result = OpenAIResponses().parse_response(orjson.dumps(reply))
    message = result.body["choices"][0]["message"]
    assert message["content"] == "Hi"
    assert message["reasoning_content"] == "think"
    assert message["tool_calls"][0]["id"] == "c1"
    assert result.body["choices"][0]["finish_reason"] == "tool_calls"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (10, 7)
    assert (result.usage.cached_tokens, result.usage.reasoning_tokens) == (4, 3)
    assert result.raw == orjson.dumps(reply)


def _sse(event: dict) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def test_events_decode_to_hub_chunks_keeping_each_event() -> None:
    decoder = OpenAIResponses().stream_decoder()
    events = [
        {"type": "response.created", "response": {"id": "r", "model": "x"}},
        {"type": "response.output_text.delta", "delta": "He"},
        {
            "type": "response.output_item.added",
            "item": {"type": "function_call", "id": "fc", "call_id": "c1", "name": "f"},
        },
        {"type": "response.function_call_arguments.delta", "item_id": "fc", "delta": "{}"},
        {
            "type": "response.incomplete",
            "response": {
                "status": "incomplete",
                "incomplete_details": {"reason": "max_output_tokens"},
                "usage": {"input_tokens": 5, "output_tokens": 2},
            },
        },
    ]
    out = decoder.feed(b"".join(_sse(e) for e in events))
    assert all(isinstance(e, NativeEvent) for e in out)
    assert [e.native for e in out[:-1]] == events
    assert out[1].data["choices"][0]["delta"] == {"content": "He"}
    assert out[2].data["choices"][0]["delta"]["tool_calls"][0]["id"] == "c1"
    assert out[3].data["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert out[4].finish_reason == "length"
    assert out[4].usage is not None and out[4].usage.completion_tokens == 2
    assert out[5].data is None  # the end marker
