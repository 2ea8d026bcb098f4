"""Embeddings through the gateway with the official `openai` SDK: exact usage and cost."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from harness import Gateway, ledger_consistent

from faregate import tokens


@pytest.fixture
def client(gateway: Gateway) -> Iterator[tuple[str, openai.OpenAI]]:
    account, key = gateway.account(1_000_000)
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as c:
        yield account, c


def test_embeddings_bill_their_input(gateway: Gateway, client: tuple[str, openai.OpenAI]) -> None:
    account, c = client
    texts = ["the quick brown fox", "jumps over the lazy dog!"]
    raw = c.embeddings.with_raw_response.create(model="embed-sim", input=texts)
    result = raw.parse()  # the SDK asks for base64 and decodes it
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 16
    expected = sum(tokens.count_text(t) for t in texts)
    assert result.usage.prompt_tokens == expected
    assert raw.headers["x-faregate-cost"] == str(expected)  # 1 micro-credit per input token
    settle = [r for r in gateway.ledger(account) if r["kind"] == "settle"]
    assert [(r["cost"], r["prompt_tokens"]) for r in settle] == [(expected, expected)]
    ledger_consistent(gateway, account)


def test_float_vectors_and_token_arrays(client: tuple[str, openai.OpenAI]) -> None:
    _, c = client
    floats = c.embeddings.create(
        model="embed-sim", input="hello", encoding_format="float", dimensions=8
    )
    assert len(floats.data[0].embedding) == 8
    ids = c.embeddings.create(model="embed-sim", input=[[1, 2, 3], [4, 5]])
    assert len(ids.data) == 2
    assert ids.usage.prompt_tokens == 5


def test_wrong_kinds_and_bad_input(gateway: Gateway, client: tuple[str, openai.OpenAI]) -> None:
    account, c = client
    with pytest.raises(openai.BadRequestError) as err:
        c.embeddings.create(model="sim-small", input="x")
    assert err.value.code == "wrong_model_kind"
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="embed-sim", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "wrong_model_kind"
    with pytest.raises(openai.BadRequestError) as err:
        c.embeddings.create(model="embed-sim", input="")
    assert err.value.code == "empty_input"
    key = c.api_key
    r = httpx.post(
        gateway.url + "/v1/embeddings",
        json={"model": "embed-sim", "input": 5},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "input"
    state = gateway.account_state(account)
    assert state["open_holds"] == 0 and state["balance"] == 1_000_000
