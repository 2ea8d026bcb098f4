"""The soak's traffic: a seeded mix of requests sent open-loop at a bounded rate, and what
the clients saw (outcomes, and each cost a client was told)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from paths import request_for

# (scenario, weight): what one request of the mix is.
MIX = [
    ("json", 25),
    ("json-anthropic", 8),
    ("json-gemini", 7),
    ("stream", 20),
    ("disconnect", 10),
    ("fault", 15),
    ("embeddings", 8),
    ("poor", 7),
]
# (fault script, model): upstream errors on a model of their own (its breaker opens and
# closes); the faults that leave the upstream healthy on another.
FAULTS = [
    ("status=500", "m-faulty"),
    ("status=429;retry_after=0.2", "m-faulty"),
    ("no_usage", "m-flaky"),
    ("latency_ms=300", "m-flaky"),
    ("cut_after=3", "m-flaky"),
]


@dataclass
class Tally:
    """What the traffic did: outcomes per scenario, and the costs clients were told."""

    outcomes: Counter[str] = field(default_factory=Counter)
    costs: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)

    def note(self, scenario: str, outcome: str, expected: bool) -> None:
        self.outcomes[f"{scenario} {outcome}"] += 1
        if not expected and len(self.unexpected) < 20:
            self.unexpected.append(f"{scenario}: {outcome}")


def _stream_cost(raw: bytes) -> int | None:
    """The cost in a stream's usage chunk, if the stream ended with one."""
    events = [e[6:] for e in raw.decode(errors="replace").split("\n\n") if e.startswith("data: ")]
    for event in reversed(events):
        if event != "[DONE]":
            usage = json.loads(event).get("usage")
            field = "cost_micro_credits"
            return int(usage[field]) if isinstance(usage, dict) and field in usage else None
    return None


class Traffic:
    def __init__(self, gateways: list[str], key: str, poor_key: str, seed: int) -> None:
        self.gateways, self.key, self.poor_key = gateways, key, poor_key
        self.rng = random.Random(seed)
        self.tally = Tally()

    async def one(self, session: aiohttp.ClientSession) -> None:
        names = [name for name, _ in MIX]
        scenario = self.rng.choices(names, [w for _, w in MIX])[0]
        base = self.rng.choice(self.gateways)
        try:
            await asyncio.wait_for(self._run(session, scenario, base), timeout=60)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally.note(scenario, type(exc).__name__, False)

    async def _run(self, session: aiohttp.ClientSession, scenario: str, base: str) -> None:
        tally, key = self.tally, self.key
        if scenario in ("json", "json-anthropic", "json-gemini"):
            client = {"json": "openai", "json-anthropic": "anthropic"}.get(scenario, "gemini")
            model = self.rng.choice(["m-openai", "m-anthropic", "m-gemini"])
            url, body, headers = request_for(client, base, key, model, False)
            async with session.post(url, json=body, headers=headers) as r:
                await r.read()
                self._whole(scenario, r, r.status == 200)
        elif scenario == "stream":
            model = self.rng.choice(["m-openai", "m-anthropic", "m-gemini"])
            url, body, headers = request_for("openai", base, key, model, True)
            body["stream_options"] = {"include_usage": True}
            async with session.post(url, json=body, headers=headers) as r:
                raw = await r.read()
                cost = _stream_cost(raw) if r.status == 200 else None
                if cost is not None:
                    tally.costs[r.headers["x-request-id"]] = cost
                tally.note(scenario, str(r.status), cost is not None)
        elif scenario == "disconnect":
            url, body, headers = request_for("openai", base, key, "m-openai", True)
            body["user"] = "sim:chunk_delay_ms=40"
            async with session.post(url, json=body, headers=headers) as r:
                await r.content.readany()
                r.close()  # hang up mid-stream
                tally.note(scenario, str(r.status), r.status == 200)
        elif scenario == "fault":
            fault, model = self.rng.choice(FAULTS)
            stream = fault.startswith("cut")
            url, body, headers = request_for("openai", base, key, model, stream)
            body["user"] = f"sim:{fault}"
            async with session.post(url, json=body, headers=headers) as r:
                await r.read()
                if not stream:
                    self._whole(f"fault {fault}", r, r.status in (200, 502, 503))
                else:
                    tally.note(f"fault {fault}", str(r.status), r.status == 200)
        elif scenario == "embeddings":
            body = {"model": "m-embed", "input": ["soak", "the ledger stays exact"]}
            headers = {"authorization": f"Bearer {key}"}
            async with session.post(f"{base}/v1/embeddings", json=body, headers=headers) as r:
                await r.read()
                self._whole(scenario, r, r.status == 200)
        else:  # a request the poor account cannot cover: 402, nothing held
            url, body, headers = request_for("openai", base, self.poor_key, "m-openai", False)
            async with session.post(url, json=body, headers=headers) as r:
                await r.read()
                tally.note(scenario, str(r.status), r.status == 402)

    def _whole(self, scenario: str, r: aiohttp.ClientResponse, expected: bool) -> None:
        cost = r.headers.get("x-faregate-cost")
        if r.status == 200 and cost is not None:
            self.tally.costs[r.headers["x-request-id"]] = int(cost)
        self.tally.note(scenario, str(r.status), expected)

    async def run(self, seconds: float, rate: float, concurrency: int) -> int:
        """Open-loop traffic for `seconds`; returns the requests skipped (all slots busy)."""
        skipped = 0
        tasks: set[asyncio.Task[None]] = set()
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=90)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            start = time.monotonic()
            sent = 0
            while (now := time.monotonic() - start) < seconds:
                due = int(now * rate) + 1
                while sent < due:
                    sent += 1
                    if len(tasks) >= concurrency:
                        skipped += 1
                        continue
                    task = asyncio.create_task(self.one(session))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.sleep(max(0.0, (sent / rate) - (time.monotonic() - start)))
            if tasks:
                await asyncio.wait(tasks, timeout=120)
        return skipped
