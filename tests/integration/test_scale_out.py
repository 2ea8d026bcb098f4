"""Two gateway processes on one PostgreSQL database and one Redis: shared limits and balance,
and a Redis that dies and comes back (the test's own redis-server, never the shared one)."""

from __future__ import annotations

import asyncio
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import drop_pg_database, new_pg_database
from harness import Gateway, Sim, free_port, ledger_consistent, spawn, start_gateway, stop

BODY = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
RPM = 10


class OwnRedis:
    """A throwaway redis-server on a free port, without persistence, to kill and restart."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self.proc = spawn([*args, "--save", "", "--appendonly", "no"], self.log)
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, timeout=5
            ).stdout.strip()
            != b"PONG"
        ):
            assert self.proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not come up"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGKILL)
            self.proc = None


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path_factory.mktemp("redis") / "redis.log")
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def pair(
    sim: Sim, own_redis: OwnRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Gateway]]:
    url = new_pg_database()
    limits = f"""
[limits]
default_plan = "shared"
redis_url = "{own_redis.url}"
key_prefix = "fgscale-{secrets.token_hex(4)}"
replicas = 2
redis_timeout_seconds = 0.2
redis_retry_seconds = 0.3
[plans.shared.chat]
rpm = {RPM}
"""
    gateways: list[Gateway] = []
    try:
        for name in ("a", "b"):  # one after the other: the first migrates the database
            tmp = tmp_path_factory.mktemp(f"scale-{name}")
            gateways.append(start_gateway(sim.url, tmp, database_url=url, extra_models=limits))
        yield gateways[0], gateways[1]
    finally:
        for gw in gateways:
            stop(gw.proc)
        drop_pg_database(url)


async def burst(targets: list[tuple[Gateway, str]], per_target: int) -> list[int]:
    """`per_target` concurrent chat requests to each (gateway, key); their statuses."""
    async with httpx.AsyncClient(timeout=15) as client:

        async def one(gw: Gateway, key: str) -> int:
            r = await client.post(
                gw.url + "/v1/chat/completions",
                json=BODY,
                headers={"authorization": f"Bearer {key}"},
            )
            return r.status_code

        calls = [one(gw, key) for gw, key in targets for _ in range(per_target)]
        return list(await asyncio.gather(*calls))


def degraded(gw: Gateway) -> float:
    text = httpx.get(gw.url + "/metrics", timeout=5).text
    found = re.search(r"^faregate_limiter_degraded_total ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_burst_across_both_admits_exactly_the_plan_rpm(
    pair: tuple[Gateway, Gateway],
) -> None:
    a, b = pair
    _, key = a.account(10_000_000)  # made on one, known to both: one database
    statuses = await burst([(a, key), (b, key)], 2 * RPM)
    assert statuses.count(200) == RPM
    assert statuses.count(429) == 3 * RPM


async def test_the_balance_is_shared_and_never_overdrawn(pair: tuple[Gateway, Gateway]) -> None:
    a, b = pair
    # A hold is ~80 micro-credits and a reply costs less: 800 covers ~10 holds at once and
    # far fewer replies than the 80 requests, so some get through and the rest get 402.
    account, key = a.account(800)
    b.admin("PATCH", f"/accounts/{account}", json={"limits": {"chat": {"rpm": 10_000}}})
    statuses = await burst([(a, key), (b, key)], 40)
    assert set(statuses) <= {200, 402}, statuses
    assert 0 < statuses.count(200) < 80
    for gw in (a, b):
        state = gw.account_state(account)
        assert state["open_holds"] == 0
        assert state["balance"] >= 0
        ledger_consistent(gw, account)
    settled = [r for r in a.ledger(account) if r["kind"] == "settle"]
    assert len(settled) == statuses.count(200)


def test_a_redis_outage_falls_back_to_local_limits_and_recovers(
    pair: tuple[Gateway, Gateway], own_redis: OwnRedis
) -> None:
    a, b = pair
    before = degraded(a) + degraded(b)
    own_redis.kill()
    try:
        # Requests keep flowing, each on its replica's share of the plan (RPM / 2), fast.
        _, key = a.account(10_000_000)
        for gw in (a, b):
            for i in range(RPM // 2 + 1):
                started = time.monotonic()
                r = httpx.post(
                    gw.url + "/v1/chat/completions",
                    json=BODY,
                    headers={"authorization": f"Bearer {key}"},
                    timeout=5,
                )
                assert time.monotonic() - started < 2, "a request waited on the dead Redis"
                assert r.status_code == (200 if i < RPM // 2 else 429), r.text
        assert degraded(a) > 0
        assert degraded(b) > 0
        assert degraded(a) + degraded(b) >= before + RPM + 2
    finally:
        own_redis.start()
    # Back on Redis: each gateway probes it after its back-off. Wait (bounded) until a
    # request on each no longer counts as degraded, then the shared limit holds again.
    _, probe = a.account(10_000_000)
    deadline = time.monotonic() + 10
    for gw in (a, b):
        while True:
            count = degraded(gw)
            httpx.post(
                gw.url + "/v1/chat/completions",
                json=BODY,
                headers={"authorization": f"Bearer {probe}"},
                timeout=5,
            )
            if degraded(gw) == count:
                break
            assert time.monotonic() < deadline, "the gateways never went back to Redis"
            time.sleep(0.1)
    _, key = b.account(10_000_000)
    statuses = asyncio.run(burst([(a, key), (b, key)], 2 * RPM))
    assert statuses.count(200) == RPM
