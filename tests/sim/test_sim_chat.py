"""OpenAI chat protocol fidelity, checked with the official SDK and on the raw wire."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessage, ChatCompletionMessageFunctionToolCall

from faregate.tokens import count_messages, count_text

AUTH = {"Authorization": "Bearer sk-test"}

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Tell me something about the northern lights."},
]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
    },
}


def function_calls(message: ChatCompletionMessage) -> list[ChatCompletionMessageFunctionToolCall]:
    """The message's tool calls, all of which must be function calls."""
    calls = message.tool_calls or []
    assert all(isinstance(call, ChatCompletionMessageFunctionToolCall) for call in calls)
    return [call for call in calls if isinstance(call, ChatCompletionMessageFunctionToolCall)]


async def sse_events(response: aiohttp.ClientResponse) -> list[Any]:
    """Parse an SSE body into JSON payloads, with "[DONE]" kept as a string."""
    events: list[Any] = []
    body = (await response.read()).decode()
    assert body.endswith("\n\n")
    for block in body.split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: ")
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else orjson.loads(data))
    return events


async def test_non_stream_shape_and_exact_usage(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="sim-large", messages=MESSAGES)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "sim-large"
    assert completion.system_fingerprint == "fp_sim"
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    content = choice.message.content
    assert content is not None
    assert 20 <= count_text(content) <= 40
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == count_messages(MESSAGES)
    assert usage.completion_tokens == count_text(content)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0
    again = await client.chat.completions.create(model="sim-large", messages=MESSAGES)
    assert again.choices[0].message.content == content


async def test_non_stream_raw_wire(sim_url: str, http: aiohttp.ClientSession) -> None:
    body = {"model": "m", "messages": MESSAGES}
    async with http.post(f"{sim_url}/v1/chat/completions", json=body, headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert resp.headers["x-ratelimit-remaining-requests"]
        payload = await resp.json()
    assert set(payload) >= {"id", "object", "created", "model", "choices", "usage"}
    assert payload["system_fingerprint"] == "fp_sim"
    choice = payload["choices"][0]
    assert choice["logprobs"] is None
    assert choice["message"]["refusal"] is None
    assert "tool_calls" not in choice["message"]
    assert payload["usage"]["completion_tokens_details"] == {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }
    assert payload["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}


async def test_stream_without_usage(sim_url: str, http: aiohttp.ClientSession) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    async with http.post(f"{sim_url}/v1/chat/completions", json=body, headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        events = await sse_events(resp)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all("usage" not in chunk for chunk in chunks)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all(chunk["choices"][0]["finish_reason"] is None for chunk in chunks[:-1])
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    async with http.post(
        f"{sim_url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, headers=AUTH
    ) as resp:
        assert streamed == (await resp.json())["choices"][0]["message"]["content"]


async def test_stream_with_usage_sdk(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="sim-small",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks[:-1])
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert final.usage.prompt_tokens == count_messages(MESSAGES)
    assert final.usage.completion_tokens == count_text(content)
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens


async def test_stream_usage_null_on_wire(sim_url: str, http: aiohttp.ClientSession) -> None:
    body = {
        "model": "m",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with http.post(f"{sim_url}/v1/chat/completions", json=body, headers=AUTH) as resp:
        events = await sse_events(resp)
    assert events[-1] == "[DONE]"
    assert all(chunk["usage"] is None for chunk in events[:-2])
    assert events[-2]["choices"] == []
    assert events[-2]["usage"]["prompt_tokens"] == count_messages(MESSAGES)


async def test_tool_call_non_stream(client: openai.AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Oslo?"}]
    tools: list[Any] = [TIME_TOOL, WEATHER_TOOL]
    completion = await client.chat.completions.create(model="m", messages=messages, tools=tools)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = function_calls(choice.message)
    assert len(calls) == 1
    call = calls[0]
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == {"city", "unit"}
    assert arguments["unit"] == "celsius"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_messages(messages, tools)
    assert completion.usage.completion_tokens == count_text(call.function.name) + count_text(
        call.function.arguments
    )


async def test_parallel_and_single_tool_calls(client: openai.AsyncOpenAI) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "Call get_weather and get_time for Tokyo please."}
    ]
    tools: list[Any] = [WEATHER_TOOL, TIME_TOOL]
    both = await client.chat.completions.create(model="m", messages=messages, tools=tools)
    calls = function_calls(both.choices[0].message)
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert len({c.id for c in calls}) == 2
    single = await client.chat.completions.create(
        model="m", messages=messages, tools=tools, parallel_tool_calls=False
    )
    assert len(function_calls(single.choices[0].message)) == 1


async def test_tool_choice_variants(client: openai.AsyncOpenAI) -> None:
    plain: list[Any] = [{"role": "user", "content": "Say hello."}]
    tools: list[Any] = [WEATHER_TOOL, TIME_TOOL]
    auto = await client.chat.completions.create(model="m", messages=plain, tools=tools)
    assert auto.choices[0].message.tool_calls is None
    assert auto.choices[0].finish_reason == "stop"
    forced = await client.chat.completions.create(
        model="m",
        messages=plain,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [c.function.name for c in function_calls(forced.choices[0].message)] == ["get_time"]
    required = await client.chat.completions.create(
        model="m", messages=plain, tools=tools, tool_choice="required"
    )
    assert len(function_calls(required.choices[0].message)) == 1
    weather: list[Any] = [{"role": "user", "content": "weather in Rome?"}]
    none = await client.chat.completions.create(
        model="m", messages=weather, tools=tools, tool_choice="none"
    )
    assert none.choices[0].message.tool_calls is None


async def test_tool_result_gets_text_answer(client: openai.AsyncOpenAI) -> None:
    first: list[Any] = [{"role": "user", "content": "What's the weather in Oslo?"}]
    tools: list[Any] = [WEATHER_TOOL]
    call = await client.chat.completions.create(model="m", messages=first, tools=tools)
    tool_call = function_calls(call.choices[0].message)[0]
    followup: list[Any] = [
        *first,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": tool_call.id,
                    "type": "function",
                    "function": {
                        "name": tool_call.function.name,
                        "arguments": tool_call.function.arguments,
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": tool_call.id, "content": "Sunny, 21 C"},
    ]
    answer = await client.chat.completions.create(model="m", messages=followup, tools=tools)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == count_messages(followup, tools)


async def test_tool_call_stream(client: openai.AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "use get_weather and get_time"}]
    tools: list[Any] = [WEATHER_TOOL, TIME_TOOL]
    reference = await client.chat.completions.create(model="m", messages=messages, tools=tools)
    stream = await client.chat.completions.create(
        model="m",
        messages=messages,
        tools=tools,
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                if delta.id:
                    entry["id"] = delta.id
                if delta.function and delta.function.name:
                    entry["name"] = delta.function.name
                if delta.function and delta.function.arguments:
                    entry["arguments"] += delta.function.arguments
    assert finish == "tool_calls"
    expected = function_calls(reference.choices[0].message)
    assert len(calls) == 2
    for index, call in enumerate(expected):
        assert calls[index] == {
            "id": call.id,
            "name": call.function.name,
            "arguments": call.function.arguments,
        }
    assert usage is not None
    assert reference.usage is not None
    assert usage.completion_tokens == reference.usage.completion_tokens


async def test_json_object_and_schema(client: openai.AsyncOpenAI) -> None:
    obj = await client.chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "json_object"}
    )
    content = obj.choices[0].message.content or ""
    assert isinstance(json.loads(content), dict)
    assert obj.usage is not None
    assert obj.usage.completion_tokens == count_text(content)
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "year": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["title", "year", "tags"],
        "additionalProperties": False,
    }
    shaped = await client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "book", "schema": schema, "strict": True},
        },
    )
    value = json.loads(shaped.choices[0].message.content or "")
    assert set(value) == {"title", "year", "tags"}
    assert isinstance(value["title"], str)
    assert isinstance(value["year"], int)
    assert isinstance(value["tags"], list)


