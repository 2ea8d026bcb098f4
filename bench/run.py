"""Faregate benchmark: the simulator directly (baseline) versus through one gateway worker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop
from hops import describe, hop_costs
from launch import pg_database, pin_generator, start_pg_gateway, start_processes
from load import Window, pct, worker
from procs import (
    CLK_TCK,
    allowed_cpus,
    cpu_seconds,
    environment,
    free_port,
    http_json,
    memory_kb,
    pinned,
    stop_process,
    wait_health,
)
from report import CONCURRENCIES, choose, comparisons, markdown, mode

MODEL = "sim-small"
REQUEST_CAP = 200_000  # hard cap on requests per measured window
DRAIN_SECONDS = 10.0  # in-flight requests still open this long after a window are errors
QUIET_LOAD = 0.1  # cores used by other processes below which the machine counts as quiet

# A ~1 KB chat body (the size used in shared/PERFORMANCE.md); the reply is the simulator's
# default, 20-40 tokens, i.e. 20-40 SSE chunks plus the usage chunk when streaming.
SYSTEM = (
    "You are a helpful assistant for a travel agency. Answer briefly and politely, give "
    "concrete suggestions with prices in euros where you can, and ask one clarifying question "
    "when the request is ambiguous. Never invent booking references or confirm reservations."
)
USER = (
    "Hello! My partner and I are planning a ten day trip through northern Italy in late "
    "September. We would like to start in Milan, spend a few days around Lake Como, then go "
    "on to Verona and Venice, and finish with two nights in Bologna for the food. We travel "
    "by train only and prefer small family-run hotels over large chains. Our budget is about "
    "two hundred euros per night for lodging. Could you suggest how many nights to spend in "
    "each place, which train connections make sense between them, and one or two things in "
    "each town that are worth booking ahead? We are also wondering whether late September is "
    "still warm enough to swim in the lake. Thank you very much for your help."
)


def chat_request(port: int, token: str, stream: bool) -> bytes:
    """The whole HTTP/1.1 request the load generator sends: the chat body to port `port`."""
    body = chat_body(stream)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def chat_body(stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        "temperature": 0.7,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


# -- processes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str  # "direct" (the simulator), "faregate" (SQLite) or "faregate-pg"
    port: int
    token: str
    process: str | None = None  # the key of its gateway process in `pids`


def core_busy() -> float:
    """Busy CPU seconds since boot summed over all cores, every process included."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass(frozen=True)
class Snapshot:
    """CPU counters at one instant: ours per process, and the whole machine's."""

    at: float
    procs: dict[str, float]
    machine: float

    @classmethod
    def take(cls, pids: dict[str, int]) -> Snapshot:
        procs = {name: cpu_seconds(pid) for name, pid in pids.items()}
        return cls(time.perf_counter(), procs, core_busy())

    def since(self, before: Snapshot) -> tuple[float, dict[str, float], float]:
        """(elapsed seconds, CPU seconds per process, other processes' load in cores)."""
        elapsed = self.at - before.at
        procs = {name: self.procs[name] - before.procs[name] for name in self.procs}
        other = (self.machine - before.machine - sum(procs.values())) / elapsed
        return elapsed, procs, max(0.0, other)


async def wait_quiet(pids: dict[str, int], max_wait: float) -> tuple[float, float]:
    """Wait (at most `max_wait` s) until other processes use under QUIET_LOAD of a core.
    The machine may be shared; returns (seconds waited, the last other-load sample)."""
    start = time.perf_counter()
    while True:
        before = Snapshot.take(pids)
        await asyncio.sleep(0.5)
        _, _, other = Snapshot.take(pids).since(before)
        waited = time.perf_counter() - start
        if other <= QUIET_LOAD or waited >= max_wait:
            return waited, other
        await asyncio.sleep(0.5)


