"""The official `openai` SDK, unmodified but for base URL and key, against a running gateway."""

from __future__ import annotations

import json

import openai
import pytest
from harness import Gateway, ledger_consistent, openai_client

MSG = [{"role": "user", "content": "Tell me about the sea"}]


@pytest.fixture
def funded(gateway: Gateway) -> tuple[str, str]:
    return gateway.account(10_000_000)


_client = openai_client


def _aclient(gw: Gateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_sync_completion_bills_its_usage(gateway: Gateway, funded: tuple[str, str]) -> None:
    account, key = funded
    raw = _client(gateway, key).chat.completions.with_raw_response.create(
        model="sim-small", messages=MSG, max_tokens=50
    )
    reply = raw.parse()
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    usage = reply.usage
    assert usage is not None
    # Prices in the harness: 1 micro-credit per input token, 2 per output token (per million:
    # 1_000_000 and 2_000_000), so the cost is exact and easy to check.
    expected = -(-(usage.prompt_tokens * 1_000_000 + usage.completion_tokens * 2_000_000) // 10**6)
    assert raw.headers["x-faregate-cost"] == str(expected)
    assert (usage.model_extra or {})["cost_micro_credits"] == expected
    assert raw.headers["x-faregate-model"] == "sim-small"
    assert raw.headers["x-balancer-model-used"] == "sim-small"
    settle = [r for r in gateway.ledger(account) if r["kind"] == "settle"]
    assert [r["cost"] for r in settle] == [expected]
    assert settle[0]["prompt_tokens"] == usage.prompt_tokens
    assert settle[0]["completion_tokens"] == usage.completion_tokens
    ledger_consistent(gateway, account)


async def test_async_completion(gateway: Gateway, funded: tuple[str, str]) -> None:
    async with _aclient(gateway, funded[1]) as client:
        reply = await client.chat.completions.create(model="sim-small", messages=MSG)
    assert reply.choices[0].finish_reason == "stop"


def test_stream_forwards_chunks_and_usage_when_asked(
    gateway: Gateway, funded: tuple[str, str]
) -> None:
    account, key = funded
    stream = _client(gateway, key).chat.completions.create(
        model="sim-small", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert len(chunks) > 5  # forwarded chunk by chunk
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    cost = (usage.model_extra or {})["cost_micro_credits"]
    settle = [r for r in gateway.ledger(account) if r["kind"] == "settle"]
    assert [r["cost"] for r in settle] == [cost]
    assert settle[0]["estimated"] in (False, 0)


def test_stream_without_usage_request_still_bills(
    gateway: Gateway, funded: tuple[str, str]
) -> None:
    account, key = funded
    chunks = list(
        _client(gateway, key).chat.completions.create(model="sim-small", messages=MSG, stream=True)
    )
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    settle = [r for r in gateway.ledger(account) if r["kind"] == "settle"]
    assert len(settle) == 1 and settle[0]["cost"] > 0 and settle[0]["estimated"] in (False, 0)
    ledger_consistent(gateway, account)


async def test_async_stream(gateway: Gateway, funded: tuple[str, str]) -> None:
    async with _aclient(gateway, funded[1]) as client:
        stream = await client.chat.completions.create(model="sim-small", messages=MSG, stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts)


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def test_tool_call(gateway: Gateway, funded: tuple[str, str]) -> None:
    reply = _client(gateway, funded[1]).chat.completions.create(
        model="sim-small",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="auto",
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(calls[0].function.arguments)  # type: ignore[union-attr]


def test_streamed_tool_call(gateway: Gateway, funded: tuple[str, str]) -> None:
    stream = _client(gateway, funded[1]).chat.completions.create(
        model="sim-small",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="required",
        stream=True,
    )
    name, args, finish = "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                name += call.function.name or "" if call.function else ""
                args += call.function.arguments or "" if call.function else ""
            finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert "city" in json.loads(args)
    assert finish == "tool_calls"


def test_standard_parameters_pass_through(gateway: Gateway, funded: tuple[str, str]) -> None:
    client = _client(gateway, funded[1])
    reply = client.chat.completions.create(
        model="sim-small",
        messages=MSG,
        response_format={"type": "json_object"},
        n=2,
        seed=7,
        top_p=0.5,
        temperature=0.2,
        max_tokens=200,
        reasoning_effort="high",
    )
    assert len(reply.choices) == 2
    json.loads(reply.choices[0].message.content or "")
    assert reply.usage and reply.usage.completion_tokens_details
    assert (reply.usage.completion_tokens_details.reasoning_tokens or 0) > 0
    capped = client.chat.completions.create(model="sim-small", messages=MSG, max_tokens=3)
    assert capped.choices[0].finish_reason == "length"
    assert capped.usage and capped.usage.completion_tokens == 3


def test_api_v1_base_path(gateway: Gateway, funded: tuple[str, str]) -> None:
    client = _client(gateway, funded[1], "/api/v1")
    assert client.chat.completions.create(model="sim-small", messages=MSG).choices
    assert "sim-small" in [m.id for m in client.models.list()]


def test_models_list_and_retrieve(gateway: Gateway, funded: tuple[str, str]) -> None:
    client = _client(gateway, funded[1])
    models = list(client.models.list())
    ids = {m.id for m in models}
    assert {"sim-small", "sim-large", "dead-model"} <= ids
    assert all(m.object == "model" and m.owned_by and m.created for m in models)
    assert client.models.retrieve("sim-large").id == "sim-large"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_models_list_shows_only_allowed_models(gateway: Gateway) -> None:
    _, key = gateway.account(1_000_000, models=["sim-large"])
    client = _client(gateway, key)
    assert [m.id for m in client.models.list()] == ["sim-large"]
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="sim-small", messages=MSG)
    assert err.value.status_code == 403
    assert err.value.code == "model_not_allowed"


def test_error_types(gateway: Gateway, funded: tuple[str, str]) -> None:
    with pytest.raises(openai.AuthenticationError) as auth:
        _client(gateway, "fg-wrong").chat.completions.create(model="sim-small", messages=MSG)
    assert auth.value.status_code == 401
    assert auth.value.code == "invalid_api_key"

    _, poor = gateway.account(1)
    with pytest.raises(openai.APIStatusError) as broke:
        _client(gateway, poor).chat.completions.create(model="sim-small", messages=MSG)
    assert broke.value.status_code == 402
    assert broke.value.code == "insufficient_balance"

    client = _client(gateway, funded[1])
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=MSG)
    assert missing.value.code == "model_not_found"

    # An upstream 429 is never shown as such: the deployment cools down for its Retry-After,
    # and with nothing else to serve the client gets 503 with that Retry-After.
    with pytest.raises(openai.InternalServerError) as limited:
        client.chat.completions.create(
            model="sim-faulty", messages=MSG, user="sim:status=429;retry_after=3"
        )
    assert limited.value.status_code == 503
    assert limited.value.code == "no_provider_available"
    assert limited.value.response.headers["retry-after"] == "3"
    gateway.reset_routing()
    ledger_consistent(gateway, funded[0])


def test_revoked_key_is_refused(gateway: Gateway) -> None:
    account, key = gateway.account(1_000_000)
    client = _client(gateway, key)
    client.chat.completions.create(model="sim-small", messages=MSG)
    key_id = gateway.admin("GET", f"/accounts/{account}/keys")["data"][0]["id"]
    gateway.admin("POST", f"/keys/{key_id}/revoke")
    with pytest.raises(openai.AuthenticationError) as err:
        client.chat.completions.create(model="sim-small", messages=MSG)
    assert err.value.code == "revoked_api_key"


def test_expired_key_is_refused(gateway: Gateway) -> None:
    account = gateway.admin("POST", "/accounts", json={"name": "e", "credits": 1000})
    key = gateway.admin(
        "POST", f"/accounts/{account['id']}/keys", json={"name": "old", "expires_at": 1}
    )["key"]
    with pytest.raises(openai.AuthenticationError) as err:
        _client(gateway, key).models.list()
    assert err.value.code == "expired_api_key"
