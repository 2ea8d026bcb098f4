"""The Responses API and legacy completions through the official `openai` SDK (unmodified but
for base URL and key) and the OpenAI Agents SDK, against OpenAI-chat, Anthropic, Gemini and
Responses-native upstreams (the simulator); money asserted from the ledger."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from harness import (
    PRICES,
    Gateway,
    Sim,
    ledger_consistent,
    openai_client,
    responses_models,
    start_gateway,
    stop,
)

UPSTREAMS = ("m-openai", "m-anthropic", "m-gemini", "m-responses")
LEGACY = ("m-openai", "m-anthropic", "m-gemini", "m-legacy")
PNG = (
    "data:image/png;base64,"
    + base64.b64encode(
        base64.b64decode(
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
        )
    ).decode()
)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_gateway(
        sim.url, tmp_path_factory.mktemp("responses"), extra_models=responses_models(sim.url)
    )
    yield g
    stop(g.proc)


@pytest.fixture
def funded(gw: Gateway) -> tuple[str, str]:
    return gw.account(100_000_000)


client = openai_client


def cost(usage: Any) -> int:
    """The exact cost of a Responses usage at the harness prices."""
    cached = usage.input_tokens_details.cached_tokens
    total = (
        (usage.input_tokens - cached) * PRICES["input"]
        + cached * PRICES["cached_input"]
        + usage.output_tokens * PRICES["output"]
    )
    return -(-total // 1_000_000)


def assert_usage_cost(usage: Any, micro_credits: int) -> None:
    """`usage.cost` in US dollars (one million micro-credits each), the integer beside it."""
    assert usage.cost_micro_credits == micro_credits
    assert Decimal(str(usage.cost)) == Decimal(micro_credits) / 1_000_000


def settled(gw: Gateway, account: str) -> list[int]:
    return [r["cost"] for r in gw.ledger(account) if r["kind"] == "settle"]


@pytest.mark.parametrize("model", UPSTREAMS)
def test_text_response_is_billed_exactly(gw: Gateway, funded: tuple[str, str], model: str) -> None:
    account, key = funded
    raw = client(gw, key).responses.with_raw_response.create(
        model=model, input="Tell me about the sea", instructions="Be brief.", store=False
    )
    response = raw.parse()
    assert response.object == "response"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.model == model
    assert response.output_text
    assert response.output[-1].type == "message"
    assert response.usage is not None and response.usage.output_tokens > 0
    assert raw.headers["x-faregate-cost"] == str(cost(response.usage))
    assert settled(gw, account) == [cost(response.usage)]
    assert_usage_cost(response.usage, cost(response.usage))
    ledger_consistent(gw, account)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_tool_round_trip_with_function_call_output(
    gw: Gateway, funded: tuple[str, str], model: str
) -> None:
    account, key = funded
    c = client(gw, key)
    first = c.responses.create(
        model=model, input="What is the weather in Paris?", tools=[WEATHER], store=False
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert "city" in json.loads(call.arguments)
    second = c.responses.create(
        model=model,
        tools=[WEATHER],
        store=False,
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'},
        ],
    )
    assert second.status == "completed"
    assert second.output_text
    assert not [item for item in second.output if item.type == "function_call"]
    assert len(settled(gw, account)) == 2
    ledger_consistent(gw, account)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_json_schema_output(gw: Gateway, funded: tuple[str, str], model: str) -> None:
    _, key = funded
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    response = client(gw, key).responses.create(
        model=model,
        input="Invent a person.",
        text={
            "format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}
        },
    )
    value = json.loads(response.output_text)
    assert isinstance(value["name"], str)
    assert isinstance(value["age"], int)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_image_in_input(gw: Gateway, funded: tuple[str, str], model: str) -> None:
    _, key = funded
    response = client(gw, key).responses.create(
        model=model,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in this picture?"},
                    {"type": "input_image", "image_url": PNG, "detail": "low"},
                ],
            }
        ],
    )
    assert response.status == "completed"
    assert response.output_text
    # an image part is counted (1105 tokens in the hold's bound): a real prompt went upstream
    assert response.usage is not None and response.usage.input_tokens > 0


@pytest.mark.parametrize("model", UPSTREAMS)
def test_stream_helpers(gw: Gateway, funded: tuple[str, str], model: str) -> None:
    account, key = funded
    deltas: list[str] = []
    types: list[str] = []
    numbers: list[int] = []
    with client(gw, key).responses.stream(model=model, input="Tell me about the sea") as stream:
        for event in stream:
            types.append(event.type)
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    for expected in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert expected in types
    assert numbers == list(range(len(numbers)))
    assert "".join(deltas) == final.output_text != ""
    assert final.usage is not None
    assert settled(gw, account) == [cost(final.usage)]
    assert_usage_cost(final.usage, cost(final.usage))
    ledger_consistent(gw, account)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_streamed_tool_call(gw: Gateway, funded: tuple[str, str], model: str) -> None:
    _, key = funded
    pieces: list[str] = []
    with client(gw, key).responses.stream(
        model=model, input="What is the weather in Paris?", tools=[WEATHER]
    ) as stream:
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                pieces.append(event.delta)
        final = stream.get_final_response()
    [call] = [item for item in final.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert "".join(pieces) == call.arguments
    assert "city" in json.loads(call.arguments)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_previous_response_id_over_three_turns(
    gw: Gateway, funded: tuple[str, str], model: str
) -> None:
    account, key = funded
    c = client(gw, key)
    one = c.responses.create(model=model, input="My name is Ada.")
    two = c.responses.create(model=model, input="I live in Paris.", previous_response_id=one.id)
    with c.responses.stream(
        model=model, input="What do you know about me?", previous_response_id=two.id
    ) as stream:
        three = stream.get_final_response()
    assert three.previous_response_id == two.id
    assert one.usage is not None and two.usage is not None and three.usage is not None
    # each turn's prompt holds the earlier turns, so it grows by more than the new text
    assert one.usage.input_tokens < two.usage.input_tokens < three.usage.input_tokens
    assert two.usage.input_tokens > one.usage.input_tokens + one.usage.output_tokens
    stored = c.responses.retrieve(three.id)
    assert stored.id == three.id
    assert stored.output_text == three.output_text
    items = c.responses.input_items.list(three.id)
    texts = [item.content[0].text for item in items.data if item.type == "message"]
    assert texts == ["What do you know about me?"]
    assert sorted(settled(gw, account)) == sorted(cost(r.usage) for r in (one, two, three))
    ledger_consistent(gw, account)


def test_retrieve_and_delete(gw: Gateway, funded: tuple[str, str]) -> None:
    _, key = funded
    c = client(gw, key)
    created = c.responses.create(model="m-openai", input="Hello there")
    assert c.responses.retrieve(created.id).output_text == created.output_text
    c.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.delete(created.id)


def test_store_false_keeps_nothing(gw: Gateway, funded: tuple[str, str]) -> None:
    _, key = funded
    c = client(gw, key)
    created = c.responses.create(model="m-openai", input="Hello there", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(created.id)


def test_another_accounts_response_is_not_found(gw: Gateway, funded: tuple[str, str]) -> None:
    _, key = funded
    _, other_key = gw.account(10_000_000)
    created = client(gw, key).responses.create(model="m-openai", input="Hello there")
    other = client(gw, other_key)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(created.id)
    client(gw, key).responses.retrieve(created.id)  # still there for its owner


@pytest.mark.parametrize("model", UPSTREAMS)
def test_agents_sdk_runs_an_agent_with_a_function_tool(
    gw: Gateway, funded: tuple[str, str], model: str
) -> None:
    agents = pytest.importorskip("agents")
    _, key = funded
    asked: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"Sunny and 21 degrees in {city}."

    agents.set_tracing_disabled(True)

    async def run() -> Any:
        async with openai.AsyncOpenAI(
            base_url=gw.url + "/v1", api_key=key, max_retries=0
        ) as aclient:
            agent = agents.Agent(
                name="forecaster",
                instructions="Answer with the weather tool.",
                tools=[get_weather],
                model=agents.OpenAIResponsesModel(model=model, openai_client=aclient),
            )
            return await agents.Runner.run(agent, "What is the weather in Paris?")

    result = asyncio.run(run())
    assert len(asked) == 1
    assert isinstance(result.final_output, str) and result.final_output


@pytest.mark.parametrize("model", LEGACY)
def test_legacy_completion(gw: Gateway, funded: tuple[str, str], model: str) -> None:
    account, key = funded
    raw = client(gw, key).completions.with_raw_response.create(
        model=model, prompt="Once upon a time", max_tokens=20, echo=True
    )
    reply = raw.parse()
    assert reply.object == "text_completion"
    assert reply.choices[0].text.startswith("Once upon a time")
    assert len(reply.choices[0].text) > len("Once upon a time")
    assert reply.choices[0].finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage is not None
    expected = usage.prompt_tokens * 1 + usage.completion_tokens * 2
    assert raw.headers["x-faregate-cost"] == str(expected)
    assert settled(gw, account) == [expected]
    assert_usage_cost(usage, expected)
    ledger_consistent(gw, account)


@pytest.mark.parametrize("model", LEGACY)
def test_legacy_completion_stream(gw: Gateway, funded: tuple[str, str], model: str) -> None:
    account, key = funded
    stream = client(gw, key).completions.create(
        model=model,
        prompt="Once upon a time",
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    usage = None
    finish = None
    for chunk in stream:
        assert chunk.object == "text_completion"
        for choice in chunk.choices:
            text += choice.text
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert text
    assert finish in ("stop", "length")
    assert usage is not None
    assert settled(gw, account) == [usage.prompt_tokens + 2 * usage.completion_tokens]
    assert_usage_cost(usage, usage.prompt_tokens + 2 * usage.completion_tokens)
    ledger_consistent(gw, account)


def test_legacy_logprobs_pass_through_to_a_native_upstream(
    gw: Gateway, funded: tuple[str, str]
) -> None:
    _, key = funded
    reply = client(gw, key).completions.create(
        model="m-legacy", prompt=["One", "Two"], max_tokens=5, logprobs=1
    )
    assert len(reply.choices) == 2
    assert reply.choices[0].logprobs is not None and reply.choices[0].logprobs.tokens


def test_legacy_logprobs_refused_for_a_translated_upstream(
    gw: Gateway, funded: tuple[str, str]
) -> None:
    account, key = funded
    with pytest.raises(openai.BadRequestError) as err:
        client(gw, key).completions.create(
            model="m-anthropic", prompt="One", max_tokens=5, logprobs=1
        )
    assert "logprobs" in str(err.value)
    assert [r["kind"] for r in gw.ledger(account)] == ["grant"]


def test_fallback_serves_and_bills_the_model_that_served(
    gw: Gateway, funded: tuple[str, str]
) -> None:
    account, key = funded
    raw = client(gw, key).responses.with_raw_response.create(model="m-fallback", input="Hi there")
    response = raw.parse()
    assert raw.headers["x-faregate-model"] == "m-openai"
    assert response.model == "m-openai"
    assert settled(gw, account) == [cost(response.usage)]


def test_idempotency_key_bills_once(gw: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    headers = {"authorization": f"Bearer {key}", "idempotency-key": "resp-once-1"}
    body = {"model": "m-openai", "input": "Hello there"}
    first = httpx.post(gw.url + "/v1/responses", json=body, headers=headers, timeout=20)
    again = httpx.post(gw.url + "/v1/responses", json=body, headers=headers, timeout=20)
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert len(settled(gw, account)) == 1


@pytest.mark.parametrize("model", ["m-openai", "m-responses"])
def test_stream_broken_after_the_first_byte_ends_failed(
    gw: Gateway, funded: tuple[str, str], model: str
) -> None:
    account, key = funded
    body = {"model": model, "input": "Tell me about the sea", "stream": True}
    body["user"] = "sim:cut_after=3"
    with httpx.stream(
        "POST",
        gw.url + "/v1/responses",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=20,
    ) as r:
        text = r.read().decode()
    events = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ")]
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed"
    rows = [r for r in gw.ledger(account) if r["kind"] == "settle"]
    assert len(rows) == 1 and rows[0]["estimated"]
    ledger_consistent(gw, account)


# -- bad input: a clear 400/404, nothing held -------------------------------------------------


def _post(gw: Gateway, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/responses", json=body, headers={"authorization": f"Bearer {key}"}, timeout=20
    )


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        (
            {"input": [{"type": "computer_call_output", "call_id": "x"}]},
            400,
            "input[0].type",
            "computer_call_output",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "call_nope", "output": "1"}]},
            400,
            "input[0].call_id",
            "call_nope",
        ),
        (
            {"input": "hi", "tools": [{"type": "web_search"}]},
            400,
            "tools[0].type",
            "web_search",
        ),
        (
            {"input": "hi", "previous_response_id": "resp_missing"},
            404,
            "previous_response_id",
            "resp_missing",
        ),
        ({"input": "hi", "frobnicate": 1}, 400, "frobnicate", "frobnicate"),
        ({"input": 5}, 400, "input", "input"),
    ],
)
def test_bad_input_is_refused_before_any_hold(
    gw: Gateway, funded: tuple[str, str], body: dict[str, Any], status: int, param: str, words: str
) -> None:
    account, key = funded
    r = _post(gw, key, {"model": "m-openai", **body})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param
    assert words in error["message"]
    assert r.headers["x-faregate-cost"] == "0"
    assert [row["kind"] for row in gw.ledger(account)] == ["grant"]


def test_foreign_previous_response_id_is_not_found(gw: Gateway, funded: tuple[str, str]) -> None:
    _, key = funded
    other_account, other_key = gw.account(10_000_000)
    created = client(gw, key).responses.create(model="m-openai", input="Hello there")
    r = _post(
        gw, other_key, {"model": "m-openai", "input": "hi", "previous_response_id": created.id}
    )
    assert r.status_code == 404
    assert r.json()["error"]["param"] == "previous_response_id"
    assert [row["kind"] for row in gw.ledger(other_account)] == ["grant"]


def test_orphan_output_against_a_previous_response(gw: Gateway, funded: tuple[str, str]) -> None:
    """A call id from a stored earlier turn counts; an unknown one is refused."""
    account, key = funded
    c = client(gw, key)
    first = c.responses.create(
        model="m-openai", input="What is the weather in Paris?", tools=[WEATHER]
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    before = gw.ledger(account)
    r = _post(
        gw,
        key,
        {
            "model": "m-openai",
            "previous_response_id": first.id,
            "input": [{"type": "function_call_output", "call_id": "call_other", "output": "x"}],
        },
    )
    assert r.status_code == 400
    assert gw.ledger(account) == before
    second = c.responses.create(
        model="m-openai",
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}],
    )
    assert second.output_text


@pytest.mark.parametrize("model", UPSTREAMS)
def test_reasoning_is_reported(gw: Gateway, funded: tuple[str, str], model: str) -> None:
    """Reasoning tokens in usage from every upstream; a reasoning item with its text where the
    upstream exposes it (Anthropic thinking, Gemini thoughts)."""
    _, key = funded
    response = client(gw, key).responses.create(
        model=model, input="Think first", reasoning={"effort": "low"}, max_output_tokens=4000
    )
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens > 0
    reasoning = [item for item in response.output if item.type == "reasoning"]
    if model in ("m-anthropic", "m-gemini"):
        [item] = reasoning
        assert item.content and item.content[0].text
        assert response.output[0].type == "reasoning"
