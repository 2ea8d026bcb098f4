"""`usage.cost` in US dollars (an exact decimal) and `usage.cost_micro_credits` (the ledger's
integer), read by the `openai` SDK, LiteLLM as a client, and on the raw wire."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from harness import Gateway, Sim, start_gateway, stop

PER_USD = Decimal(1_000_000)  # the harness runs at the default rate
BODY: dict[str, Any] = {
    "model": "sim-small",
    "messages": [{"role": "user", "content": "What does this cost?"}],
}


def _settled(gw: Gateway, account: str) -> list[int]:
    return [r["cost"] for r in gw.ledger(account) if r["kind"] == "settle"]


def _exact(raw: str) -> Any:
    """The JSON with every number kept as written (no float rounding)."""
    return json.loads(raw, parse_float=Decimal)


def _check(usage: dict[str, Any], micro: int) -> None:
    assert usage["cost_micro_credits"] == micro > 0
    assert isinstance(usage["cost"], Decimal)
    assert usage["cost"] == Decimal(micro) / PER_USD


def test_chat_reply_usage_cost_is_dollars(gateway: Gateway) -> None:
    account, key = gateway.account(10_000_000)
    r = httpx.post(
        gateway.url + "/v1/chat/completions",
        json=BODY,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    [micro] = _settled(gateway, account)
    usage = _exact(r.text)["usage"]
    _check(usage, micro)
    # Written as a plain decimal, e.g. 0.000123, never 1.23e-4.
    assert f'"cost":{usage["cost"]}' in r.text and "e-" not in r.text.split('"usage"')[1]
    assert int(r.headers["x-faregate-cost"]) == micro
    assert Decimal(r.headers["x-faregate-cost-usd"]) == Decimal(micro) / PER_USD


def test_stream_usage_chunk_cost_is_dollars(gateway: Gateway) -> None:
    account, key = gateway.account(10_000_000)
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    r = httpx.post(
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    datas = [line[6:] for line in r.text.splitlines() if line.startswith("data: {")]
    usages = [d["usage"] for d in map(_exact, datas) if d.get("usage")]
    assert len(usages) == 1
    [micro] = _settled(gateway, account)
    _check(usages[0], micro)


def test_embeddings_usage_cost_is_dollars(gateway: Gateway) -> None:
    account, key = gateway.account(10_000_000)
    r = httpx.post(
        gateway.url + "/v1/embeddings",
        json={"model": "embed-sim", "input": ["one", "two"]},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    [micro] = _settled(gateway, account)
    _check(_exact(r.text)["usage"], micro)


def test_openai_sdk_reads_both_fields(gateway: Gateway) -> None:
    account, key = gateway.account(10_000_000)
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(model="sim-small", messages=BODY["messages"])
    assert reply.usage is not None
    extra = reply.usage.model_extra or {}
    [micro] = _settled(gateway, account)
    assert extra["cost_micro_credits"] == micro
    assert extra["cost"] == pytest.approx(micro / 1_000_000, rel=0, abs=1e-15)


LITELLM_CLIENT = """
import json, sys, warnings
warnings.simplefilter("ignore")
import litellm
reply = litellm.completion(
    model="openai/sim-small", api_base=sys.argv[1], api_key=sys.argv[2], max_retries=0,
    messages=[{"role": "user", "content": "What does this cost?"}],
)
print(json.dumps({"cost": litellm.completion_cost(completion_response=reply)}))
"""


def test_litellm_reports_the_gateway_cost_in_dollars(gateway: Gateway) -> None:
    """LiteLLM as a client takes `usage.cost` as the request's price in US dollars. It runs in
    a child process: it leaves event loops and sockets open that this one must not inherit."""
    if importlib.util.find_spec("litellm") is None:
        pytest.skip("litellm is not installed (the test extra installs it)")
    account, key = gateway.account(10_000_000)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # its bundled map, no fetch
    done = subprocess.run(
        [sys.executable, "-c", LITELLM_CLIENT, gateway.url + "/v1", key],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    cost = json.loads(done.stdout.strip().splitlines()[-1])["cost"]
    [micro] = _settled(gateway, account)
    assert cost == pytest.approx(micro / 1_000_000, rel=1e-9, abs=0)


def test_usage_cost_follows_the_operator_rate(
    sim: Sim, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """At 250000 micro-credits per dollar, 1 micro-credit is $0.000004, written exactly."""
    gw = start_gateway(
        sim.url, tmp_path_factory.mktemp("rate"), billing={"micro_credits_per_usd": 250_000}
    )
    try:
        account, key = gw.account(10_000_000)
        r = httpx.post(
            gw.url + "/v1/chat/completions",
            json=BODY,
            headers={"authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        [micro] = _settled(gw, account)
        usage = _exact(r.text)["usage"]
        assert usage["cost_micro_credits"] == micro
        assert usage["cost"] == Decimal(micro) / Decimal(250_000)
        assert f'"cost":{usage["cost"]}' in r.text
    finally:
        stop(gw.proc)
