"""The official `anthropic` SDK (and the `openai` SDK on a Claude model) against a running gateway.

`claude-sim` is served over the Anthropic protocol, `sim-small` over OpenAI's: the Messages
route works for both, and an OpenAI client works on the Anthropic upstream. Prices in the
harness are 1 micro-credit per input token, 0.5 per cached input token and 2 per output token.
Thinking needs max_tokens above 1024, more than claude-sim may produce (1000): those tests use
a second gateway with `claude-think` (the same upstream, 8000 output tokens).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from harness import PRICES, Gateway, Sim, ledger_consistent, start_gateway, stop

from faregate.tokens import count_messages

MODELS = ["claude-sim", "sim-small"]
PROMPT = "Tell me about the sea"
MSG: list[Any] = [{"role": "user", "content": PROMPT}]
ASK_WEATHER: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
OPENAI_WEATHER: Any = {
    "type": "function",
    "function": {
        "name": WEATHER["name"],
        "description": WEATHER["description"],
        "parameters": WEATHER["input_schema"],
    },
}
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}

_OPEN: list[anthropic.Anthropic | openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients(gateway: Gateway) -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()
    gateway.reset_routing()  # faults here must not cool claude-sim down for later tests


@pytest.fixture
def funded(gateway: Gateway) -> tuple[str, str]:
    return gateway.account(10_000_000)


@pytest.fixture(scope="module")
def thinker(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway that also serves `claude-think`: claude-sim's upstream with room to think."""
    price = ", ".join(f"{k} = {v}" for k, v in PRICES.items())
    model = "\n".join(
        [
            '[models."claude-think"]',
            'provider = "sim-anthropic"',
            'upstream = "claude-sonnet-4-5"',
            "max_output_tokens = 8000",
            f"price = {{ {price} }}",
        ]
    )
    tmp: Path = tmp_path_factory.mktemp("thinker")
    gw = start_gateway(sim.url, tmp, extra_models=model + "\n")
    yield gw
    stop(gw.proc)


def _claude(gw: Gateway, key: str) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    _OPEN.append(client)
    return client


def _aclaude(gw: Gateway, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0)