async def measure(
    target: Target,
    stream: bool,
    concurrency: int,
    args: argparse.Namespace,
    pids: dict[str, int],
) -> dict[str, Any]:
    """One window: warm up, then measure for `args.duration` s (or `args.cap` requests)."""
    payload = chat_request(target.port, target.token, stream)
    win = Window()
    tasks = [
        asyncio.create_task(worker(target.port, payload, stream, win, args.cap))
        for _ in range(concurrency)
    ]
    gc.collect()
    gc.disable()
    try:
        await asyncio.sleep(args.warmup)
        before = Snapshot.take(pids)
        win.measuring = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(win.capped.wait(), timeout=args.duration)
        win.measuring = False
        win.stopped = True
        elapsed, cpu, other = Snapshot.take(pids).since(before)
        finished, pending = await asyncio.wait(tasks, timeout=DRAIN_SECONDS)
        for task in pending:
            task.cancel()
            win.error("request still open after the window (timeout)")
        for task in finished:
            if (exc := task.exception()) is not None:
                win.error(f"worker failed: {exc!r}")
    finally:
        gc.enable()
    lat = sorted(win.latencies_ns)
    ttfb = sorted(win.ttfb_ns)
    done = win.ok + win.errors

    def per_request(seconds: float) -> float | None:
        return seconds * 1000 / done if done else None

    row: dict[str, Any] = {
        "target": target.name,
        "stream": stream,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "requests": win.ok,
        "errors": win.errors,
        "error_samples": win.error_samples,
        "capped": win.capped.is_set(),
        "rps": win.ok / elapsed,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "p999_ms": pct(lat, 99.9),
        "mean_ms": (sum(lat) / len(lat) / 1e6) if lat else float("nan"),
        "ttfb_p50_ms": pct(ttfb, 50) if stream else None,
        "ttfb_p99_ms": pct(ttfb, 99) if stream else None,
        "cpu_seconds": {name: round(v, 3) for name, v in cpu.items()},
        "generator_cpu_ms_per_req": per_request(cpu["generator"]),
        "simulator_cpu_ms_per_req": per_request(cpu["simulator"]),
        # The generator's core: the generator and the simulator share it.
        "core0_busy": (cpu["generator"] + cpu["simulator"]) / elapsed,
        # CPU used by processes other than ours while measuring (the machine may be shared).
        "other_load": other,
    }
    if target.process is not None:
        row["gateway_cpu_ms_per_req"] = per_request(cpu[target.process])
        row["gateway_core_busy"] = cpu[target.process] / elapsed
        row["gateway_mem_kb"] = memory_kb(pids[target.process])
    return row


# -- the run -------------------------------------------------------------------------------


def start_relay(tmp: Path, sim_port: int, cpu: int | None) -> tuple[subprocess.Popen[bytes], int]:
    """The null proxy (bench/relay.py) in front of the simulator, on the gateway's core; up
    once the simulator's /health answers through it."""
    port = free_port()
    log = tmp / "relay.log"
    with log.open("wb") as out:
        relay = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("relay.py")), str(port), str(sim_port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(cpu),
        )
    try:
        wait_health(f"http://127.0.0.1:{port}/health", relay, log, 10)
    except BaseException:
        stop_process(relay)
        raise
    return relay, port


