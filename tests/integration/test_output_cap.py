"""An output cap above the model's is clamped, not refused, in every client protocol: the hold
and the upstream request use the model's cap, and `x-faregate-max-tokens-clamped` says so.

Clients fill `max_tokens` from their own model tables: the AI SDK's Anthropic provider sends
128000, LangChain 64000. The harness models produce at most 1000 tokens."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
from google import genai
from google.genai import types
from harness import Gateway

CLAMPED = "x-faregate-max-tokens-clamped"
MSG: list[Any] = [{"role": "user", "content": "Tell me about the sea"}]


def _holds(gw: Gateway, account: str) -> list[int]:
    return [-r["amount"] for r in gw.ledger(account) if r["kind"] == "hold"]


def test_anthropic_sdk_128000_is_clamped_and_billed_on_the_cap(gateway: Gateway) -> None:
    account, key = gateway.account(10_000_000)
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        # (a non-streaming call this large needs an explicit timeout in the SDK)
        raw = client.messages.with_raw_response.create(
            model="claude-sim", max_tokens=128_000, messages=MSG, timeout=30
        )
        assert raw.headers[CLAMPED] == "128000->1000"
        assert raw.parse().content[0].type == "text"
        capped = client.messages.with_raw_response.create(
            model="claude-sim", max_tokens=1000, messages=MSG
        )
        assert CLAMPED not in capped.headers
        with client.messages.stream(model="claude-sim", max_tokens=128_000, messages=MSG) as stream:
            assert stream.response.headers[CLAMPED] == "128000->1000"
            assert stream.get_final_message().stop_reason == "end_turn"
    clamped, exact, streamed = _holds(gateway, account)
    assert clamped == exact == streamed  # the hold covers the clamped value, never 128000
    assert clamped < 128_000 * 2


def test_openai_sdk_64000_is_clamped_and_billed_on_the_cap(gateway: Gateway) -> None:
    account, key = gateway.account(10_000_000)
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="sim-small", messages=MSG, max_tokens=64_000
        )
        assert raw.headers[CLAMPED] == "64000->1000"
        assert raw.parse().choices[0].message.content
        plain = client.chat.completions.with_raw_response.create(model="sim-small", messages=MSG)
        assert CLAMPED not in plain.headers
        streamed = client.chat.completions.with_raw_response.create(
            model="sim-small", messages=MSG, max_completion_tokens=64_000, stream=True
        )
        assert streamed.headers[CLAMPED] == "64000->1000"
        assert list(streamed.parse())
    asked, default, stream = _holds(gateway, account)
    assert asked == default == stream  # the same hold as the model's own cap


def test_a_balance_below_the_asked_hold_is_served(gateway: Gateway) -> None:
    """128000 output tokens at 2 micro-credits would need 256000; the clamped hold fits."""
    account, key = gateway.account(5_000)
    r = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "sim-small", "messages": MSG, "max_tokens": 128_000},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.headers[CLAMPED] == "128000->1000"
    [settle] = [row for row in gateway.ledger(account) if row["kind"] == "settle"]
    assert settle["cost"] == r.json()["usage"]["cost_micro_credits"]


def test_gemini_max_output_tokens_is_clamped(gateway: Gateway) -> None:
    account, key = gateway.account(10_000_000)
    options = types.HttpOptions(
        base_url=gateway.url, retry_options=types.HttpRetryOptions(attempts=1), timeout=30_000
    )
    client = genai.Client(api_key=key, http_options=options)
    try:
        config = types.GenerateContentConfig(max_output_tokens=65_536)
        reply = client.models.generate_content(
            model="gemini-sim", contents="Tell me about the sea", config=config
        )
        assert reply.text
        headers = reply.sdk_http_response.headers if reply.sdk_http_response else None
        assert headers is not None and headers[CLAMPED] == "65536->1000"
        exact = types.GenerateContentConfig(max_output_tokens=1000)
        client.models.generate_content(
            model="gemini-sim", contents="Tell me about the sea", config=exact
        )
    finally:
        client.close()
    clamped, capped = _holds(gateway, account)
    assert clamped == capped