def _openai(gw: Gateway, key: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    _OPEN.append(client)
    return client


def price(prompt: int, completion: int, cached: int = 0) -> int:
    """The harness price of a usage, in micro-credits (rounded up once)."""
    micro = (prompt - cached) * 1_000_000 + cached * 500_000 + completion * 2_000_000
    return -(-micro // 10**6)


def settled(gw: Gateway, account: str) -> list[dict[str, Any]]:
    return [r for r in gw.ledger(account) if r["kind"] == "settle"]


# -- the Anthropic SDK ---------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_create_bills_its_usage(gateway: Gateway, funded: tuple[str, str], model: str) -> None:
    account, key = funded
    raw = _claude(gateway, key).messages.with_raw_response.create(
        model=model, max_tokens=100, messages=MSG, system="Be brief."
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text.startswith('You said: "Tell me about the sea"')  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    usage = message.usage
    flat = [{"role": "system", "content": "Be brief."}, *MSG]
    assert usage.input_tokens == count_messages(flat)  # both simulators count exactly so
    assert usage.cache_read_input_tokens == 0
    cost = price(usage.input_tokens, usage.output_tokens)
    assert raw.headers["x-faregate-cost"] == str(cost)
    assert raw.headers["x-faregate-model"] == model
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert raw.headers["x-faregate-cost-usd"] == f"0.{cost:06d}"
    assert "cost" not in message.usage.model_dump()
    (row,) = settled(gateway, account)
    assert (row["cost"], row["prompt_tokens"], row["completion_tokens"]) == (
        cost,
        usage.input_tokens,
        usage.output_tokens,
    )
    assert row["estimated"] in (False, 0)
    ledger_consistent(gateway, account)


@pytest.mark.parametrize("model", MODELS)
def test_stream_helper_and_raw_events(
    gateway: Gateway, funded: tuple[str, str], model: str
) -> None:
    account, key = funded
    client = _claude(gateway, key)
    with client.messages.stream(model=model, max_tokens=100, messages=MSG) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text  # type: ignore[union-attr]
    assert text.startswith("You said:")
    assert final.stop_reason == "end_turn"
    cost = price(final.usage.input_tokens, final.usage.output_tokens)
    assert [r["cost"] for r in settled(gateway, account)] == [cost]
    events = list(client.messages.create(model=model, max_tokens=100, messages=MSG, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    ledger_consistent(gateway, account)


@pytest.mark.parametrize("model", MODELS)
async def test_async_create_and_stream(
    gateway: Gateway, funded: tuple[str, str], model: str
) -> None:
    async with _aclaude(gateway, funded[1]) as client:
        message = await client.messages.create(model=model, max_tokens=3, messages=MSG)
        assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3
        async with client.messages.stream(model=model, max_tokens=100, messages=MSG) as stream:
            parts = [t async for t in stream.text_stream]
            final = await stream.get_final_message()
    assert "".join(parts) == final.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_round_trip(gateway: Gateway, funded: tuple[str, str], model: str) -> None:
    client = _claude(gateway, funded[1])
    first = client.messages.create(
        model=model, max_tokens=200, messages=ASK_WEATHER, tools=[WEATHER]
    )
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather"
    assert set(call.input) == {"city"}  # type: ignore[arg-type]
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "18 C and sunny"}
    turn: list[Any] = [
        *ASK_WEATHER,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [result]},
    ]
    answer = client.messages.create(model=model, max_tokens=200, messages=turn, tools=[WEATHER])
    assert answer.stop_reason == "end_turn" and answer.content[-1].type == "text"
    with client.messages.stream(
        model=model,
        max_tokens=200,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        streamed = stream.get_final_message()
    uses = [b for b in streamed.content if b.type == "tool_use"]
    assert [b.name for b in uses] == ["get_weather"] and "city" in uses[0].input  # type: ignore[operator]


def test_thinking_round_trip_on_the_anthropic_upstream(thinker: Gateway) -> None:
    client = _claude(thinker, thinker.account(10_000_000)[1])
    first = client.messages.create(
        model="claude-think",
        max_tokens=2000,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        thinking=THINKING,
    )
    assert [b.type for b in first.content] == ["thinking", "text", "tool_use"]
    assert first.content[0].signature  # type: ignore[union-attr]
    call = first.content[-1]
    assert call.type == "tool_use"
    turn: list[Any] = [
        *ASK_WEATHER,
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "ok"}],
        },
    ]
    # the simulator checks the signature of the thinking block sent back
    with client.messages.stream(
        model="claude-think", max_tokens=2000, messages=turn, tools=[WEATHER], thinking=THINKING
    ) as stream:
        answer = stream.get_final_message()
    assert [b.type for b in answer.content] == ["thinking", "text"]
    assert answer.content[0].signature  # type: ignore[union-attr]
    assert answer.usage.output_tokens_details is not None
    assert answer.usage.output_tokens_details.thinking_tokens == 16


def test_thinking_on_an_openai_upstream(thinker: Gateway) -> None:
    message = _claude(thinker, thinker.account(10_000_000)[1]).messages.create(
        model="sim-large", max_tokens=2000, messages=MSG, thinking=THINKING
    )
    assert message.content[-1].type == "text"


def test_thinking_needs_room_on_claude_sim(gateway: Gateway, funded: tuple[str, str]) -> None:
    with pytest.raises(anthropic.BadRequestError) as big:
        _claude(gateway, funded[1]).messages.create(
            model="claude-sim", max_tokens=2000, messages=MSG, thinking=THINKING
        )
    # 2000 is clamped to claude-sim's 1000, which leaves no room for a 1024-token budget
    message = big.value.body["error"]["message"]  # type: ignore[index]
    assert "must be less than max_tokens (1000;" in message and "clamped" in message
    with pytest.raises(openai.BadRequestError) as small:
        _openai(gateway, funded[1]).chat.completions.create(
            model="claude-sim", messages=MSG, reasoning_effort="low"
        )
    assert small.value.param == "max_tokens" and "above 1024" in small.value.message


def test_json_output_format_on_the_anthropic_upstream(
    gateway: Gateway, funded: tuple[str, str]
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    client = _claude(gateway, funded[1])
    message = client.messages.create(
        model="claude-sim",
        max_tokens=200,
        messages=MSG,
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}},
    )
    assert [b.type for b in message.content] == ["text"]
    assert set(json.loads(message.content[0].text)) == {"name", "age"}  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens(gateway: Gateway, funded: tuple[str, str], model: str) -> None:
    client = _claude(gateway, funded[1])
    counted = client.messages.count_tokens(model=model, messages=MSG, system="Be brief.")
    flat = [{"role": "system", "content": "Be brief."}, *MSG]
    assert counted.input_tokens == count_messages(flat)
    message = client.messages.create(model=model, max_tokens=20, messages=MSG, system="Be brief.")
    assert message.usage.input_tokens == counted.input_tokens
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="no-such-model", messages=MSG)


