"""Faregate soak: mixed traffic for a long while against two gateway processes sharing one
PostgreSQL database and one Redis, then checks that nothing leaked.

Traffic, at a bounded rate (`--rate` requests/s, at most `--concurrency` in flight): whole
replies through the three client protocols, streams, clients that hang up mid-stream, upstream
faults (errors, cuts, missing usage, latency) on a model of their own, embeddings, and requests
a poor account cannot cover (402). Each request goes to one of the two gateways at random.

Checks at the end (exit status 1 when one fails):
- RSS and open descriptors of each gateway flat: measured at two quiet moments (no client
  connection open), after the warm-up and at the end;
- no open hold, every hold ended exactly once, each balance the sum of its ledger;
- the ledger exact: each cost a client was told (header or usage chunk) is the settled cost.

Only loopback is contacted; the database is created for the run and dropped at its end, the
Redis keys carry a prefix of their own. Usage:
  .venv/bin/python bench/soak.py [--minutes 20] [--rate 20] [--out soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from paths import config  # noqa: E402
from procs import (  # noqa: E402
    free_port,
    http_json,
    memory_kb,
    source_version,
    stop_process,
    wait_health,
)
from soak_checks import Hold, Sample, flatness, ledger_failures  # noqa: E402
from soak_traffic import Traffic  # noqa: E402

ADMIN = "fga-soak-admin-" + "0123456789abcdef" * 2  # the gateway refuses one under 32
PRICE = "price = { input = 1000000, output = 2000000, cached_input = 500000 }"
QUIET_SECONDS = 3.0  # after the last request, before a quiet sample


def soak_config(sim: str, database: str, redis: str, prefix: str) -> str:
    """The path benchmark's config (a model per upstream protocol, Redis limits for two
    replicas) with a key prefix of the run's own, two models for faults, one for embeddings."""
    text = config(sim, database, redis).replace(
        "[limits]\n", f'[limits]\nkey_prefix = "{prefix}"\n'
    )
    return text + "\n".join(
        [
            '[models."m-faulty"]',
            'provider = "sim"',
            'upstream = "sim-faulty"',
            "max_output_tokens = 1000",
            PRICE,
            '[models."m-flaky"]',
            'provider = "sim"',
            'upstream = "sim-small"',
            "max_output_tokens = 1000",
            PRICE,
            '[models."m-embed"]',
            'kind = "embedding"',
            'provider = "sim"',
            PRICE,
            "",
        ]
    )


def process_sample(pid: int, at: float) -> Sample:
    """Resident memory and open descriptors of `pid`, from /proc."""
    return Sample(at, memory_kb(pid)["VmRSS"], len(os.listdir(f"/proc/{pid}/fd")))


# -- processes -------------------------------------------------------------------------------


class Stack:
    """The simulator and two gateway processes on one fresh PostgreSQL database."""

    def __init__(self, tmp: Path, pg_admin: str, redis: str) -> None:
        self.tmp, self.pg_admin, self.redis = tmp, pg_admin, redis
        self.database = f"faregate_soak_{secrets.token_hex(4)}"
        self.prefix = f"faregate-soak-{secrets.token_hex(4)}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.gateways: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _spawn(self, args: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, **kw)
        self.procs.append(proc)
        return proc

    async def start(self) -> None:
        conn = await asyncpg.connect(self.pg_admin)
        try:
            await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()
        sim_port = free_port()
        sim_log = self.tmp / "sim.log"
        sim = self._spawn([sys.executable, "-m", "faregate.sim", "--port", str(sim_port)], sim_log)
        sim_url = f"http://127.0.0.1:{sim_port}"
        wait_health(sim_url + "/health", sim, sim_log)
        url = self.pg_admin.rsplit("/", 1)[0] + f"/{self.database}"
        cfg = self.tmp / "faregate.toml"
        cfg.write_text(soak_config(sim_url, url, self.redis, self.prefix))
        env = {**os.environ, "FAREGATE_ADMIN_KEY": ADMIN, "FAREGATE_SECRET_KEY": "soak-secret"}
        env.pop("FAREGATE_DATABASE_URL", None)
        started = []
        for name in ("a", "b"):  # both at once: they take turns on the migrations
            home = self.tmp / name
            home.mkdir()
            port = free_port()
            log = self.tmp / f"gateway-{name}.log"
            args = ["serve", "--config", str(cfg), "--port", str(port)]
            proc = self._spawn(
                [sys.executable, "-m", "faregate.cli", *args],
                log,
                env={**env, "FAREGATE_HOME": str(home)},
                cwd=home,
            )
            started.append((f"http://127.0.0.1:{port}", proc, log))
        for base, proc, log in started:
            wait_health(base + "/health", proc, log, timeout=60)
            self.gateways.append((base, proc))

    def account(self, credits: int) -> tuple[str, str]:
        base = self.gateways[0][0]
        acct = http_json(
            "POST", base + "/admin/v1/accounts", {"name": "soak", "credits": credits}, ADMIN
        )
        key = http_json("POST", f"{base}/admin/v1/accounts/{acct['id']}/keys", {"name": "k"}, ADMIN)
        return str(acct["id"]), str(key["key"])

    async def ledger(self) -> tuple[list[tuple[str, int, int]], list[Hold], dict[str, list[str]]]:
        conn = await asyncpg.connect(self.pg_admin.rsplit("/", 1)[0] + f"/{self.database}")
        try:
            balances = await conn.fetch(
                "SELECT a.id, a.balance, COALESCE(SUM(l.amount), 0) AS total FROM accounts a"
                " LEFT JOIN ledger l ON l.account_id = a.id GROUP BY a.id, a.balance"
            )
            holds = await conn.fetch("SELECT id, status, cost, request_id FROM holds")
            rows = await conn.fetch("SELECT hold_id, kind FROM ledger WHERE hold_id IS NOT NULL")
        finally:
            await conn.close()
        kinds: dict[str, list[str]] = {}
        for row in rows:
            kinds.setdefault(row["hold_id"], []).append(row["kind"])
        return (
            [(r["id"], int(r["balance"]), int(r["total"])) for r in balances],
            [Hold(r["id"], r["status"], r["cost"], r["request_id"]) for r in holds],
            kinds,
        )

    async def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            conn = await asyncpg.connect(self.pg_admin)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                await conn.close()
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(self.redis)
            for found in client.scan_iter(match=f"{self.prefix}:*", count=1000):
                client.delete(found)
            client.close()