def sanity_check(target: Target, stream: bool) -> None:
    """One request parsed in full: a 200, choices, and usage (in the last chunk if streaming)."""
    url = f"http://127.0.0.1:{target.port}/v1/chat/completions"
    req = urllib.request.Request(url, data=chat_body(stream), method="POST")
    req.add_header("content-type", "application/json")
    req.add_header("authorization", f"Bearer {target.token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read().decode()
    if stream:
        events = [e[6:] for e in raw.split("\n\n") if e.startswith("data: ")]
        assert events[-1] == "[DONE]", raw[-200:]
        chunks = [json.loads(e) for e in events[:-1]]
        assert chunks[-1].get("usage", {}).get("completion_tokens"), chunks[-1]
        assert 20 <= len(chunks) <= 60, len(chunks)
    else:
        data = json.loads(raw)
        assert data["choices"][0]["message"]["content"], data
        assert data["usage"]["completion_tokens"] > 0, data


async def run_windows(
    targets: list[Target], args: argparse.Namespace, pids: dict[str, int]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for round_ in range(1, args.rounds + 1):
        for stream in (False, True):
            for c in args.concurrency:
                for target in targets:
                    waited, before = await wait_quiet(pids, args.quiet_wait)
                    row = await measure(target, stream, c, args, pids)
                    row.update(round=round_, quiet_wait_s=round(waited, 1), other_before=before)
                    rows.append(row)
                    print(
                        f"  round {round_} {target.name:8} {mode(row):6} c={c:<3} "
                        f"{row['rps']:7.0f} r/s  p50 {row['p50_ms']:7.3f} ms  "
                        f"p99 {row['p99_ms']:7.3f} ms  errors {row['errors']}  "
                        f"other load {row['other_load']:.2f} (waited {waited:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="0.5 s warm-ups, 1.5 s windows")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--warmup", type=float, default=None, help="seconds (default 1)")
    parser.add_argument("--duration", type=float, default=None, help="seconds (default 5)")
    parser.add_argument("--cap", type=int, default=REQUEST_CAP, help="requests per window")
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="run the gateway with its access log off (on by default, as in production)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure every setting N times (default 1)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=list(CONCURRENCIES),
        help=f"requests in flight, one setting each (default {' '.join(map(str, CONCURRENCIES))})",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="before each window, wait up to this many seconds for other processes to go "
        "quiet (default 20; 0 = do not wait)",
    )
    parser.add_argument(
        "--relay",
        action="store_true",
        help="also measure a null proxy (bench/relay.py: bytes relayed, nothing parsed) in the "
        "gateway's place: what any proxy process costs on this placement",
    )
    parser.add_argument(
        "--postgres",
        default=None,
        help="also measure a gateway whose ledger is on PostgreSQL, in a fresh database made "
        "through this URL (e.g. postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument(
        "--redis",
        default=None,
        help="with --postgres: that gateway's rate limits counted in this Redis "
        "(e.g. redis://127.0.0.1:6379/0)",
    )
    args = parser.parse_args()
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    args.duration = args.duration if args.duration is not None else (1.5 if args.quick else 5.0)
    if not (0 < args.duration <= 60 and 0 <= args.warmup <= 10 and 1 <= args.rounds <= 10):
        parser.error("keep --duration in (0, 60], --warmup in [0, 10], --rounds in [1, 10]")
    if not all(1 <= c <= 512 for c in args.concurrency):
        parser.error("keep every --concurrency in [1, 512]")

    targets_n = 2 + bool(args.postgres) + args.relay
    windows = args.rounds * 2 * targets_n * len(args.concurrency)
    budget = 120 + windows * (args.warmup + args.duration + args.quiet_wait + 1 + DRAIN_SECONDS)
    gen_cpu, gw_cpu = pin_generator(int(budget))
    if gen_cpu is not None:
        placement = (
            f"gateway alone on CPU {gw_cpu}; simulator and load generator share CPU {gen_cpu}"
        )
    else:
        placement = "NOT pinned (fewer than 2 CPUs available): numbers are not comparable"
    env = environment()
    print(f"environment: {json.dumps(env)}", file=sys.stderr)
    hops = hop_costs(gen_cpu, gw_cpu)  # before anything else runs: the host's floor
    print(f"hops: {describe(hops)}", file=sys.stderr)

    with (
        tempfile.TemporaryDirectory(prefix="faregate-bench-") as tmpdir,
        pg_database(args.postgres) as pg_url,
    ):
        sim, gw, sim_port, gw_port, admin_key, account_id, key = start_processes(
            Path(tmpdir), gen_cpu, gw_cpu, access_log=not args.no_access_log
        )
        pg_gw: subprocess.Popen[bytes] | None = None
        relay: subprocess.Popen[bytes] | None = None
        try:
            targets = [
                Target("direct", sim_port, "sk-bench"),
                Target("faregate", gw_port, key, "gateway"),
            ]
            pids = {"generator": os.getpid(), "simulator": sim.pid, "gateway": gw.pid}
            if pg_url:
                pg_gw, pg_port, pg_key = start_pg_gateway(
                    Path(tmpdir), sim_port, gw_cpu, pg_url, args.redis
                )
                targets.append(Target("faregate-pg", pg_port, pg_key, "gateway-pg"))
                pids["gateway-pg"] = pg_gw.pid
            if args.relay:
                relay, relay_port = start_relay(Path(tmpdir), sim_port, gw_cpu)
                targets.append(Target("relay", relay_port, "sk-bench", "relay"))
                pids["relay"] = relay.pid
            for target in targets:
                for stream in (False, True):
                    sanity_check(target, stream)
            affinity = {name: allowed_cpus(pid) for name, pid in pids.items()}
            print(f"placement: {placement}; CPUs allowed per thread: {affinity}", file=sys.stderr)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                rows = runner.run(run_windows(targets, args, pids))
            account = http_json(
                "GET", f"http://127.0.0.1:{gw_port}/admin/v1/accounts/{account_id}", None, admin_key
            )
            result: dict[str, Any] = {
                "environment": env,
                "placement": placement,
                "hops": hops,
                "affinity": {name: sorted(set(v.values())) for name, v in affinity.items()},
                "generator": (
                    "one Python process (uvloop, a raw asyncio protocol with the httptools "
                    "parser, one keep-alive connection per concurrent client), sharing CPU "
                    f"{gen_cpu} with the simulator; wrk: "
                    + ("installed, not used" if shutil.which("wrk") else "not installed")
                ),
                "warmup_s": args.warmup,
                "duration_s": args.duration,
                "cap": args.cap,
                "rounds": args.rounds,
                "quiet_wait_s": args.quiet_wait,
                "results": rows,
                "comparisons": comparisons(choose(rows)),
                "gateway_memory_kb": memory_kb(gw.pid),
                "gateway_pg_memory_kb": memory_kb(pg_gw.pid) if pg_gw else None,
                "pg_gateway": (
                    f"ledger on PostgreSQL{', limits in Redis' if args.redis else ''}"
                    if pg_gw
                    else None
                ),
                "simulator_memory_kb": memory_kb(sim.pid),
                "account_balance_after": account.get("balance"),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
        finally:
            if relay is not None:
                stop_process(relay)
            if pg_gw is not None:
                stop_process(pg_gw)
            stop_process(gw)
            stop_process(sim)
            signal.alarm(0)
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