@pytest.mark.parametrize("model", MODELS)
def test_error_types(gateway: Gateway, funded: tuple[str, str], model: str) -> None:
    with pytest.raises(anthropic.AuthenticationError) as auth:
        _claude(gateway, "fg-wrong").messages.create(model=model, max_tokens=10, messages=MSG)
    assert auth.value.status_code == 401
    assert auth.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]

    _, poor = gateway.account(1)
    with pytest.raises(anthropic.APIStatusError) as broke:
        _claude(gateway, poor).messages.create(model=model, max_tokens=10, messages=MSG)
    assert broke.value.status_code == 402
    assert broke.value.body["type"] == "error"  # type: ignore[index]
    assert broke.value.body["error"]["type"] == "billing_error"  # type: ignore[index]

    client = _claude(gateway, funded[1])
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=10, messages=MSG)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]

    # An upstream 429 cools the deployment down; with nothing else to serve, the client gets
    # 503 (Anthropic's overloaded_error) with the upstream's Retry-After.
    faulty = "claude-sim" if model == "claude-sim" else "sim-faulty"
    with pytest.raises(anthropic.InternalServerError) as limited:
        client.messages.create(
            model=faulty,
            max_tokens=10,
            messages=MSG,
            metadata={"user_id": "sim:status=429;retry_after=3"},
        )
    assert limited.value.status_code == 503
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]

    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(
            model=model, max_tokens=10, messages=MSG, extra_body={"temperature": 3}
        )
    assert bad.value.body["error"]["message"].startswith("temperature: ")  # type: ignore[index]
    ledger_consistent(gateway, funded[0])


