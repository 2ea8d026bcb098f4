"""Where one request at a time spends its time, inside the gateway and outside it.

The gateway runs with a `sitecustomize` (first on its PYTHONPATH) that timestamps four moments
of every request, with the clock the load generator reads too: its bytes read by the gateway,
its upstream request written, the upstream's first bytes read, and the gateway's first bytes
written back. The generator (one connection, one request at a time) stamps the send, the first
bytes and the last. Matched up, each request splits into phases:

    to gateway      send -> the gateway reads it        (a hop, the gateway's wake-up)
    before upstream read -> upstream request written    (the gateway's admission path)
    upstream        written -> upstream's first bytes   (the simulator, two hops, wake-ups)
    after upstream  first bytes in -> first bytes out   (the gateway's reply path)
    to client       first bytes out -> client reads     (a hop, the generator's wake-up)

The report gives the upstream connections the gateway opened (against reused ones), the
latency to the first bytes and to the last, each phase's percentiles,
and for the slowest 1% of requests the phase that lost the most time against its own median.
The simulator alone (the direct baseline) is measured in the same run. `--realtime-client`
runs the client at real-time priority (SCHED_FIFO; needs root), so that "to client" is the
hop and not the client waiting for the core it shares with the simulator. Loopback only,
bounded.

`--detail` stamps the gateway's own steps too (auth, body, the hold and its statements, the
attempt, the upstream's head and body, the response) and reports the time each step takes
from the one before it; each wrapper adds about a microsecond. The stamps live in
`bench/phase_hook.py`, installed as the gateway's `sitecustomize`.

    .venv/bin/python bench/phases.py [--stream] [--requests 8000] [--realtime-client] [--detail]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from launch import pin_generator, realtime_priority, start_processes
from phase_hook import STEPS
from procs import stop_process, wait_for_file
from run import chat_request

WARMUP = 1500

PHASES = (
    ("to gateway", "sent", "in"),
    ("before upstream", "in", "up_out"),
    ("upstream", "up_out", "up_in"),
    ("after upstream", "up_in", "out"),
    ("to client", "out", "first"),
)


def requests(port: int, token: str, stream: bool, n: int) -> list[tuple[int, int, int]]:
    """`n` requests one at a time on one connection: (sent, first bytes, last byte) each."""
    payload = chat_request(port, token, stream)
    tail = b"0\r\n\r\n" if stream else b"}"
    out: list[tuple[int, int, int]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            sent = time.perf_counter_ns()
            sock.sendall(payload)
            first = 0
            buf = b""
            while not buf.endswith(tail):
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                if not first:
                    first = time.perf_counter_ns()
                    if not data.startswith(b"HTTP/1.1 200 "):
                        raise RuntimeError(f"not a 200: {data[:200]!r}")
                buf = buf[-16:] + data
            out.append((sent, first, time.perf_counter_ns()))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def match(
    client: list[tuple[int, int, int]], gateway: list[dict[str, int]]
) -> list[dict[str, float]]:
    """Each client request with the gateway's stamps of it (in order, one connection), as
    microseconds per phase plus `latency`."""
    records = [g for g in gateway if all(k in g for k in ("in", "up_out", "up_in", "out"))]
    rows = []
    i = 0
    for sent, first, last in client:
        while i < len(records) and records[i]["in"] < sent:
            i += 1
        if i == len(records) or records[i]["in"] > last:
            continue
        stamps = {**records[i], "sent": sent, "first": first}
        row = {name: (stamps[b] - stamps[a]) / 1e3 for name, a, b in PHASES}
        row["latency"] = (last - sent) / 1e3
        rows.append(row)
        i += 1
    return rows


def report(direct: list[tuple[int, int, int]], rows: list[dict[str, float]]) -> str:
    base = [(last - sent) / 1e3 for sent, _, last in direct]
    base_first = [(first - sent) / 1e3 for sent, first, _ in direct]
    lat = [r["latency"] for r in rows]
    first = [sum(r[name] for name, _, _ in PHASES) for r in rows]
    lines = [
        "| µs | p50 | p90 | p99 | p99.9 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, values in (
        ("first bytes, direct (simulator alone)", base_first),
        ("first bytes, through the gateway", first),
        ("last byte, direct", base),
        ("last byte, through the gateway", lat),
    ):
        qs = (pct(values, q) for q in (0.5, 0.9, 0.99, 0.999))
        lines.append(f"| {name} | " + " | ".join(f"{v:,.0f}" for v in qs) + " |")
    lines += ["", "| phase (µs) | p50 | p90 | p99 |", "| --- | ---: | ---: | ---: |"]
    medians = {}
    for name, _, _ in PHASES:
        values = [r[name] for r in rows]
        medians[name] = statistics.median(values)
        qs = (pct(values, q) for q in (0.5, 0.9, 0.99))
        lines.append(f"| {name} | " + " | ".join(f"{v:,.0f}" for v in qs) + " |")
    cut = pct(lat, 0.99)
    slow = [r for r in rows if r["latency"] >= cut]
    worst: Counter[str] = Counter()
    for r in slow:
        worst[max(medians, key=lambda n: r[n] - medians[n])] += 1
    lines += [
        "",
        f"The slowest 1% ({len(slow)} requests, from {cut:,.0f} µs): the phase that lost the "
        "most against its median, and what each phase lost on average.",
        "",
        "| phase | requests it lost most in | mean µs over its median |",
        "| --- | ---: | ---: |",
    ]
    for name, _, _ in PHASES:
        extra = statistics.mean(r[name] - medians[name] for r in slow) if slow else 0.0
        lines.append(f"| {name} | {worst[name]} | {extra:+,.0f} |")
    return "\n".join(lines)


def steps_report(gateway: list[dict[str, int]]) -> str:
    """Each gateway step's percentiles: the time from the previous stamp a request has (in
    `STEPS` order) to the step's own stamp, over the requests that have both."""
    spans: dict[str, list[float]] = {}
    for record in gateway:
        previous = None
        for stamp, _ in STEPS:
            if stamp not in record:
                continue
            if previous is not None:
                spans.setdefault(stamp, []).append((record[stamp] - record[previous]) / 1e3)
            previous = stamp
    lines = [
        "| step (µs, from the stamp before it) | stamp | requests | p50 | p90 | p99 |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for stamp, label in STEPS:
        values = spans.get(stamp)
        if values:
            qs = " | ".join(f"{pct(values, q):,.1f}" for q in (0.5, 0.9, 0.99))
            lines.append(f"| {label} | {stamp} | {len(values):,} | {qs} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--requests", type=int, default=8000)
    p.add_argument("--no-access-log", action="store_true", help="the access log off")
    p.add_argument(
        "--detail",
        action="store_true",
        help="also stamp the gateway's own steps (bench/phase_hook.py STEPS) and report each",
    )
    p.add_argument(
        "--realtime-client",
        action="store_true",
        help="the client at real-time priority (SCHED_FIFO; needs root)",
    )
    args = p.parse_args()
    if not 100 <= args.requests <= 50_000:
        p.error("keep --requests in [100, 50000]")
    gen_cpu, gw_cpu = pin_generator(120 + args.requests // 100)
    with tempfile.TemporaryDirectory(prefix="faregate-phases-") as tmp:
        hook = Path(tmp) / "hook"
        hook.mkdir()
        shutil.copyfile(Path(__file__).with_name("phase_hook.py"), hook / "sitecustomize.py")
        out = Path(tmp) / "phases.json"
        source = Path(__file__).resolve().parents[1]
        os.environ["PYTHONPATH"] = f"{hook}{os.pathsep}{source}"
        os.environ["FAREGATE_PHASES_OUT"] = str(out)
        if args.detail:
            os.environ["FAREGATE_PHASES_DETAIL"] = "1"
        sim, gw, sim_port, port, _, _, token = start_processes(
            Path(tmp), gen_cpu, gw_cpu, access_log=not args.no_access_log
        )
        try:
            if args.realtime_client and not realtime_priority():
                print("real-time priority refused (it needs root)", file=sys.stderr)
                return 1
            requests(port, token, args.stream, WARMUP)
            requests(sim_port, "sk-bench", args.stream, WARMUP // 3)
            direct = requests(sim_port, "sk-bench", args.stream, args.requests)
            os.kill(gw.pid, signal.SIGUSR1)
            time.sleep(0.2)
            client = requests(port, token, args.stream, args.requests)
            os.kill(gw.pid, signal.SIGUSR2)
            wait_for_file(out, "stamps")
            gateway: list[dict[str, Any]] = json.loads(out.read_text())
        finally:
            stop_process(gw)
            stop_process(sim)
    rows = match(client, gateway)
    if len(rows) < len(client) * 0.9:
        print(f"only {len(rows)} of {len(client)} requests matched", file=sys.stderr)
        return 1
    fresh = sum(g.get("fresh", 0) for g in gateway)
    print(f"upstream connections opened while measuring: {fresh} for {len(gateway)} requests\n")
    mode = "stream" if args.stream else "json"
    client = "a real-time client" if args.realtime_client else "the client at normal priority"
    print(f"## {mode}, one request at a time, {len(rows)} requests, {client}\n")
    print(report(direct, rows))
    if args.detail:
        print("\n" + steps_report(gateway))
    return 0


if __name__ == "__main__":
    sys.exit(main())
