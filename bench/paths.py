"""Faregate path benchmark: translation paths, routing width and worker processes, each against
a baseline measured in the same run.

1. Streaming through each client protocol x upstream protocol pair: time to first byte and to
   the last byte, against the OpenAI -> OpenAI passthrough (and the simulator directly).
2. Routing overhead: one model with 1 deployment against one with 20 (non-streaming).
3. The full pipeline (auth, rate limits in Redis, hold, settle on PostgreSQL) on one and on two
   worker processes, against the simulator directly.

Placement: gateway workers on CPU 1 (both workers share it: the point is the shared-state cost,
not more cores), simulator and load generator on CPU 0. Bounded: every window has a fixed
duration and request cap. Usage: .venv/bin/python bench/paths.py [--quick] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from procs import cpu_seconds, free_port, http_json, stop_process, wait_health  # noqa: E402

PRICE = "price = { input = 1000000, output = 2000000, cached_input = 500000 }"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
ADMIN_KEY = "fga-bench-admin-key-0123456789abcdef"  # the gateway refuses one under 32 characters
MSG = [{"role": "user", "content": "Tell me about the sea and its tides, briefly."}]


def pinned(cpu: int) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, {cpu})


def config(sim: str, db_url: str, redis: str | None = None) -> str:
    lines = [
        "[database]",
        f'url = "{db_url}"',
        "[auth]",
        "key_cache_seconds = 5",
        "[providers.sim]",
        f'base_url = "{sim}/v1"',
        'api_key = "sk-sim"',
        "[providers.sim-anthropic]",
        'protocol = "anthropic"',
        f'base_url = "{sim}"',
        'api_key = "sk-ant"',
        "[providers.sim-gemini]",
        'protocol = "gemini"',
        f'base_url = "{sim}"',
        'api_key = "g-key"',
    ]
    for name, provider in (
        ("m-openai", "sim"),
        ("m-anthropic", "sim-anthropic"),
        ("m-gemini", "sim-gemini"),
    ):
        lines += [
            f'[models."{name}"]',
            f'provider = "{provider}"',
            "max_output_tokens = 4000",
            PRICE,
        ]
    lines += [
        '[models."one-dep"]',
        PRICE,
        '[[models."one-dep".deployments]]',
        'provider = "sim"',
        'upstream = "sim-small"',
    ]
    lines += ['[models."twenty-dep"]', PRICE]
    for i in range(20):
        lines += [
            '[[models."twenty-dep".deployments]]',
            'provider = "sim"',
            'upstream = "sim-small"',
            f'name = "d{i}"',
            f"weight = {1 + i % 3}",
        ]
    if redis:
        lines += [
            "[limits]",
            f'redis_url = "{redis}"',
            'default_plan = "big"',
            "replicas = 2",
            "[plans.big.chat]",
            "rpm = 100000000",
            "tpm = 1000000000000",
        ]
    return "\n".join(lines) + "\n"


class Stack:
    """A simulator and a gateway (with `workers` processes) on loopback."""

    def __init__(
        self, tmp: Path, workers: int = 1, postgres: str | None = None, redis: str | None = None
    ) -> None:
        self.tmp, self.workers, self.postgres, self.redis = tmp, workers, postgres, redis
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> tuple[str, str, str]:
        sim_port, gw_port = free_port(), free_port()
        sim_log, gw_log = self.tmp / "sim.log", self.tmp / "gw.log"
        sim = subprocess.Popen(
            [sys.executable, "-m", "faregate.sim", "--port", str(sim_port)],
            stdout=sim_log.open("wb"),
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(0),
        )
        self.procs.append(sim)
        sim_url = f"http://127.0.0.1:{sim_port}"
        wait_health(sim_url + "/health", sim, sim_log)
        db = self.postgres or f"sqlite:///{self.tmp / 'bench.db'}"
        cfg = self.tmp / "faregate.toml"
        cfg.write_text(config(sim_url, db, self.redis))
        env = {
            **os.environ,
            "FAREGATE_HOME": str(self.tmp),
            "FAREGATE_ADMIN_KEY": ADMIN_KEY,
            "FAREGATE_SECRET_KEY": "bench-secret",
        }
        gw = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faregate.cli",
                "serve",
                "--config",
                str(cfg),
                "--port",
                str(gw_port),
                "--workers",
                str(self.workers),
            ],
            stdout=gw_log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.tmp,
            preexec_fn=pinned(1),
        )
        self.procs.append(gw)
        gw_url = f"http://127.0.0.1:{gw_port}"
        wait_health(gw_url + "/health", gw, gw_log)
        acct = http_json(
            "POST", gw_url + "/admin/v1/accounts", {"name": "bench", "credits": 10**13}, ADMIN_KEY
        )
        key = http_json(
            "POST", f"{gw_url}/admin/v1/accounts/{acct['id']}/keys", {"name": "bench"}, ADMIN_KEY
        )["key"]
        return sim_url, gw_url, key

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)


# -- requests per client protocol ---------------------------------------------------------------


def request_for(
    client: str, base: str, key: str, model: str, stream: bool
) -> tuple[str, dict[str, Any], dict[str, str]]:
    if client == "openai":
        body: dict[str, Any] = {"model": model, "messages": MSG, "stream": stream}
        return f"{base}/v1/chat/completions", body, {"authorization": f"Bearer {key}"}
    if client == "anthropic":
        body = {"model": model, "max_tokens": 200, "messages": MSG, "stream": stream}
        return f"{base}/v1/messages", body, {"x-api-key": key, "anthropic-version": "2023-06-01"}
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": MSG[0]["content"]}]}]}
    return f"{base}/v1beta/models/{model}:{verb}", body, {"x-goog-api-key": key}


async def timed(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[float, float]:
    """(time to first body byte, time to last byte), in ms."""
    start = time.perf_counter()
    async with session.post(url, json=body, headers=headers) as resp:
        first = None
        async for _ in resp.content.iter_any():
            if first is None:
                first = time.perf_counter()
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}")
    end = time.perf_counter()
    return ((first or end) - start) * 1000, (end - start) * 1000


async def window(
    fn: Callable[[], Awaitable[tuple[float, float]]], seconds: float, concurrency: int, cap: int
) -> dict[str, float]:
    ttfb: list[float] = []
    total: list[float] = []
    deadline = time.perf_counter() + seconds
    count = 0

    async def loop() -> None:
        nonlocal count
        while time.perf_counter() < deadline and count < cap:
            count += 1
            a, b = await fn()
            ttfb.append(a)
            total.append(b)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started

    def q(values: list[float], p: int) -> float:
        return statistics.quantiles(values, n=100)[p - 1] if len(values) > 2 else values[0]

    return {
        "requests": len(total),
        "rps": len(total) / elapsed,
        "ttfb_p50": q(ttfb, 50),
        "ttfb_p99": q(ttfb, 99),
        "p50": q(total, 50),
        "p99": q(total, 99),
    }


async def measure(
    url: str, body: dict[str, Any], headers: dict[str, str], *, seconds: float, concurrency: int = 1
) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(20):  # warm up
            await timed(session, url, body, headers)
        return await window(
            lambda: timed(session, url, body, headers), seconds, concurrency, 200_000
        )


# -- the three scenarios -----------------------------------------------------------------------


async def translation_paths(tmp: Path, seconds: float) -> list[dict[str, Any]]:
    stack = Stack(tmp / "paths")
    (tmp / "paths").mkdir()
    sim, gw, key = stack.start()
    rows = []
    try:
        direct = await measure(
            f"{sim}/v1/chat/completions",
            {"model": "m", "messages": MSG, "stream": True},
            {"authorization": "Bearer x"},
            seconds=seconds,
        )
        rows.append({"path": "simulator directly (OpenAI)", **direct})
        for client in ("openai", "anthropic", "gemini"):
            for upstream in ("openai", "anthropic", "gemini"):
                url, body, headers = request_for(client, gw, key, f"m-{upstream}", True)
                result = await measure(url, body, headers, seconds=seconds)
                rows.append({"path": f"{client} -> {upstream}", **result})
    finally:
        stack.stop()
    return rows


async def routing_width(tmp: Path, seconds: float) -> list[dict[str, Any]]:
    (tmp / "width").mkdir()
    stack = Stack(tmp / "width")
    _, gw, key = stack.start()
    rows = []
    try:
        for concurrency in (1, 32):
            for model in ("one-dep", "twenty-dep"):
                url, body, headers = request_for("openai", gw, key, model, False)
                result = await measure(url, body, headers, seconds=seconds, concurrency=concurrency)
                rows.append({"model": model, "concurrency": concurrency, **result})
    finally:
        stack.stop()
    return rows


async def workers(tmp: Path, seconds: float) -> list[dict[str, Any]]:
    rows = []
    for count in (1, 2):
        name = f"faregate_bench_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        prefix = "redis://127.0.0.1:6379/0"
        (tmp / f"w{count}").mkdir()
        stack = Stack(
            tmp / f"w{count}",
            workers=count,
            postgres=PG_ADMIN.rsplit("/", 1)[0] + f"/{name}",
            redis=prefix,
        )
        try:
            sim, gw, key = stack.start()
            if count == 1:
                direct = await measure(
                    f"{sim}/v1/chat/completions",
                    {"model": "m", "messages": MSG},
                    {"authorization": "Bearer x"},
                    seconds=seconds,
                    concurrency=32,
                )
                rows.append({"target": "simulator directly", "workers": 0, **direct})
            url, body, headers = request_for("openai", gw, key, "m-openai", False)
            gw_pid = stack.procs[-1].pid
            before = tree_cpu(gw_pid)
            result = await measure(url, body, headers, seconds=seconds, concurrency=32)
            spent = tree_cpu(gw_pid) - before  # warm-up included: an upper bound
            done = result["requests"] + 20
            result["gw_cpu_ms_per_req"] = spent * 1000 / done if done else float("nan")
            rows.append({"target": "full pipeline, PostgreSQL + Redis", "workers": count, **result})
        finally:
            stack.stop()
            conn = await asyncpg.connect(PG_ADMIN)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()
    return rows


def tree_cpu(pid: int) -> float:
    """CPU seconds (utime + stime) of `pid` and every process below it (uvicorn's workers)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {pid}, True
    while grew:
        below = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    total = 0.0
    for member in tree:
        with contextlib.suppress(OSError, ValueError):
            total += cpu_seconds(member)
    return total


def table(
    rows: list[dict[str, Any]], keys: list[str], base: dict[str, Any] | None, metric: str
) -> str:
    head = [*keys, "req/s", "TTFB p50 ms", "TTFB p99 ms", "p50 ms", "p99 ms", f"{metric} ratio"]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        ratio = f"{row[metric] / base[metric]:.2f}" if base else ""
        out.append(
            "| " + " | ".join(str(row[k]) for k in keys) + f" | {row['rps']:.0f} | "
            f"{row['ttfb_p50']:.2f} | {row['ttfb_p99']:.2f} | {row['p50']:.2f} | "
            f"{row['p99']:.2f} | {ratio} |"
        )
    return "\n".join(out)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--workers-only", action="store_true", help="only the 1- and 2-worker PostgreSQL runs"
    )
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 4.0
    os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory(prefix="faregate-paths-") as d:
        tmp = Path(d)
        procs = await workers(tmp, seconds)
        if args.workers_only:
            print("## Worker processes (non-streaming, concurrency 32)\n")
            print(table(procs, ["target", "workers"], procs[0], "rps"))
            for row in procs[1:]:
                print(f"- {row['workers']} worker(s): {row['gw_cpu_ms_per_req']:.3f} ms CPU/req")
            return
        paths = await translation_paths(tmp, seconds)
        width = await routing_width(tmp, seconds)
    passthrough = next(r for r in paths if r["path"] == "openai -> openai")
    print("## Streaming through each translation path (concurrency 1)\n")
    print(table(paths, ["path"], passthrough, "ttfb_p50"))
    one = {
        c: next(r for r in width if r["model"] == "one-dep" and r["concurrency"] == c)
        for c in (1, 32)
    }
    print("\n## Routing width (non-streaming)\n")
    for c in (1, 32):
        print(
            table(
                [r for r in width if r["concurrency"] == c], ["model", "concurrency"], one[c], "p50"
            )
        )
        print()
    print("## Worker processes (non-streaming, concurrency 32)\n")
    print(table(procs, ["target", "workers"], procs[0], "rps"))
    if args.out:
        args.out.write_text(
            json.dumps({"paths": paths, "width": width, "workers": procs}, indent=2)
        )


if __name__ == "__main__":
    asyncio.run(main())