def test_missing_max_tokens_is_400(gateway: Gateway, funded: tuple[str, str]) -> None:
    client = _claude(gateway, funded[1])
    with pytest.raises(anthropic.BadRequestError) as info:
        client.post("/v1/messages", body={"model": "claude-sim", "messages": MSG}, cast_to=object)
    assert info.value.body["type"] == "error"  # type: ignore[index]
    assert info.value.body["error"] == {  # type: ignore[index]
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


def test_upstream_overload_and_broken_stream(gateway: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    client = _claude(gateway, key)
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        client.messages.create(
            model="claude-sim", max_tokens=10, messages=MSG, metadata={"user_id": "sim:status=529"}
        )
    assert overloaded.value.status_code == 502
    assert overloaded.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    stream = client.messages.create(
        model="claude-sim",
        max_tokens=100,
        messages=MSG,
        stream=True,
        metadata={"user_id": "sim:cut_after=3"},
    )
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as broken:
        seen.extend(event.type for event in stream)
    assert "message_start" in seen and "message_stop" not in seen
    assert broken.value.body["type"] == "error"  # type: ignore[index]
    (row,) = settled(gateway, account)
    assert row["estimated"] in (True, 1) and row["cost"] > 0
    ledger_consistent(gateway, account)


# -- the OpenAI SDK on the Anthropic upstream ----------------------------------------------


def test_openai_client_on_claude_bills_the_upstream_usage(
    gateway: Gateway, funded: tuple[str, str]
) -> None:
    account, key = funded
    raw = _openai(gateway, key).chat.completions.with_raw_response.create(
        model="claude-sim", messages=MSG, max_tokens=100, user="sim:cached_tokens=4"
    )
    reply = raw.parse()
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens == count_messages(MSG)
    assert usage.prompt_tokens_details.cached_tokens == 4
    cost = price(usage.prompt_tokens, usage.completion_tokens, cached=4)
    assert (usage.model_extra or {})["cost_micro_credits"] == cost
    assert raw.headers["x-faregate-cost"] == str(cost)
    (row,) = settled(gateway, account)
    assert (row["cost"], row["prompt_tokens"], row["cached_tokens"]) == (
        cost,
        usage.prompt_tokens,
        4,
    )
    assert row["completion_tokens"] == usage.completion_tokens
    ledger_consistent(gateway, account)


def test_openai_stream_on_claude(gateway: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    chunks = list(
        _openai(gateway, key).chat.completions.create(
            model="claude-sim",
            messages=MSG,
            max_tokens=100,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("You said:")
    assert len(chunks) > 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    cost = price(usage.prompt_tokens, usage.completion_tokens)
    assert (usage.model_extra or {})["cost_micro_credits"] == cost
    (row,) = settled(gateway, account)
    assert row["cost"] == cost and row["estimated"] in (False, 0)


def test_openai_tools_on_claude(gateway: Gateway, funded: tuple[str, str]) -> None:
    client = _openai(gateway, funded[1])
    reply = client.chat.completions.create(
        model="claude-sim", messages=ASK_WEATHER, tools=[OPENAI_WEATHER], tool_choice="required"
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(calls[0].function.arguments)  # type: ignore[union-attr]
    follow_up: list[Any] = [
        *ASK_WEATHER,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
    ]
    answer = client.chat.completions.create(
        model="claude-sim", messages=follow_up, tools=[OPENAI_WEATHER]
    )
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content
    stream = client.chat.completions.create(
        model="claude-sim", messages=ASK_WEATHER, tools=[OPENAI_WEATHER], stream=True
    )
    name, args, finish = "", "", None
    for chunk in stream:
        for c in chunk.choices:
            for call in c.delta.tool_calls or ():
                name += call.function.name or "" if call.function else ""
                args += call.function.arguments or "" if call.function else ""
            finish = c.finish_reason or finish
    assert name == "get_weather" and "city" in json.loads(args) and finish == "tool_calls"


def test_openai_reasoning_and_json_schema_on_claude(thinker: Gateway) -> None:
    client = _openai(thinker, thinker.account(10_000_000)[1])
    reply = client.chat.completions.create(
        model="claude-think", messages=MSG, max_tokens=3000, reasoning_effort="low"
    )
    message = reply.choices[0].message
    extra = message.model_extra or {}
    assert extra["reasoning_content"] and extra["thinking_blocks"][0]["signature"]
    assert reply.usage and reply.usage.completion_tokens_details
    assert reply.usage.completion_tokens_details.reasoning_tokens == 16
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    structured = client.chat.completions.create(
        model="claude-sim",
        messages=MSG,
        response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
    )
    assert set(json.loads(structured.choices[0].message.content or "")) == {"title"}
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="claude-sim", messages=MSG, n=2)
    assert refused.value.code == "unsupported_feature" and refused.value.param == "n"


# -- the raw wire --------------------------------------------------------------------------


def test_raw_wire_with_x_api_key(gateway: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    url = gateway.url + "/v1/messages"
    body = {"model": "claude-sim", "max_tokens": 50, "messages": MSG, "stream": True}
    r = httpx.post(url, json=body, headers={"x-api-key": key}, timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-faregate-deployment"] and r.headers["request-id"].startswith("req_")
    assert "x-faregate-cost" not in r.headers  # not known when a stream starts
    frames = [f for f in r.content.split(b"\n\n") if f]
    names = [f.split(b"\n")[0].removeprefix(b"event: ").decode() for f in frames]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-2:] == ["message_delta", "message_stop"]
    final = json.loads(frames[-2].split(b"\n")[1].removeprefix(b"data: "))
    usage = final["usage"]
    (row,) = settled(gateway, account)
    assert row["cost"] == price(usage["input_tokens"], usage["output_tokens"])

    unauthorized = httpx.post(url, json=body, timeout=10)
    assert unauthorized.status_code == 401
    assert unauthorized.json()["type"] == "error"
    assert unauthorized.json()["error"]["type"] == "authentication_error"
    broken = httpx.post(url, content=b"{oops", headers={"x-api-key": key}, timeout=10)
    assert broken.status_code == 400
    assert broken.json()["error"]["type"] == "invalid_request_error"
    extra = httpx.post(url, json={**body, "n": 2}, headers={"x-api-key": key}, timeout=10)
    assert extra.status_code == 400
    assert extra.json()["error"]["message"] == "n: Extra inputs are not permitted"


def test_stream_without_upstream_usage_bills_an_estimate(
    gateway: Gateway, funded: tuple[str, str]
) -> None:
    account, key = funded
    with _claude(gateway, key).messages.stream(
        model="claude-sim", max_tokens=100, messages=MSG, metadata={"user_id": "sim:no_usage"}
    ) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens > 0 and final.stop_reason == "end_turn"
    (row,) = settled(gateway, account)
    assert row["estimated"] in (True, 1)
    assert row["cost"] == price(final.usage.input_tokens, final.usage.output_tokens)
