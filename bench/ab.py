"""Paired comparison of source trees: one gateway per tree, all on the gateway's core, measured
in interleaved windows so that every tree sees the same machine; the gateway CPU per request
(the figure least moved by other load) is reported per tree with its spread."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvloop
from launch import (
    access_log_for,
    add_tree_access_log,
    on_alarm,
    pg_database,
    start_pg_gateway,
    start_processes,
)
from procs import stop_process
from run import Target, measure, sanity_check


async def windows(
    targets: list[Target], pids: dict[str, int], args: argparse.Namespace
) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for stream in (False, True):
            for c in args.concurrency:
                for target in targets:
                    row = await measure(target, stream, c, args, pids)
                    key = (target.name, "stream" if stream else "json", c)
                    out.setdefault(key, []).append(row)
                    print(
                        f"  {key}: {row['gateway_cpu_ms_per_req']:.3f} ms/req,"
                        f" {row['rps']:.0f} r/s, other {row['other_load']:.2f}",
                        file=sys.stderr,
                        flush=True,
                    )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("trees", nargs="+", help="NAME=PATH: a source tree (its faregate package)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--concurrency", type=int, nargs="+", default=[32])
    add_tree_access_log(p)
    p.add_argument(
        "--postgres",
        default=None,
        help="also run, per tree, a gateway whose ledger is on PostgreSQL, in a fresh database "
        "made through this URL (named TREE-pg)",
    )
    p.add_argument("--redis", default=None, help="with --postgres: limits counted in this Redis")
    args = p.parse_args()
    args.cap = 200_000
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(300 + len(args.trees) * args.rounds * 4 * (args.duration + 12)))
    cpus = sorted(os.sched_getaffinity(0))
    gen_cpu, gw_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    if gen_cpu is not None:
        os.sched_setaffinity(0, {gen_cpu})
    procs = []
    targets: list[Target] = []
    pids: dict[str, int] = {"generator": os.getpid()}
    with tempfile.TemporaryDirectory(prefix="faregate-ab-") as tmp, contextlib.ExitStack() as dbs:
        try:
            for spec in args.trees:
                name, _, path = spec.partition("=")
                os.environ["PYTHONPATH"] = str(Path(path).resolve())
                (Path(tmp) / name).mkdir()
                sim, gw, sim_port, gw_port, _, _, key = start_processes(
                    Path(tmp) / name,
                    gen_cpu,
                    gw_cpu,
                    access_log=access_log_for(args, name),
                )
                procs += [gw, sim]
                pids[name] = gw.pid
                # every simulator is ours (not other load); the first is the one reported
                pids["simulator" if "simulator" not in pids else f"{name} simulator"] = sim.pid
                targets.append(Target(name, gw_port, key, name))
                if args.postgres:
                    url = dbs.enter_context(pg_database(args.postgres))
                    assert url is not None
                    pg, pg_port, pg_key = start_pg_gateway(
                        Path(tmp) / name, sim_port, gw_cpu, url, args.redis, name=f"{name}-pg"
                    )
                    procs.append(pg)
                    pids[f"{name}-pg"] = pg.pid
                    targets.append(Target(f"{name}-pg", pg_port, pg_key, f"{name}-pg"))
            for target in targets:
                for stream in (False, True):
                    sanity_check(target, stream)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                rows = runner.run(windows(targets, pids, args))
        finally:
            for proc in procs:
                stop_process(proc)
            signal.alarm(0)
    print(
        "| tree | mode | c | GW CPU ms/req median | min-max | r/s median | p50 ms | p99 ms"
        " | p99.9 ms | TTFB p50 ms | other load median |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (name, mode, c), same in rows.items():
        cpu = [r["gateway_cpu_ms_per_req"] for r in same]

        def med(field: str, rows: list[dict[str, Any]] = same) -> str:
            values = [r[field] for r in rows if r.get(field) is not None]
            return f"{statistics.median(values):.3f}" if values else "-"

        print(
            f"| {name} | {mode} | {c} | {statistics.median(cpu):.3f} | {min(cpu):.3f}-"
            f"{max(cpu):.3f} | {statistics.median(r['rps'] for r in same):,.0f} "
            f"| {med('p50_ms')} | {med('p99_ms')} | {med('p999_ms')} | {med('ttfb_p50_ms')} "
            f"| {statistics.median(r['other_load'] for r in same):.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
