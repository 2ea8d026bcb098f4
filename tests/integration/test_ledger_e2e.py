"""The money invariants through real gateway processes, driven by the official openai SDK.

Every request goes client -> gateway process -> simulator process; the ledger is read back
through the admin API (and, for a killed gateway, straight from the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from conftest import drop_pg_database, new_pg_database
from harness import ADMIN_KEY, PRICES, Gateway, Sim, ledger_consistent, start_gateway, stop
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from faregate.billing.pricing import cost_of
from faregate.billing.types import Price, Usage
from faregate.db import schema
from faregate.db.urls import sqlalchemy_url

MODEL = "sim-small"
PRICE = Price(**PRICES)
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about the ledger"}]


def client_for(gw: Gateway, key: str, timeout: float = 20.0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=timeout)


def hold_ids(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The ledger rows of each hold, by hold id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["hold_id"]:
            out.setdefault(r["hold_id"], []).append(r)
    return out


def settles(gw: Gateway, account: str) -> list[dict[str, Any]]:
    return [r for r in gw.ledger(account) if r["kind"] == "settle"]


async def wait_no_open_holds(gw: Gateway, account: str, within: float = 10.0) -> None:
    """Poll the account (bounded) until it has no open hold."""
    async with httpx.AsyncClient(timeout=5) as http:
        deadline = time.monotonic() + within
        while True:
            r = await http.get(
                f"{gw.url}/admin/v1/accounts/{account}",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
            r.raise_for_status()
            if r.json()["open_holds"] == 0:
                return
            assert time.monotonic() < deadline, f"holds still open: {r.json()}"
            await asyncio.sleep(0.05)


# -- many concurrent requests against a balance that covers only some ------------------------


async def test_200_concurrent_requests_never_overdraw(any_gateway: Gateway) -> None:
    gw = any_gateway
    max_tokens = 40
    # One hold is ~120 micro-credits (prompt bound + 40 output tokens at 2 each) and one reply
    # costs 53 to 93: 3300 covers ~27 holds at once and at most 62 replies in all, so whatever
    # the timing some requests get through and most are refused with 402.
    account, key = gw.account(30 * 110)
    initial = gw.account_state(account)["balance"]

    lows: list[int] = []
    done = asyncio.Event()

    async def watch() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            while not done.is_set():
                r = await http.get(
                    f"{gw.url}/admin/v1/accounts/{account}",
                    headers={"authorization": f"Bearer {ADMIN_KEY}"},
                )
                lows.append(r.json()["balance"])
                await asyncio.sleep(0.01)

    async def one(client: openai.AsyncOpenAI, i: int) -> tuple[str, int]:
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"Request number {i} of the burst"}],
                max_tokens=max_tokens,
            )
        except openai.APIStatusError as exc:
            refusal: openai.APIStatusError = exc
        else:
            completion = raw.parse()
            assert completion.choices[0].message.content
            cost = int(raw.headers["x-faregate-cost"])
            assert completion.usage is not None
            assert (completion.usage.model_extra or {})["cost_micro_credits"] == cost
            return "ok", cost
        assert refusal.status_code == 402, refusal
        body = refusal.body if isinstance(refusal.body, dict) else {}
        assert "insufficient" in orjson.dumps(body).decode().lower()
        return "refused", 0

    watcher = asyncio.create_task(watch())
    try:
        async with client_for(gw, key) as client:
            results = await asyncio.gather(*(one(client, i) for i in range(200)))
    finally:
        done.set()
        await watcher

    ok = [cost for outcome, cost in results if outcome == "ok"]
    refused = [outcome for outcome, _ in results if outcome == "refused"]
    assert len(ok) + len(refused) == 200
    assert ok, "no request was admitted"
    assert refused, "every request was admitted: the balance covered them all"
    assert all(c > 0 for c in ok)
    assert min(lows) >= 0

    state = gw.account_state(account)
    assert state["open_holds"] == 0
    assert state["held"] == 0
    assert state["balance"] >= 0
    ledger_consistent(gw, account)

    rows = gw.ledger(account)
    per_hold = hold_ids(rows)
    # Every admitted request took exactly one hold and settled it once; refusals wrote nothing.
    assert len(per_hold) == len(ok)
    for entries in per_hold.values():
        assert sorted(r["kind"] for r in entries) == ["hold", "settle"]
    charged = [r["cost"] for r in rows if r["kind"] == "settle"]
    assert sorted(charged) == sorted(ok)
    assert sum(charged) == sum(ok)
    assert state["balance"] == initial - sum(ok)


# -- streaming ---------------------------------------------------------------------------


async def _stream(gw: Gateway, key: str, *, include_usage: bool) -> list[Any]:
    kwargs: dict[str, Any] = {}
    if include_usage:
        kwargs["stream_options"] = {"include_usage": True}
    async with client_for(gw, key) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=50, stream=True, **kwargs
        )
        return [chunk async for chunk in stream]


async def test_stream_billed_from_the_usage_chunk(any_gateway: Gateway) -> None:
    gw = any_gateway
    asked, asked_key = gw.account(1_000_000)
    chunks = await _stream(gw, asked_key, include_usage=True)
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1
    final = with_usage[0]
    assert final.choices == []
    assert final is chunks[-1]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    usage = final.usage
    assert usage is not None
    cost = (usage.model_extra or {})["cost_micro_credits"]
    assert isinstance(cost, int)
    assert cost > 0

    await wait_no_open_holds(gw, asked)
    ledger_consistent(gw, asked)
    [settle] = settles(gw, asked)
    assert settle["cost"] == cost
    assert settle["estimated"] is False
    assert settle["prompt_tokens"] == usage.prompt_tokens
    assert settle["completion_tokens"] == usage.completion_tokens
    assert cost == cost_of(PRICE, Usage(usage.prompt_tokens, usage.completion_tokens))
    assert gw.account_state(asked)["balance"] == 1_000_000 - cost

    # The identical request without asking for usage: no usage reaches the client, but the
    # account is billed the same (the simulator is deterministic).
    silent, silent_key = gw.account(1_000_000)
    chunks = await _stream(gw, silent_key, include_usage=False)
    assert chunks
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "a usage-only chunk leaked to the client"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text

    await wait_no_open_holds(gw, silent)
    ledger_consistent(gw, silent)
    [settle] = settles(gw, silent)
    assert settle["cost"] == cost
    assert settle["estimated"] is False
    assert gw.account_state(silent)["balance"] == 1_000_000 - cost


async def test_stream_usage_chunk_raw_json(any_gateway: Gateway) -> None:
    """The usage chunk on the wire: `usage.cost` is the ledger's settle cost."""
    gw = any_gateway
    account, key = gw.account(1_000_000)
    body = {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": 50,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events: list[bytes] = []
    async with (
        httpx.AsyncClient(timeout=20) as http,
        http.stream(
            "POST",
            f"{gw.url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
        ) as r,
    ):
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                events.append(line[6:].encode())
    assert events[-1] == b"[DONE]"
    datas = [orjson.loads(e) for e in events[:-1]]
    usage = [d["usage"] for d in datas if d.get("usage")]
    assert len(usage) == 1
    await wait_no_open_holds(gw, account)
    [settle] = settles(gw, account)
    assert usage[0]["cost_micro_credits"] == settle["cost"]
    assert usage[0]["completion_tokens"] == settle["completion_tokens"]


async def _disconnect_after(gw: Gateway, key: str, chunks: int, fault: str) -> None:
    """Open a stream, read `chunks` content chunks, then close it: the client goes away."""
    async with client_for(gw, key) as client:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"metadata": {"sim_fault": fault}},
        )
        got = 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got += 1
            if got == chunks:
                break
        await stream.close()


