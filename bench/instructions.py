"""Instructions per request: source trees compared by what the gateway executes, not by time.

Each tree's gateway runs under valgrind's callgrind, which counts every instruction the
process executes (all its threads). The count for the same work is the same whatever else
the machine does, so two trees that time cannot tell apart on a shared virtual machine are
told apart here. The counters are zeroed after a warm-up and dumped after a fixed number of
requests; the figure is their total over the requests served. (Under callgrind the gateway
runs about 50 times slower, so more requests share each group commit than at full speed; every tree
sees the same.) Simulator and load generator run at full speed, loopback only, bounded.

    .venv/bin/python bench/instructions.py pre=/path/to/tree new=. [--requests 600]
        [--concurrency 1 8] [--no-access-log [NAME ...]] [--keep DIR]
        [--postgres postgresql://postgres@127.0.0.1:5432/test [--redis redis://127.0.0.1:6379/0]]

With `--postgres`, each tree's gateway on PostgreSQL (and Redis) is counted beside its SQLite
one (only the gateway's own instructions: the database's and Redis's are not in them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from launch import (
    access_log_for,
    add_tree_access_log,
    pg_database,
    pin_generator,
    start_pg_gateway,
    start_processes,
)
from load import Conn
from procs import stop_process
from run import chat_request

WARMUP = 100
"""Requests served before the counters are zeroed (first calls, caches, the statement cache)."""


def control(*args: str) -> str:
    """Run callgrind_control (it talks to the process through valgrind's command pipe)."""
    done = subprocess.run(
        ["callgrind_control", *args], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def total(dump: Path) -> int:
    """The instruction total of a callgrind dump (its `summary:` or `totals:` line)."""
    text = dump.read_text(errors="replace")
    found = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no total in {dump}")
    return int(found[1])


async def serve(port: int, token: str, stream: bool, n: int, concurrency: int) -> None:
    """`n` chat requests, `concurrency` at a time; every one must be a complete 200."""
    payload = chat_request(port, token, stream)
    tail = b"data: [DONE]\n\n" if stream else b"}"
    left = [n]

    async def client() -> None:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Conn, "127.0.0.1", port)
        try:
            while left[0] > 0:
                left[0] -= 1
                await conn.request(payload)
                if conn.status != 200 or not conn.tail.endswith(tail):
                    raise RuntimeError(f"HTTP {conn.status}: ...{conn.tail!r}")
        finally:
            if conn.transport is not None:
                conn.transport.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))


def measure(
    pid: int,
    out: Path,
    port: int,
    token: str,
    stream: bool,
    n: int,
    concurrency: int,
    keep: Path | None = None,
) -> float:
    """Instructions per request over `n` requests after a warm-up."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(port, token, stream, WARMUP, concurrency))
        control("-z", str(pid))
        runner.run(serve(port, token, stream, n, concurrency))
    before = set(out.parent.glob(out.name + "*"))
    control("-d", str(pid))
    deadline = time.monotonic() + 60
    while not (dumps := set(out.parent.glob(out.name + "*")) - before):
        if time.monotonic() > deadline:
            raise TimeoutError("callgrind wrote no dump")
        time.sleep(0.2)
    time.sleep(0.5)  # let the dump be written whole
    dump = max(dumps, key=lambda p: p.stat().st_mtime)
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dump, keep)
    return total(dump) / n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("trees", nargs="+", help="NAME=PATH: a source tree (its faregate package)")
    p.add_argument("--requests", type=int, default=600, help="requests counted per setting")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    p.add_argument(
        "--keep", type=Path, default=None, help="copy each setting's callgrind dump here"
    )
    add_tree_access_log(p)
    p.add_argument(
        "--postgres",
        default=None,
        help="also count, per tree, a gateway whose ledger is on PostgreSQL (named TREE-pg), "
        "in a fresh database made through this URL",
    )
    p.add_argument("--redis", default=None, help="with --postgres: its limits in this Redis")
    args = p.parse_args()
    if not (1 <= args.requests <= 5000 and all(1 <= c <= 64 for c in args.concurrency)):
        p.error("keep --requests in [1, 5000] and every --concurrency in [1, 64]")
    settings = [(s, c) for s in (False, True) for c in args.concurrency]
    per_tree = 2 if args.postgres else 1
    budget = 120 + len(args.trees) * per_tree * (
        180 + len(settings) * (args.requests + WARMUP) * 0.15
    )
    gen_cpu, gw_cpu = pin_generator(int(budget))
    rows: dict[tuple[str, bool, int], float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="faregate-instr-") as tmp,
        contextlib.ExitStack() as dbs,
    ):
        for spec in args.trees:
            name, _, path = spec.partition("=")
            os.environ["PYTHONPATH"] = str(Path(path).resolve())
            folder = Path(tmp) / name
            folder.mkdir()
            out = folder / "callgrind.out"
            wrap = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}")
            logged = access_log_for(args, name)
            sim, gw, sim_port, port, _, _, token = start_processes(
                folder, gen_cpu, gw_cpu, access_log=logged, wrap=wrap, patience=300
            )
            gateways = [(name, gw, port, token, out)]
            try:
                if args.postgres:
                    url = dbs.enter_context(pg_database(args.postgres))
                    assert url is not None
                    pg_out = folder / "callgrind-pg.out"
                    pg, pg_port, pg_token = start_pg_gateway(
                        folder,
                        sim_port,
                        gw_cpu,
                        url,
                        args.redis,
                        name=f"{name}-pg",
                        access_log=logged,
                        wrap=(*wrap[:-1], f"--callgrind-out-file={pg_out}"),
                        patience=300,
                    )
                    gateways.append((f"{name}-pg", pg, pg_port, pg_token, pg_out))
                for label, proc, gw_port, key, dump in gateways:
                    for stream, c in settings:
                        mode = "stream" if stream else "json"
                        keep = args.keep / f"{label}-{mode}-{c}.cg" if args.keep else None
                        per = measure(proc.pid, dump, gw_port, key, stream, args.requests, c, keep)
                        rows[(label, stream, c)] = per
                        print(
                            f"  {label} {mode} c={c}: {per:,.0f} instructions/request", flush=True
                        )
            finally:
                for _, proc, _, _, _ in gateways:
                    stop_process(proc)
                stop_process(sim)
    signal.alarm(0)
    first = args.trees[0].partition("=")[0]
    print(f"\n| gateway | mode | c | instructions per request | ÷ {first} |")
    print("| --- | --- | ---: | ---: | ---: |")
    for (name, stream, c), per in rows.items():
        ratio = per / rows[(first, stream, c)]
        mode = "stream" if stream else "json"
        print(f"| {name} | {mode} | {c} | {per / 1e6:.3f} M | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