async def test_stop_sequence(client: openai.AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "alpha beta gamma"}]
    completion = await client.chat.completions.create(model="m", messages=messages, stop=["beta"])
    content = completion.choices[0].message.content
    assert content == 'You said: "alpha '
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == count_text(content)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_token_cap_gives_length(client: openai.AsyncOpenAI, field: str) -> None:
    completion = await client.chat.completions.create(
        model="m", messages=MESSAGES, extra_body={field: 5}
    )
    assert completion.choices[0].finish_reason == "length"
    assert count_text(completion.choices[0].message.content or "") == 5
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5
    roomy = await client.chat.completions.create(
        model="m", messages=MESSAGES, extra_body={field: 500}
    )
    assert roomy.choices[0].finish_reason == "stop"


async def test_stream_cap_gives_length(sim_url: str, http: aiohttp.ClientSession) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True, "max_tokens": 3}
    async with http.post(f"{sim_url}/v1/chat/completions", json=body, headers=AUTH) as resp:
        events = await sse_events(resp)
    content_chunks = [e for e in events[:-1] if e["choices"][0]["delta"].get("content")]
    assert len(content_chunks) == 3
    assert events[-2]["choices"][0]["finish_reason"] == "length"


async def test_n_choices(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="m", messages=MESSAGES, n=2)
    assert [c.index for c in completion.choices] == [0, 1]
    texts = [c.message.content or "" for c in completion.choices]
    assert texts[0] != texts[1]
    assert completion.usage is not None
    assert completion.usage.completion_tokens == sum(count_text(t) for t in texts)
    single = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert single.choices[0].message.content == texts[0]
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, n=2, stream=True, stream_options={"include_usage": True}
    )
    streamed = ["", ""]
    finishes: dict[int, str] = {}
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert streamed == texts
    assert finishes == {0: "stop", 1: "stop"}
    assert usage is not None
    assert usage.completion_tokens == completion.usage.completion_tokens


async def test_seed_changes_reply(client: openai.AsyncOpenAI) -> None:
    one = await client.chat.completions.create(model="m", messages=MESSAGES, seed=1)
    two = await client.chat.completions.create(model="m", messages=MESSAGES, seed=2)
    again = await client.chat.completions.create(model="m", messages=MESSAGES, seed=1)
    assert one.choices[0].message.content != two.choices[0].message.content
    assert one.choices[0].message.content == again.choices[0].message.content


