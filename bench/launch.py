"""Starting a benchmark's processes: the simulator, gateways on SQLite or on PostgreSQL (and
Redis), a funded account on each, a fresh PostgreSQL database; the run's time budget and the
load generator's CPU."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from procs import free_port, gateway_config, http_json, pinned, stop_process, wait_health

CREDITS = 10**13  # micro-credits; a window costs well under 10**9


def on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError("the benchmark exceeded its time budget")


def add_tree_access_log(parser: argparse.ArgumentParser) -> None:
    """`--no-access-log [NAME ...]`: these source trees (all when none is named) run with their
    access log off (see `access_log_for`)."""
    parser.add_argument(
        "--no-access-log",
        nargs="*",
        default=None,
        metavar="NAME",
        help="these trees (all when none is named) run with [log] access = false",
    )


def access_log_for(args: argparse.Namespace, tree: str) -> bool:
    """Whether `tree`'s gateway keeps its access log, by `--no-access-log`."""
    off: list[str] | None = args.no_access_log
    return off is None or (bool(off) and tree not in off)


def pin_generator(budget_seconds: int) -> tuple[int | None, int | None]:
    """Stop the run after `budget_seconds` (an alarm, which stops the child processes too) and
    keep this process, the load generator, on the first CPU. Returns (generator CPU, gateway
    CPU), both None with fewer than two CPUs (then nothing is pinned)."""
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(budget_seconds)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    os.sched_setaffinity(0, {cpus[0]})  # py-spy, started from here, inherits it too
    return cpus[0], cpus[1]


def realtime_priority() -> bool:
    """Put this process's main thread (a load generator) at real-time priority (SCHED_FIFO);
    processes it starts later do not inherit it. False where the system refuses (not root,
    not Linux).

    The generator shares its core with the simulator, and a stream keeps the simulator busy
    after its first chunk: at normal priority the generator reads the gateway's copy of that
    chunk only when the scheduler lets it preempt the simulator. At real-time priority it
    reads bytes when they arrive (`bench/phases.py --realtime-client`)."""
    try:
        policy = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
        os.sched_setscheduler(0, policy, os.sched_param(1))
    except (AttributeError, OSError):
        return False
    return True


def launch_gateway(
    tmp: Path,
    name: str,
    home: Path,
    text: str,
    gateway_cpu: int | None,
    workers: int = 1,
    wrap: tuple[str, ...] = (),
) -> tuple[subprocess.Popen[bytes], int, str, Path]:
    """A gateway process (with `workers` worker processes) on the gateway's core with the
    config `text` and its own home and admin key, its command after `wrap` (e.g. valgrind).
    Returns (process, port, admin key, log path); wait for its health yourself."""
    config = tmp / f"{name}.toml"
    config.write_text(text)
    admin_key = "fga-bench-" + secrets.token_hex(16)
    env = {
        **os.environ,
        "FAREGATE_HOME": str(home),
        "FAREGATE_ADMIN_KEY": admin_key,
        "FAREGATE_SECRET_KEY": secrets.token_hex(32),
    }
    for var in ("FAREGATE_DATABASE_URL", "FAREGATE_CONFIG"):
        env.pop(var, None)
    port = free_port()
    log = tmp / f"{name}.log"
    serve = ["-m", "faregate.cli", "serve", "--config", str(config), "--port", str(port)]
    serve += ["--workers", str(workers)] if workers > 1 else []
    with log.open("wb") as out:
        gw = subprocess.Popen(
            [*wrap, sys.executable, *serve],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp,
            preexec_fn=pinned(gateway_cpu),
        )
    return gw, port, admin_key, log


def bench_account(url: str, admin_key: str) -> tuple[str, str]:
    """(account id, API key) of a funded account made through the admin API."""
    account = {"name": "bench", "credits": CREDITS}
    acct = http_json("POST", f"{url}/admin/v1/accounts", account, admin_key)
    key = http_json("POST", f"{url}/admin/v1/accounts/{acct['id']}/keys", {"name": "b"}, admin_key)
    return str(acct["id"]), str(key["key"])


def start_processes(
    tmp: Path,
    generator_cpu: int | None,
    gateway_cpu: int | None,
    access_log: bool = True,
    wrap: tuple[str, ...] = (),
    patience: float = 30,
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], int, int, str, str, str]:
    """Start the simulator and the gateway (its command after `wrap`, given `patience`
    seconds to answer); make an account and a key.
    Returns (sim, gateway, sim port, gateway port, admin key, account id, API key)."""
    sim_port = free_port()
    sim_log = tmp / "sim.log"
    with sim_log.open("wb") as out:
        sim = subprocess.Popen(
            [sys.executable, "-m", "faregate.sim", "--port", str(sim_port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(generator_cpu),
        )
    sim_url = f"http://127.0.0.1:{sim_port}"
    home = tmp / "home"
    home.mkdir()
    text = gateway_config(sim_url, home / "faregate.db")
    if not access_log:
        text += "\n[log]\naccess = false\n"
    gw, gw_port, admin_key, gw_log = launch_gateway(
        tmp, "gateway", home, text, gateway_cpu, wrap=wrap
    )
    try:
        wait_health(f"{sim_url}/health", sim, sim_log)
        gw_url = f"http://127.0.0.1:{gw_port}"
        wait_health(f"{gw_url}/health", gw, gw_log, patience)
        account_id, key = bench_account(gw_url, admin_key)
    except BaseException:
        stop_process(gw)
        stop_process(sim)
        raise
    return sim, gw, sim_port, gw_port, admin_key, account_id, key


def start_pg_gateway(
    tmp: Path,
    sim_port: int,
    gateway_cpu: int | None,
    db_url: str,
    redis: str | None,
    workers: int = 1,
    name: str = "gateway-pg",
    access_log: bool = True,
    wrap: tuple[str, ...] = (),
    patience: float = 30,
) -> tuple[subprocess.Popen[bytes], int, str]:
    """A second gateway on the gateway's core: its ledger on PostgreSQL at `db_url` and, with
    `redis`, every account on a plan whose (never reached) limits are counted in Redis; its
    command after `wrap`, given `patience` seconds to answer. Returns (process, port, API
    key)."""
    home = tmp / f"home-{name}"
    home.mkdir()
    text = gateway_config(f"http://127.0.0.1:{sim_port}", home / "unused.db")
    text = text.replace(f'url = "sqlite:///{home / "unused.db"}"', f'url = "{db_url}"')
    if redis:
        text += (
            f'\n[limits]\nredis_url = "{redis}"\ndefault_plan = "bench"\n'
            "\n[plans.bench.chat]\nrpm = 100000000\ntpm = 1000000000000\n"
        )
    if not access_log:
        text += "\n[log]\naccess = false\n"
    gw, port, admin_key, log = launch_gateway(tmp, name, home, text, gateway_cpu, workers, wrap)
    try:
        wait_health(f"http://127.0.0.1:{port}/health", gw, log, patience)
        _, key = bench_account(f"http://127.0.0.1:{port}", admin_key)
    except BaseException:
        stop_process(gw)
        raise
    return gw, port, key


@contextlib.contextmanager
def pg_database(admin_url: str | None) -> Iterator[str | None]:
    """A fresh PostgreSQL database for the run (dropped at the end), or None."""
    if not admin_url:
        yield None
        return
    import asyncpg

    name = f"faregate_bench_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
