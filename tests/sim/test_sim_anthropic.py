"""The simulator's Anthropic Messages routes, driven by the official SDK and raw aiohttp."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from faregate.sim.anthropic_request import sign
from faregate.tokens import count_messages, count_text

HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
PROMPT = "Write a short poem about the sea."
BODY: dict[str, Any] = {
    "model": "claude-sim-model",
    "max_tokens": 200,
    "messages": [{"role": "user", "content": PROMPT}],
}
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"],
    },
}
TIME: dict[str, Any] = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
async def claude(sim_url: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=sim_url, api_key="sk-ant-test", max_retries=0, timeout=5.0
    ) as sdk:
        yield sdk


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: Any,
    headers: dict[str, str] | None = None,
    path: str = "/v1/messages",
) -> tuple[int, dict[str, str], Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(
        url + path, data=data, headers=HEADERS if headers is None else headers
    ) as r:
        return r.status, dict(r.headers), await r.json()


async def read_events(resp: aiohttp.ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    raw = await resp.read()
    events = []
    for block in raw.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n")
            payload = orjson.loads(data.removeprefix(b"data: "))
            assert name.removeprefix(b"event: ").decode() == payload["type"]
            events.append((payload["type"], payload))
    return events


# -- replies -------------------------------------------------------------------------------


async def test_text_reply_with_exact_usage(claude: anthropic.AsyncAnthropic) -> None:
    raw = await claude.messages.with_raw_response.create(**BODY, system="You are a poet.")
    message = await raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model == "claude-sim-model"
    assert [b.type for b in message.content] == ["text"]
    text = message.content[0].text  # type: ignore[union-attr]
    assert text.startswith('You said: "Write a short poem about the sea."')
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    flat = [
        {"role": "system", "content": "You are a poet."},
        {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
    ]
    assert message.usage.input_tokens == count_messages(flat)
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.output_tokens == count_text(text)
    again = await claude.messages.create(**BODY, system="You are a poet.")
    assert again.content == message.content  # deterministic


async def test_count_tokens_matches_usage(claude: anthropic.AsyncAnthropic) -> None:
    fields: dict[str, Any] = {"system": "Be brief.", "tools": [WEATHER, TIME]}
    counted = await claude.messages.count_tokens(
        model="claude-sim-model", messages=BODY["messages"], **fields
    )
    message = await claude.messages.create(**BODY, **fields)
    assert counted.input_tokens == message.usage.input_tokens > 0


async def test_max_tokens_and_stop_sequences(claude: anthropic.AsyncAnthropic) -> None:
    capped = await claude.messages.create(**{**BODY, "max_tokens": 5})
    assert capped.stop_reason == "max_tokens"
    assert capped.usage.output_tokens == 5
    stopped = await claude.messages.create(**BODY, stop_sequences=["nothing", "poem"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "poem"
    assert stopped.content[0].text == 'You said: "Write a short '  # type: ignore[union-attr]
    exact = await claude.messages.create(**BODY, extra_headers={"x-sim-fault": "tokens=7"})
    assert exact.usage.output_tokens == 7


async def test_tool_use_when_the_prompt_asks(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(
        model="m", max_tokens=100, messages=ASK_WEATHER, tools=[TIME, WEATHER]
    )
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    call = message.content[1]
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.id.startswith("toolu_")
    assert set(call.input) == {"city", "days"} and call.input["days"] == 1  # type: ignore[operator,index]
    text = message.content[0].text  # type: ignore[union-attr]
    expected = (
        count_text(text) + count_text("get_weather") + count_text(orjson.dumps(call.input).decode())
    )
    assert message.usage.output_tokens == expected


@pytest.mark.parametrize(
    ("choice", "names", "types"),
    [
        ({"type": "tool", "name": "get_time"}, ["get_time"], ["tool_use"]),
        ({"type": "any"}, ["get_time"], ["tool_use"]),
        ({"type": "none"}, [], ["text"]),
    ],
)
async def test_tool_choice(
    claude: anthropic.AsyncAnthropic, choice: dict[str, Any], names: list[str], types: list[str]
) -> None:
    message = await claude.messages.create(
        model="m",
        max_tokens=100,
        messages=[{"role": "user", "content": "hello"}],
        tools=[TIME, WEATHER],
        tool_choice=choice,  # type: ignore[arg-type]
    )
    assert [b.type for b in message.content] == types
    assert [b.name for b in message.content if b.type == "tool_use"] == names


async def test_parallel_calls_and_disabling_them(claude: anthropic.AsyncAnthropic) -> None:
    ask = [{"role": "user", "content": "Call get_time and get_weather please"}]
    both = await claude.messages.create(
        model="m", max_tokens=99, messages=ask, tools=[TIME, WEATHER]
    )
    assert [b.name for b in both.content if b.type == "tool_use"] == ["get_time", "get_weather"]
    one = await claude.messages.create(
        model="m",
        max_tokens=99,
        messages=ask,
        tools=[TIME, WEATHER],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert [b.name for b in one.content if b.type == "tool_use"] == ["get_time"]


async def test_tool_results_get_a_text_answer(claude: anthropic.AsyncAnthropic) -> None:
    first = await claude.messages.create(
        model="m", max_tokens=99, messages=ASK_WEATHER, tools=[WEATHER]
    )
    call = first.content[-1]
    assert call.type == "tool_use"
    turn = [
        *ASK_WEATHER,
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
        },
    ]
    answer = await claude.messages.create(model="m", max_tokens=99, messages=turn, tools=[WEATHER])  # type: ignore[arg-type]
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"


async def test_thinking_blocks_and_their_round_trip(claude: anthropic.AsyncAnthropic) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    first = await claude.messages.create(
        model="m", max_tokens=2000, messages=ASK_WEATHER, tools=[WEATHER], thinking=thinking
    )
    block = first.content[0]
    assert block.type == "thinking"
    assert count_text(block.thinking) == 16 and block.signature == sign(block.thinking)
    assert first.usage.output_tokens_details is not None
    assert first.usage.output_tokens_details.thinking_tokens == 16
    call = first.content[-1]
    assert call.type == "tool_use"
    result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "ok"}],
    }
    turn: list[Any] = [*ASK_WEATHER, {"role": "assistant", "content": first.content}, result]
    answer = await claude.messages.create(
        model="m", max_tokens=2000, messages=turn, tools=[WEATHER], thinking=thinking
    )
    assert [b.type for b in answer.content] == ["thinking", "text"]

    tampered = [{**block.model_dump(), "thinking": "something else"}, *first.content[1:]]
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        await claude.messages.create(
            model="m",
            max_tokens=2000,
            messages=[*ASK_WEATHER, {"role": "assistant", "content": tampered}, result],
            tools=[WEATHER],
            thinking=thinking,
        )
    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        await claude.messages.create(
            model="m",
            max_tokens=2000,
            messages=[*ASK_WEATHER, {"role": "assistant", "content": first.content[1:]}, result],
            tools=[WEATHER],
            thinking=thinking,
        )
    exact = await claude.messages.create(
        model="m",
        max_tokens=2000,
        messages=ASK_WEATHER,
        thinking=thinking,
        extra_headers={"x-sim-fault": "reasoning_tokens=40"},
    )
    assert count_text(exact.content[0].thinking) == 40  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"max_tokens": 1024}, "must be greater than `thinking.budget_tokens`"),
        ({"tool_choice": {"type": "any"}, "tools": [WEATHER]}, "forces tool use"),
        ({"temperature": 0.5}, "only be set to 1"),
        ({"top_k": 5}, "top_k"),
        ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "greater than or equal to 1024"),
    ],
)
async def test_thinking_constraints(
    sim_url: str, http: aiohttp.ClientSession, extra: dict[str, Any], message: str
) -> None:
    body = {
        **BODY,
        "max_tokens": 4000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        **extra,
    }
    status, _, payload = await post(http, sim_url, body)
    assert status == 400
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    assert message in payload["error"]["message"]


# -- streams -------------------------------------------------------------------------------


async def test_stream_event_sequence(sim_url: str, http: aiohttp.ClientSession) -> None:
    body = {
        "model": "m",
        "max_tokens": 2000,
        "messages": ASK_WEATHER,
        "tools": [WEATHER],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stream": True,
    }
    async with http.post(sim_url + "/v1/messages", json=body, headers=HEADERS) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = await read_events(resp)
    names = [n for n, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-2:] == ["message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 1
    blocks = [p["content_block"]["type"] for n, p in events if n == "content_block_start"]
    assert blocks == ["thinking", "text", "tool_use"]
    assert [p["index"] for n, p in events if n == "content_block_stop"] == [0, 1, 2]
    kinds = {p["delta"]["type"] for n, p in events if n == "content_block_delta"}
    assert kinds == {"thinking_delta", "signature_delta", "text_delta", "input_json_delta"}
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert final["usage"]["output_tokens"] > 16


async def test_stream_matches_the_whole_reply(claude: anthropic.AsyncAnthropic) -> None:
    fields: dict[str, Any] = {
        "model": "m",
        "max_tokens": 300,
        "messages": ASK_WEATHER,
        "tools": [WEATHER],
    }
    whole = await claude.messages.create(**fields)
    async with claude.messages.stream(**fields) as stream:
        texts = [t async for t in stream.text_stream]
        streamed = await stream.get_final_message()
    assert [b.to_dict() for b in streamed.content] == [b.to_dict() for b in whole.content]
    assert streamed.usage.output_tokens == whole.usage.output_tokens
    assert streamed.usage.input_tokens == whole.usage.input_tokens
    assert "".join(texts) == whole.content[0].text  # type: ignore[union-attr]
    raw_stream = await claude.messages.create(**BODY, stream=True)
    kinds = [event.type async for event in raw_stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


async def test_no_usage_without_a_stream(sim_url: str, http: aiohttp.ClientSession) -> None:
    async with http.post(
        sim_url + "/v1/messages", json=BODY, headers={**HEADERS, "x-sim-fault": "no_usage"}
    ) as resp:
        message = await resp.json()
    assert resp.status == 200 and message["content"][0]["text"]
    assert "usage" not in message


async def test_stream_faults(sim_url: str, http: aiohttp.ClientSession) -> None:
    body = {**BODY, "stream": True}
    async with http.post(
        sim_url + "/v1/messages",
        json=body,
        headers={**HEADERS, "x-sim-fault": "no_usage;cached_tokens=4"},
    ) as resp:
        events = await read_events(resp)
    assert "usage" not in events[-2][1]
    assert events[0][1]["message"]["usage"]["cache_read_input_tokens"] == 4
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(
            sim_url + "/v1/messages", json=body, headers={**HEADERS, "x-sim-fault": "cut_after=3"}
        ) as resp:
            await resp.read()


# -- errors and faults ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "kind", "message"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error", "x-api-key"),
        (
            {**HEADERS, "x-api-key": "sk-sim-invalid"},
            401,
            "authentication_error",
            "invalid x-api-key",
        ),
        ({"x-api-key": "k"}, 400, "invalid_request_error", "anthropic-version"),
        ({"authorization": "Bearer k", "anthropic-version": "2023-06-01"}, 200, "", ""),
    ],
)
async def test_headers_are_checked(
    sim_url: str,
    http: aiohttp.ClientSession,
    headers: dict[str, str],
    status: int,
    kind: str,
    message: str,
) -> None:
    got, response_headers, payload = await post(http, sim_url, BODY, headers)
    assert got == status
    assert response_headers["request-id"].startswith("req_")
    if status != 200:
        assert payload["type"] == "error"
        assert payload["error"]["type"] == kind and message in payload["error"]["message"]
        assert payload["request_id"] == response_headers["request-id"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        ({"model": "m", "messages": ASK_WEATHER}, "max_tokens: Field required"),
        ({**BODY, "max_tokens": "9"}, "max_tokens: Input should be a valid integer"),
        ({**BODY, "messages": []}, "at least one message"),
        ({**BODY, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({**BODY, "stream_options": {}}, "stream_options: Extra inputs are not permitted"),
        ({**BODY, "metadata": {"sim_fault": "status=500"}}, "metadata.sim_fault"),
        ({**BODY, "temperature": 1.5}, "temperature"),
        (
            {**BODY, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            "non-empty",
        ),
        (
            {
                **BODY,
                "messages": [
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x"}]}
                ],
            },
            "unexpected `tool_use_id`",
        ),
        (
            {
                **BODY,
                "messages": [
                    *ASK_WEATHER,
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                    },
                    {"role": "user", "content": "and?"},
                ],
            },
            "without `tool_result`",
        ),
        (
            {**BODY, "tools": [{"name": "bad name!", "input_schema": {"type": "object"}}]},
            "tools.0.name",
        ),
        ({**BODY, "tool_choice": {"type": "tool", "name": "nope"}, "tools": [WEATHER]}, "nope"),
        (
            {
                **BODY,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/bmp",
                                    "data": "x",
                                },
                            }
                        ],
                    }
                ],
            },
            "media_type",
        ),
    ],
)
async def test_validation_errors(
    sim_url: str, http: aiohttp.ClientSession, body: Any, message: str
) -> None:
    status, _, payload = await post(http, sim_url, body)
    assert status == 400
    assert payload["error"]["type"] == "invalid_request_error"
    assert message in payload["error"]["message"]


async def test_sdk_raises_bad_request(claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await claude.messages.create(model="m", max_tokens=10, messages=[])
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    ("script", "status", "error_class", "kind"),
    [
        ("status=429;retry_after=2", 429, anthropic.RateLimitError, "rate_limit_error"),
        ("error_type=rate_limit_error", 429, anthropic.RateLimitError, "rate_limit_error"),
        ("error_type=overloaded", 529, anthropic.InternalServerError, "overloaded_error"),
        ("status=529", 529, anthropic.InternalServerError, "overloaded_error"),
        ("status=500", 500, anthropic.InternalServerError, "api_error"),
        ("error_type=billing_error", 402, anthropic.APIStatusError, "billing_error"),
        ("error_type=invalid_api_key", 401, anthropic.AuthenticationError, "authentication_error"),
        ("status=403", 403, anthropic.PermissionDeniedError, "permission_error"),
        ("status=404", 404, anthropic.NotFoundError, "not_found_error"),
        ("error_type=insufficient_quota", 400, anthropic.BadRequestError, "invalid_request_error"),
        ("status=503", 503, anthropic.InternalServerError, "api_error"),
    ],
)
async def test_fault_errors_in_anthropic_shape(
    claude: anthropic.AsyncAnthropic,
    script: str,
    status: int,
    error_class: type[Exception],
    kind: str,
) -> None:
    with pytest.raises(error_class) as info:
        await claude.messages.create(**BODY, extra_headers={"x-sim-fault": script})
    assert isinstance(info.value, anthropic.APIStatusError)
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == kind
    if status == 429:
        expected = "2" if "retry_after=2" in script else "1"
        assert info.value.response.headers["retry-after"] == expected
    if "insufficient_quota" in script:
        assert "credit balance is too low" in info.value.body["error"]["message"]


async def test_fault_script_in_metadata_user_id(claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.RateLimitError):
        await claude.messages.create(**BODY, metadata={"user_id": "sim:status=429"})
    message = await claude.messages.create(**BODY, metadata={"user_id": "sim:cached_tokens=5"})
    assert message.usage.cache_read_input_tokens == 5
    total = message.usage.input_tokens + 5
    plain = await claude.messages.create(**BODY, metadata={"user_id": "someone"})
    assert plain.usage.input_tokens == total and plain.usage.cache_read_input_tokens == 0


async def test_fail_times_then_recovery(sim_url: str, http: aiohttp.ClientSession) -> None:
    fault = {**HEADERS, "x-sim-fault": "error_type=overloaded;fail_times=1;key=anthropic-ft"}
    first, _, body = await post(http, sim_url, BODY, fault)
    assert (first, body["error"]["type"]) == (529, "overloaded_error")
    second, _, body = await post(http, sim_url, BODY, fault)
    assert second == 200 and body["type"] == "message"


async def test_bad_script_hang_latency_and_partial_body(
    sim_url: str, http: aiohttp.ClientSession, claude: anthropic.AsyncAnthropic
) -> None:
    status, _, body = await post(http, sim_url, BODY, {**HEADERS, "x-sim-fault": "explode"})
    assert status == 400 and "explode" in body["error"]["message"]
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        await claude.with_options(timeout=0.3).messages.create(
            **BODY, extra_headers={"x-sim-fault": "hang"}
        )
    status, _, _ = await post(http, sim_url, BODY, {**HEADERS, "x-sim-fault": "latency_ms=200"})
    assert status == 200 and time.monotonic() - started >= 0.2
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(
            sim_url + "/v1/messages", json=BODY, headers={**HEADERS, "x-sim-fault": "cut_after=1"}
        ) as resp:
            await resp.read()


async def test_requests_are_counted(sim_url: str, http: aiohttp.ClientSession) -> None:
    await post(http, sim_url, BODY)
    await post(
        http,
        sim_url,
        {"model": "claude-sim-model", "messages": ASK_WEATHER},
        path="/v1/messages/count_tokens",
    )
    await post(http, sim_url, BODY, {"anthropic-version": "2023-06-01"})  # refused, still counted
    async with http.get(sim_url + "/sim/stats") as resp:
        stats = await resp.json()
    assert stats["by_route"]["/v1/messages"] == 2
    assert stats["by_route"]["/v1/messages/count_tokens"] == 1
    assert stats["by_model"]["claude-sim-model"] == 2