async def test_reasoning_tokens(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="sim-reasoning", messages=MESSAGES, reasoning_effort="medium"
    )
    usage = completion.usage
    assert usage is not None
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 16
    content = completion.choices[0].message.content or ""
    assert usage.completion_tokens == count_text(content) + 16
    capped = await client.chat.completions.create(
        model="m", messages=MESSAGES, reasoning_effort="high", max_completion_tokens=40
    )
    assert capped.usage is not None
    assert capped.usage.completion_tokens <= 40
    minimal = await client.chat.completions.create(
        model="m", messages=MESSAGES, reasoning_effort="minimal"
    )
    assert minimal.usage is not None
    assert minimal.usage.completion_tokens_details is not None
    assert minimal.usage.completion_tokens_details.reasoning_tokens == 0


async def test_cached_tokens(client: openai.AsyncOpenAI) -> None:
    long_messages: list[Any] = [{"role": "user", "content": "word " * 1200}]
    prompt = count_messages(long_messages)
    long = await client.chat.completions.create(model="m", messages=long_messages)
    assert long.usage is not None
    assert long.usage.prompt_tokens_details is not None
    cached = long.usage.prompt_tokens_details.cached_tokens
    assert cached == prompt // 2 // 128 * 128
    assert cached > 0
    medium: list[Any] = [{"role": "user", "content": "word " * 600}]
    plain = await client.chat.completions.create(model="m", messages=medium)
    assert plain.usage is not None
    assert plain.usage.prompt_tokens_details is not None
    assert plain.usage.prompt_tokens_details.cached_tokens == 0
    keyed = await client.chat.completions.create(
        model="m", messages=medium, prompt_cache_key="conversation-1"
    )
    assert keyed.usage is not None
    assert keyed.usage.prompt_tokens_details is not None
    assert keyed.usage.prompt_tokens_details.cached_tokens == 256


async def test_auth_errors(sim_url: str, http: aiohttp.ClientSession) -> None:
    body = {"model": "m", "messages": MESSAGES}
    url = f"{sim_url}/v1/chat/completions"
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}):
        async with http.post(url, json=body, headers=headers) as resp:
            assert resp.status == 401
            error = (await resp.json())["error"]
            assert error["type"] == "invalid_request_error"
            assert error["code"] == "invalid_api_key"
            assert error["param"] is None
            assert error["message"]
    async with openai.AsyncOpenAI(
        base_url=f"{sim_url}/v1", api_key="sk-sim-invalid", max_retries=0
    ) as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            await bad.chat.completions.create(model="m", messages=MESSAGES)
        assert info.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": MESSAGES, "n": 0}, "n"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": MESSAGES, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "m", "messages": MESSAGES, "stream_options": {}}, "stream_options"),
        ({"model": "m", "messages": MESSAGES, "reasoning_effort": "max"}, "reasoning_effort"),
        ({"model": "m", "messages": MESSAGES, "tools": {}}, "tools"),
        (
            {
                "model": "m",
                "messages": MESSAGES,
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "tool_choice",
        ),
        (
            {"model": "m", "messages": MESSAGES, "response_format": {"type": "xml"}},
            "response_format.type",
        ),
    ],
)
async def test_validation_errors(
    sim_url: str, http: aiohttp.ClientSession, body: dict[str, Any], param: str
) -> None:
    async with http.post(f"{sim_url}/v1/chat/completions", json=body, headers=AUTH) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


async def test_invalid_json(sim_url: str, http: aiohttp.ClientSession) -> None:
    for raw in (b"{not json", b"[1, 2]"):
        async with http.post(
            f"{sim_url}/v1/chat/completions",
            data=raw,
            headers={**AUTH, "Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_sdk_bad_request(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="m", messages=[])
    assert info.value.param == "messages"


async def test_models_health_and_stats(
    client: openai.AsyncOpenAI, sim_url: str, http: aiohttp.ClientSession
) -> None:
    models = await client.models.list()
    ids = [model.id for model in models.data]
    assert {"sim-small", "sim-large"} <= set(ids)
    assert all(model.object == "model" and model.owned_by for model in models.data)
    assert (await client.models.retrieve("anything")).id == "anything"
    async with http.get(f"{sim_url}/health") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"
    await client.chat.completions.create(model="sim-small", messages=MESSAGES)
    await client.chat.completions.create(model="sim-small", messages=MESSAGES)
    await client.chat.completions.create(model="other", messages=MESSAGES)
    async with http.get(f"{sim_url}/sim/stats") as resp:
        stats = await resp.json()
    assert stats["requests"] == 3
    assert stats["by_model"] == {"sim-small": 2, "other": 1}
    async with http.post(f"{sim_url}/sim/reset") as resp:
        assert resp.status == 200
    async with http.get(f"{sim_url}/sim/stats") as resp:
        stats = await resp.json()
    assert stats["requests"] == 0
    assert stats["by_model"] == {}