async def test_client_disconnect_mid_stream_is_billed(any_gateway: Gateway) -> None:
    """The client closes the stream after 3 chunks of 40: the gateway stops the upstream and
    settles what was produced (estimated from the text), never zero and never the whole."""
    gw = any_gateway
    account, key = gw.account(1_000_000)
    # 40 tokens at 100 ms a chunk: about 4 s if the gateway read the stream to its end.
    await _disconnect_after(gw, key, 3, "chunk_delay_ms=100;tokens=40")
    closed_at = time.monotonic()
    await wait_no_open_holds(gw, account)
    assert time.monotonic() - closed_at < 2.5, "the gateway read the upstream to its end"

    ledger_consistent(gw, account)
    [settle] = settles(gw, account)
    assert settle["cost"] > 0  # what the upstream produced is billed, never zero
    assert settle["estimated"] is True
    assert 3 <= settle["completion_tokens"] < 40
    assert settle["note"]
    assert settle["cost"] == cost_of(
        PRICE, Usage(settle["prompt_tokens"], settle["completion_tokens"])
    )
    [hold] = [r for r in gw.ledger(account) if r["kind"] == "hold"]
    assert settle["cost"] < -hold["amount"]
    assert gw.account_state(account)["balance"] == 1_000_000 - settle["cost"]


