"""Faregate on PostgreSQL + Redis with 1 and 2 worker processes: the CPU each request costs
the gateway, the database server and Redis, and from those what N cores would serve.

One run: the simulator and the load generator (run.py's raw-protocol client) on CPU 0, the
gateway's worker processes on CPU 1 (two workers share it: the point is the cost of the
shared state, which this 2-core machine cannot spread over more cores), PostgreSQL and Redis
wherever the system runs them. Every window is bounded in time and requests, on loopback.

Usage: .venv/bin/python bench/workers.py [--duration S] [--rounds N] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvloop
from launch import pg_database, pin_generator, start_pg_gateway, start_processes
from procs import stop_process
from run import Target, measure, sanity_check

PG = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"


def processes(comm: str) -> list[int]:
    """The pids of every process whose command name is `comm` (readable /proc needed)."""
    found = []
    for path in Path("/proc").glob("[0-9]*/comm"):
        try:
            if path.read_text().strip() == comm:
                found.append(int(path.parent.name))
        except OSError:
            continue
    return found


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (uvicorn's worker processes)."""
    found = []
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(path.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(path.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


async def window(target: Target, args: argparse.Namespace, pids: dict[str, int]) -> dict[str, Any]:
    row = await measure(target, False, args.concurrency, args, pids)
    done = row["requests"] + row["errors"]
    cpu = row["cpu_seconds"]

    def per_request(prefix: str) -> float:
        spent = sum(v for name, v in cpu.items() if name.startswith(prefix))
        return spent * 1000 / done if done else float("nan")

    return {
        "rps": row["rps"],
        "p50_ms": row["p50_ms"],
        "p99_ms": row["p99_ms"],
        "errors": row["errors"],
        "other_load": row["other_load"],
        "gateway_ms": per_request("gw"),
        "postgres_ms": per_request("pg"),
        "redis_ms": per_request("redis"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cap", type=int, default=200_000)
    parser.add_argument("--postgres", default=PG)
    parser.add_argument("--redis", default=REDIS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    gen_cpu, gw_cpu = pin_generator(int(300 + args.rounds * 2 * (args.duration + args.warmup + 15)))
    if gen_cpu is None or gw_cpu is None:
        print("needs 2 CPUs", file=sys.stderr)
        return 1
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="faregate-workers-") as d,
        pg_database(args.postgres) as pg_url,
    ):
        assert pg_url is not None
        tmp = Path(d)
        sim, gw, sim_port, _, _, _, _ = start_processes(tmp, gen_cpu, gw_cpu)
        stop_process(gw)  # only the simulator of that pair is used
        try:
            for workers in (1, 2):
                pg_gw, port, key = start_pg_gateway(
                    tmp, sim_port, gw_cpu, pg_url, args.redis, workers, name=f"gw{workers}"
                )
                try:
                    target = Target(f"{workers} worker(s)", port, key)
                    sanity_check(target, False)
                    pids = {"generator": os.getpid(), "simulator": sim.pid}
                    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                        runner.run(window(target, args, pids))  # every pool connection opened
                    members = children(pg_gw.pid) if workers > 1 else []
                    pids.update({f"gw-{p}": p for p in [pg_gw.pid, *members]})
                    pids.update({f"pg-{p}": p for p in processes("postgres")})
                    pids.update({f"redis-{p}": p for p in processes("redis-server")})
                    for _ in range(args.rounds):
                        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                            row = runner.run(window(target, args, pids))
                        rows.append({"workers": workers, **row})
                        print(f"  {workers} worker(s): {row}", file=sys.stderr)
                finally:
                    stop_process(pg_gw)
        finally:
            stop_process(sim)
            signal.alarm(0)
    print(report(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 1 if any(r["errors"] for r in rows) else 0


def report(rows: list[dict[str, Any]]) -> str:
    out = [
        "| workers | r/s | p50 ms | p99 ms | gateway CPU ms/req | PostgreSQL CPU ms/req"
        " | Redis CPU ms/req | other load |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        out.append(
            f"| {r['workers']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f}"
            f" | {r['gateway_ms']:.3f} | {r['postgres_ms']:.3f} | {r['redis_ms']:.3f}"
            f" | {r['other_load']:.2f} |"
        )
    best = {
        w: min((r for r in rows if r["workers"] == w), key=lambda r: r["gateway_ms"])
        for w in (1, 2)
    }
    two = best[2]
    out.append("")
    out.append(
        f"From the 2-worker figures: one gateway core serves {1000 / two['gateway_ms']:,.0f} r/s;"
        f" PostgreSQL needs {two['postgres_ms']:.3f} ms of a core per request"
        f" ({1000 / two['postgres_ms']:,.0f} r/s per database core), Redis"
        f" {two['redis_ms']:.3f} ms ({1000 / two['redis_ms']:,.0f} r/s on its one thread)."
    )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
