"""What one hop between two processes costs on this host: the floor under every proxy's figures.

Two processes ping-pong small messages over a loopback TCP connection (TCP_NODELAY), once on
two different CPUs and once on the same one. Reported per placement: the round trip, and how
long the sender's `send()` itself takes. Across CPUs, every message wakes a process on an idle
CPU; on a virtual machine whose guest halts an idle CPU at once, that wake-up is paid by the
sender inside `send()` and by the receiver in its latency. On one CPU the receiver runs only
when the sender blocks, so neither pays it. Loopback only, bounded by `rounds`.

    .venv/bin/python bench/hops.py [--rounds 4000] [--cpus 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any

MESSAGE = b"x" * 100


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _exact_recv(sock: socket.socket, size: int) -> None:
    got = 0
    while got < size:
        chunk = sock.recv(size - got)
        if not chunk:
            raise ConnectionError("the echo process went away")
        got += len(chunk)


def _pct(values: list[int], q: float) -> float:
    """The q-th percentile (nearest rank) of nanosecond samples, in µs."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] / 1000


def ping_pong(sender_cpu: int | None, echo_cpu: int | None, rounds: int) -> dict[str, float]:
    """Round trip and `send()` time (µs, p50 and p90) over `rounds` messages, the sender on
    `sender_cpu` and a forked echo process on `echo_cpu` (None: wherever the kernel puts it)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        pid = os.fork()
        if pid == 0:  # the echo process: answers every message, then exits
            code = 1
            try:
                _pin(echo_cpu)
                with socket.create_connection(("127.0.0.1", port), timeout=30) as peer:
                    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    for _ in range(rounds):
                        _exact_recv(peer, len(MESSAGE))
                        peer.sendall(MESSAGE)
                code = 0
            finally:
                os._exit(code)
        previous = os.sched_getaffinity(0)
        sends: list[int] = []
        trips: list[int] = []
        try:
            _pin(sender_cpu)
            listener.settimeout(30)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(30)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                clock = time.perf_counter_ns
                for _ in range(rounds):
                    start = clock()
                    conn.sendall(MESSAGE)
                    sent = clock()
                    _exact_recv(conn, len(MESSAGE))
                    trips.append(clock() - start)
                    sends.append(sent - start)
        finally:
            os.sched_setaffinity(0, previous)
            _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError("the echo process failed")
    return {
        "round_trip_p50_us": _pct(trips, 50),
        "round_trip_p90_us": _pct(trips, 90),
        "send_p50_us": _pct(sends, 50),
        "send_p90_us": _pct(sends, 90),
    }


def hop_costs(cpu_a: int | None, cpu_b: int | None, rounds: int = 4000) -> dict[str, Any]:
    """Both placements: `cross` (the two processes on `cpu_a` and `cpu_b`) and `same` (both on
    `cpu_b`). Without two CPUs to choose from, only `same` (on whatever CPU the kernel gives)."""
    out: dict[str, Any] = {"rounds": rounds}
    if cpu_a is not None and cpu_b is not None and cpu_a != cpu_b:
        out["cross"] = ping_pong(cpu_a, cpu_b, rounds)
    out["same"] = ping_pong(cpu_b, cpu_b, rounds)
    return out


def describe(hops: dict[str, Any]) -> str:
    """One line for a report: what a round trip and a send cost, across CPUs and on one."""
    parts = []
    for name, label in (("cross", "across two CPUs"), ("same", "on one CPU")):
        if name in hops:
            h = hops[name]
            parts.append(
                f"{label} {h['round_trip_p50_us']:.1f} µs round trip, "
                f"{h['send_p50_us']:.1f} µs in send()"
            )
    return "; ".join(parts) + f" (p50 of {hops['rounds']:,} 100-byte loopback ping-pongs)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=4000, help="messages per placement")
    p.add_argument("--cpus", type=int, nargs=2, default=None, help="the two CPUs (default 0 1)")
    args = p.parse_args()
    if not 1 <= args.rounds <= 100_000:
        p.error("keep --rounds in [1, 100000]")
    allowed = sorted(os.sched_getaffinity(0))
    cpus = args.cpus or (allowed[:2] if len(allowed) >= 2 else [None, None])
    hops = hop_costs(cpus[0], cpus[1], args.rounds)
    print(json.dumps(hops, indent=2))
    print(describe(hops), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
