"""The compatibility routes of the seed APIs: `/api/v1/chat`, `/llmage`, the balance, aliases."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from harness import Gateway, ledger_consistent


@pytest.fixture
def acct(gateway: Gateway) -> tuple[str, str]:
    return gateway.account(5_000_000)


def _post(gw: Gateway, path: str, key: str | None, body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=10)


def _data_lines(text: str) -> list[Any]:
    return [
        line[6:] if line == "data: [DONE]" else orjson.loads(line[6:])
        for line in text.split("\n")
        if line.startswith("data: ")
    ]


def test_api_v1_chat_defaults_model(gateway: Gateway, acct: tuple[str, str]) -> None:
    r = _post(gateway, "/api/v1/chat", acct[1], {"messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert r.headers["x-faregate-model"] == "gemini-2.5-flash"
    assert body["choices"][0]["message"]["content"]


def test_api_v1_chat_streams(gateway: Gateway, acct: tuple[str, str]) -> None:
    r = _post(
        gateway,
        "/api/v1/chat",
        acct[1],
        {"messages": [{"role": "user", "content": "Hi"}], "model": "sim-small", "stream": True},
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _data_lines(r.text)
    assert events[-1] == "[DONE]"
    assert all(e["object"] == "chat.completion.chunk" for e in events[:-1])


def test_llmage_prompt_shape(gateway: Gateway, acct: tuple[str, str]) -> None:
    r = _post(
        gateway,
        "/llmage/v1/chat/completions",
        acct[1],
        {"model": "sim-small", "prompt": "Who are you?", "sys_prompt": "Be brief."},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["content"] == body["choices"][0]["message"]["content"]
    assert body["finish"] == "1"
    assert "reasoning_content" in body
    # The system prompt counts: more prompt tokens than the bare prompt.
    bare = _post(
        gateway,
        "/llmage/v1/chat/completions",
        acct[1],
        {"model": "sim-small", "prompt": "Who are you?"},
    ).json()
    assert body["usage"]["prompt_tokens"] > bare["usage"]["prompt_tokens"]


def test_llmage_stream_shape(gateway: Gateway, acct: tuple[str, str]) -> None:
    r = _post(
        gateway,
        "/llmage/v1/chat/completions",
        acct[1],
        {
            "model": "sim-small",
            "prompt": "Who are you?",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    events = _data_lines(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["finish"] == "0" for c in chunks[:-1])
    assert chunks[-1]["finish"] == "1" and chunks[-1]["usage"]["total_tokens"] > 0
    assert len({c["llmusageid"] for c in chunks}) == 1
    text = "".join(c["content"] for c in chunks)
    assert text == "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])


def test_llmage_stream_always_ends_with_usage(gateway: Gateway, acct: tuple[str, str]) -> None:
    r = _post(
        gateway,
        "/llmage/v1/chat/completions",
        acct[1],
        {"model": "sim-small", "prompt": "Who are you?", "stream": True},
    )
    chunks = _data_lines(r.text)[:-1]
    assert chunks[-1]["finish"] == "1"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_llmage_stream_error_uses_its_shape(gateway: Gateway, acct: tuple[str, str]) -> None:
    r = _post(
        gateway,
        "/llmage/v1/chat/completions",
        acct[1],
        {"model": "sim-small", "prompt": "Hi", "stream": True, "user": "sim:cut_after=2"},
    )
    last = _data_lines(r.text)[-1]
    assert isinstance(last["error"], str)


def test_llmage_errors_use_its_shape(gateway: Gateway) -> None:
    r = _post(gateway, "/llmage/v1/chat/completions", None, {"prompt": "x", "model": "sim-small"})
    assert r.status_code == 401 and isinstance(r.json()["error"], str)
    r = _post(gateway, "/llmage/v1/chat/completions", None, {"model": "sim-small"})
    assert r.status_code == 401  # the key is checked before the body
    _, key = gateway.account(1_000_000)
    r = _post(gateway, "/llmage/v1/chat/completions", key, {"model": "sim-small"})
    assert r.status_code == 400
    assert r.json() == {"error": "Missing required parameter: prompt"}
    _, poor = gateway.account(1)
    r = _post(gateway, "/llmage/v1/chat/completions", poor, {"model": "sim-small", "prompt": "x"})
    assert r.status_code == 429
    assert r.json() == {"error": "Insufficient balance"}
    r = httpx.get(gateway.url + "/llmage/v1/nothing", timeout=10)
    assert r.status_code == 404 and isinstance(r.json()["error"], str)


@pytest.mark.parametrize(
    "path", ["/api/client/balance", "/v1/client/balance", "/api/v1/client/balance"]
)
def test_balance(gateway: Gateway, path: str) -> None:
    account, key = gateway.account(2_000_000)
    r = httpx.get(gateway.url + path, headers={"authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["balance"] == body["available"] == 2_000_000
    assert body["held"] == 0 and body["open_holds"] == 0
    assert body["balance_usd"] == "2.000000"
    assert body["account_id"] == account
    assert httpx.get(gateway.url + path, timeout=10).status_code == 401


def test_gemini_aliases_and_ignored_camel_case(gateway: Gateway, acct: tuple[str, str]) -> None:
    r = _post(
        gateway,
        "/v1/chat/completions",
        acct[1],
        {
            "model": "gemini-2.5-flash",
            "messages": [{"role": "user", "content": "Hi"}],
            "responseModalities": ["TEXT"],
            "thinkingLevel": "HIGH",
            "maxTokens": 5,
            "topP": 0.1,
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-faregate-ignored-fields"] == "maxTokens,topP"
    # thinkingLevel became reasoning effort upstream: the simulator reports reasoning tokens.
    assert r.json()["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    ledger_consistent(gateway, acct[0])


def test_opt_in_balancer_metadata(gateway: Gateway, acct: tuple[str, str]) -> None:
    body = {"model": "sim-small", "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"authorization": f"Bearer {acct[1]}", "x-balancer-metadata": "true"}
    r = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)
    wrapped = r.json()
    meta = wrapped["_balancer"]
    usage = wrapped["data"]["usage"]
    assert meta["credits_used"] == usage["cost_micro_credits"] == int(r.headers["x-faregate-cost"])
    assert meta["model_used"] == "sim-small"
    assert (meta["input_tokens"], meta["output_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert meta["cached"] is False and meta["latency_ms"] >= 0
    assert meta["cost_usd"] == pytest.approx(meta["credits_used"] / 1_000_000)
    r = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
        headers=headers,
        timeout=10,
    )
    last = _data_lines(r.text)[-2]
    assert last["_balancer"]["credits_used"] == last["usage"]["cost_micro_credits"]
    plain = httpx.post(
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {acct[1]}"},
        timeout=10,
    ).json()
    assert "_balancer" not in plain and "data" not in plain
