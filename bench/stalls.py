"""Loop stalls: which callbacks hold the gateway's event loop, and for how long, under load.

The gateway runs with a `sitecustomize` (in a temporary folder put first on its PYTHONPATH)
that swaps uvloop for asyncio's own loop, whose callbacks are Python objects, and times
every callback the loop runs. A callback that holds the loop longer than `--threshold-ms`
is written to a file with its duration and what it ran (a task's coroutine, or a bound
method), and so is a garbage collection as long (inside whichever callback it interrupted);
the report groups them. Every request in flight waits out a stall, so stalls are
what puts a tail under the median. (asyncio's loop is slower than uvloop: the durations
are an upper bound of the production figures; which callbacks stall is the finding.)

Placement as run.py: gateway alone on CPU 1; simulator and load generator on CPU 0.
Bounded in time; loopback only. Usage:

    .venv/bin/python bench/stalls.py [--concurrency 1] [--seconds 8] [--threshold-ms 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import signal
import sys
import tempfile
from pathlib import Path

import uvloop
from launch import pin_generator, start_processes
from procs import stop_process
from run import Target, measure, sanity_check

HOOK = """
import os


def _install():
    import asyncio, asyncio.events, time
    import uvloop

    uvloop.new_event_loop = asyncio.new_event_loop
    uvloop.EventLoopPolicy = asyncio.DefaultEventLoopPolicy
    run, clock = asyncio.events.Handle._run, time.perf_counter
    limit = float(os.environ["FAREGATE_STALL_MS"]) / 1000
    out = open(os.environ["FAREGATE_STALL_LOG"], "a", buffering=1)

    def timed(self):
        start = clock()
        run(self)
        spent = clock() - start
        if spent > limit:
            owner = getattr(self._callback, "__self__", None)
            what = owner.get_coro() if hasattr(owner, "get_coro") else self._callback
            out.write(f"{spent * 1000:.3f} {getattr(what, '__qualname__', repr(what))}\\n")

    asyncio.events.Handle._run = timed
    started = [0.0]

    def collected(phase, info):  # the collector's pauses, which happen inside callbacks
        if phase == "start":
            started[0] = clock()
        elif (spent := clock() - started[0]) > limit:
            out.write(f"{spent * 1000:.3f} gc-generation-{info['generation']}\\n")

    import gc

    gc.callbacks.append(collected)


if os.environ.get("FAREGATE_ADMIN_KEY"):  # the gateway only: run.py's simulator has none
    _install()
"""


def report(lines: str, seconds: float, threshold: float) -> str:
    stalls: dict[str, list[float]] = collections.defaultdict(list)
    for line in lines.splitlines():
        ms, _, what = line.partition(" ")
        stalls[re.sub(r" at 0x[0-9a-f]+", "", what)].append(float(ms))
    rows = sorted(stalls.items(), key=lambda kv: -sum(kv[1]))
    out = [
        f"| callback (over {threshold} ms) | count | per second | median ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for what, times in rows[:20]:
        times.sort()
        out.append(
            f"| `{what[:90]}` | {len(times)} | {len(times) / seconds:.1f}"
            f" | {times[len(times) // 2]:.2f} | {times[-1]:.2f} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threshold-ms", type=float, default=0.5)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 120:
        parser.error("--seconds must be within 1-120")
    gen_cpu, gw_cpu = pin_generator(int(args.seconds) + 120)
    with tempfile.TemporaryDirectory(prefix="faregate-stalls-") as d:
        tmp = Path(d)
        hook = tmp / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(HOOK)
        log = tmp / "stalls.log"
        saved = dict(os.environ)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(hook), saved.get("PYTHONPATH")])
        )
        os.environ["FAREGATE_STALL_LOG"] = str(log)
        os.environ["FAREGATE_STALL_MS"] = str(args.threshold_ms)
        try:
            sim, gw, _, gw_port, _, _, key = start_processes(tmp, gen_cpu, gw_cpu)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        try:
            target = Target("faregate", gw_port, key, "gateway")
            sanity_check(target, args.stream)
            log.write_text("")  # start and warm-up left out
            ns = argparse.Namespace(warmup=0.0, duration=args.seconds, cap=10**6)
            pids = {"generator": os.getpid(), "simulator": sim.pid, "gateway": gw.pid}
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                row = runner.run(measure(target, args.stream, args.concurrency, ns, pids))
            lines = log.read_text()  # before the shutdown's own callbacks are logged
        finally:
            stop_process(gw)
            stop_process(sim)
            signal.alarm(0)
        mode = "stream" if args.stream else "json"
        print(
            f"{mode} c={args.concurrency}, {row['requests']} requests in {row['seconds']} s:"
            f" p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms,"
            f" p99.9 {row['p999_ms']:.2f} ms (asyncio's loop, timed)\n"
        )
        print(report(lines, row["seconds"], args.threshold_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
