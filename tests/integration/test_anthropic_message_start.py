"""A streamed `/v1/messages` answer from an Anthropic upstream: `message_start` carries the
upstream's exact prompt usage, not the gateway's estimate (driven by the `anthropic` SDK)."""

from __future__ import annotations

from typing import Any

import anthropic
from harness import Gateway

from faregate.tokens import count_messages

MSG: list[Any] = [{"role": "user", "content": "Tell me about the sea"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _events(gw: Gateway, key: str, **kw: Any) -> list[Any]:
    with anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0) as client:
        return list(client.messages.create(model="claude-sim", max_tokens=100, stream=True, **kw))


def test_message_start_carries_the_upstream_input_tokens(gateway: Gateway) -> None:
    _, key = gateway.account(10_000_000)
    events = _events(gateway, key, messages=MSG, metadata={"user_id": "sim:cached_tokens=4"})
    start, final = events[0], events[-2]
    assert start.type == "message_start" and final.type == "message_delta"
    started, settled = start.message.usage, final.usage
    # The upstream's exact figures (message_delta repeats them, cumulative), not an estimate.
    assert started.input_tokens == settled.input_tokens
    assert started.cache_read_input_tokens == settled.cache_read_input_tokens == 4
    assert started.cache_creation_input_tokens == 0
    estimate = count_messages(MSG)
    assert started.input_tokens != estimate  # the estimate counts the 4 cached tokens too
    assert started.input_tokens + 4 == settled.input_tokens + settled.cache_read_input_tokens


def test_message_start_with_tools_and_a_system_prompt(gateway: Gateway) -> None:
    """Tools and a system prompt are counted by the upstream on its own wire form."""
    _, key = gateway.account(10_000_000)
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    with (
        client,
        client.messages.stream(
            model="claude-sim", max_tokens=100, messages=MSG, tools=[WEATHER], system="Be brief."
        ) as stream,
    ):
        events = list(stream)
        message = stream.get_final_message()
    start = events[0]
    assert start.type == "message_start"
    assert start.message.usage.input_tokens == message.usage.input_tokens > 0


def test_an_openai_upstream_still_reports_the_estimate(gateway: Gateway) -> None:
    """An upstream that sends no usage before the answer: the gateway's count of the prompt."""
    _, key = gateway.account(10_000_000)
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        events = list(
            client.messages.create(model="sim-small", max_tokens=100, stream=True, messages=MSG)
        )
    assert events[0].type == "message_start"
    assert events[0].message.usage.input_tokens == count_messages(MSG)