# -- the run ---------------------------------------------------------------------------------


async def quiet_samples(stack: Stack, at: float) -> dict[str, Sample]:
    """Samples of each gateway once no request has been in flight for QUIET_SECONDS."""
    await asyncio.sleep(QUIET_SECONDS)
    return {base: process_sample(proc.pid, at) for base, proc in stack.gateways}


async def sampler(stack: Stack, every: float, into: dict[str, list[Sample]]) -> None:
    start = time.monotonic()
    while True:
        for base, proc in stack.gateways:
            into.setdefault(base, []).append(process_sample(proc.pid, time.monotonic() - start))
        await asyncio.sleep(every)


async def soak(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    source = source_version()  # the code under test, before the run
    stack = Stack(tmp, args.pg, args.redis)
    try:
        await stack.start()
        _, key = stack.account(10**13)
        _, poor_key = stack.account(1)
        traffic = Traffic([base for base, _ in stack.gateways], key, poor_key, args.seed)
        seconds = args.minutes * 60
        warmup = min(60.0, max(10.0, seconds / 10))
        print(f"warm-up {warmup:.0f} s at {args.rate} req/s", file=sys.stderr, flush=True)
        await traffic.run(warmup, args.rate, args.concurrency)
        baseline = await quiet_samples(stack, 0.0)
        series: dict[str, list[Sample]] = {}
        watch = asyncio.create_task(sampler(stack, args.sample_seconds, series))
        print(f"soak {seconds:.0f} s", file=sys.stderr, flush=True)
        started = time.monotonic()
        skipped = await traffic.run(seconds, args.rate, args.concurrency)
        elapsed = time.monotonic() - started
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        end = await quiet_samples(stack, elapsed)
        balances, holds, kinds = await stack.ledger()
    finally:
        await stack.stop()
    failures = []
    for n, (base, _) in enumerate(stack.gateways):
        failures += flatness(
            f"gateway {'ab'[n]}",
            baseline[base],
            end[base],
            rss_growth=args.rss_growth,
            fd_slack=args.fd_slack,
        )
    failures += ledger_failures(balances, holds, kinds, traffic.tally.costs)
    server_errors = sum(n for k, n in traffic.tally.outcomes.items() if k.endswith(" 500"))
    if server_errors:
        failures.append(f"{server_errors} replies were a 500")
    return {
        "source": source,
        "minutes": round(elapsed / 60, 2),
        "rate": args.rate,
        "concurrency": args.concurrency,
        "requests": sum(traffic.tally.outcomes.values()),
        "skipped": skipped,
        "outcomes": dict(sorted(traffic.tally.outcomes.items())),
        "unexpected": traffic.tally.unexpected,
        "client_costs_checked": len(traffic.tally.costs),
        "holds": len(holds),
        "gateways": {
            "ab"[n]: {
                "baseline": asdict(baseline[base]),
                "end": asdict(end[base]),
                "samples": [asdict(s) for s in series.get(base, [])],
            }
            for n, (base, _) in enumerate(stack.gateways)
        },
        "failures": failures,
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Source: {result['source']}",
        "",
        f"Soak: {result['minutes']} min at {result['rate']} req/s (at most"
        f" {result['concurrency']} in flight): {result['requests']} requests (warm-up included),"
        f" {result['skipped']} skipped, {result['holds']} holds,"
        f" {result['client_costs_checked']} client-reported costs checked",
        "",
        "| gateway | RSS after warm-up | RSS at end | RSS max | fds after warm-up | fds at end"
        " | fds max |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, g in result["gateways"].items():
        samples = g["samples"] or [g["end"]]
        lines.append(
            f"| {name} | {g['baseline']['rss_kb'] / 1024:.1f} MiB | {g['end']['rss_kb'] / 1024:.1f}"
            f" MiB | {max(s['rss_kb'] for s in samples) / 1024:.1f} MiB"
            f" | {g['baseline']['fds']} | {g['end']['fds']} | {max(s['fds'] for s in samples)} |"
        )
    lines += ["", "| scenario | status | requests |", "|---|---|---|"]
    for outcome, count in result["outcomes"].items():
        scenario, _, status = outcome.rpartition(" ")
        lines.append(f"| {scenario} | {status} | {count} |")
    lines.append("")
    lines += [f"FAILED: {f}" for f in result["failures"]] or ["All checks passed."]
    return "\n".join(lines)


def on_alarm(signum: int, frame: object) -> None:
    raise TimeoutError("the soak exceeded its time budget")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight, at most")
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--rss-growth", type=float, default=0.10, help="allowed RSS growth")
    parser.add_argument("--fd-slack", type=int, default=8, help="allowed extra descriptors")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.minutes * 60 + 600))
    with tempfile.TemporaryDirectory(prefix="faregate-soak-") as d:
        try:
            result = asyncio.run(soak(args, Path(d)))
        finally:
            signal.alarm(0)
    print(report(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