# -- a gateway killed mid-stream ---------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kill_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'faregate.db'}"
        return
    url = new_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


async def _db_state(url: str) -> tuple[list[dict[str, Any]], set[str]]:
    """The open holds and the registered instance ids, read straight from the database."""
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(schema.holds).where(schema.holds.c.status == "open"))
            holds = [dict(r) for r in result.mappings()]
            instances = await conn.execute(select(schema.instances.c.id))
            return holds, set(instances.scalars())
    finally:
        await engine.dispose()


@contextlib.contextmanager
def gateways() -> Iterator[list[Gateway]]:
    started: list[Gateway] = []
    try:
        yield started
    finally:
        for gw in started:
            stop(gw.proc)


@contextlib.asynccontextmanager
async def slow_stream(gw: Gateway, key: str) -> AsyncIterator[AsyncIterator[Any]]:
    async with client_for(gw, key) as client:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=50,
            stream=True,
            extra_body={"metadata": {"sim_fault": "chunk_delay_ms=200;tokens=50"}},
        )
        try:
            yield stream
        finally:
            with contextlib.suppress(Exception):
                await stream.close()


async def test_sigkill_mid_stream_hold_is_reaped(sim: Sim, tmp_path: Path, kill_db: str) -> None:
    home = tmp_path / "home"
    with gateways() as started:
        first = start_gateway(sim.url, tmp_path, database_url=kill_db, home=home)
        started.append(first)
        account, key = first.account(1_000_000)

        async with slow_stream(first, key) as stream:
            got = 0
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    got += 1
                if got == 2:
                    break
            os.kill(first.proc.pid, signal.SIGKILL)
            first.proc.wait(timeout=10)
        assert first.proc.returncode == -signal.SIGKILL

        [open_hold], instances = await _db_state(kill_db)
        assert open_hold["account_id"] == account
        assert open_hold["amount"] > 0
        dead = open_hold["instance_id"]
        assert dead in instances  # SIGKILL: the process never unregistered

        # A new process (a new instance id) on the same database and home.
        second = start_gateway(sim.url, tmp_path, database_url=kill_db, home=home)
        started.append(second)
        await wait_no_open_holds(second, account, within=10)

        state = second.account_state(account)
        assert state["balance"] == 1_000_000
        assert state["held"] == 0
        ledger_consistent(second, account)
        entries = hold_ids(second.ledger(account))[open_hold["id"]]
        assert sorted(r["kind"] for r in entries) == ["hold", "release"]
        [release] = [r for r in entries if r["kind"] == "release"]
        assert release["amount"] == open_hold["amount"]
        assert "reaped" in release["note"]
        holds, instances = await _db_state(kill_db)
        assert holds == []
        assert dead not in instances  # the reaper forgot the dead process
        assert instances  # and the new one is registered
