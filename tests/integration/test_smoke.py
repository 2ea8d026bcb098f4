"""A first request end to end on both databases."""

from __future__ import annotations

import openai
from harness import Gateway, ledger_consistent


def test_chat_roundtrip(any_gateway: Gateway) -> None:
    account, key = any_gateway.account(1_000_000)
    client = openai.OpenAI(base_url=f"{any_gateway.url}/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(
        model="sim-small", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert reply.choices[0].message.content
    ledger_consistent(any_gateway, account)
