"""Python calls per request: which functions each source tree runs, counted by cProfile.

Each tree's gateway runs with a `sitecustomize` (first on its PYTHONPATH) that starts a
cProfile profiler of the event-loop thread on SIGUSR1 and stops it and writes its stats on
SIGUSR2. After a warm-up, a fixed number of requests is served between the two signals. The
call counts are exact (the same work makes the same calls, whatever the machine does); the
times are cProfile's, inflated by its own cost, and only rank the functions. The report lists
the calls per request of each tree and the functions whose counts differ most from the
first tree's. Loopback only, bounded.

    .venv/bin/python bench/calls.py pre=/path/to/tree new=. [--stream] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from instructions import WARMUP, serve
from launch import access_log_for, add_tree_access_log, pin_generator, start_processes
from procs import stop_process, wait_for_file

HOOK = """
import os


def _install():
    import cProfile, signal

    state = {}

    def start(signum, frame):
        state["profile"] = profile = cProfile.Profile()
        profile.enable()

    def stop(signum, frame):
        profile = state.pop("profile")
        profile.disable()
        path = os.environ["FAREGATE_CALLS_OUT"]
        profile.dump_stats(path + ".part")
        os.replace(path + ".part", path)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


if os.environ.get("FAREGATE_ADMIN_KEY"):  # the gateway only: the simulator has none
    _install()
"""

Key = tuple[str, int, str]


def counted(path: Path, n: int) -> dict[str, tuple[float, float]]:
    """Per function (by file and name, so code that moved lines is still matched): (calls,
    own seconds) per request."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    out: dict[str, tuple[float, float]] = {}
    for key, row in stats.items():
        calls, own = out.get(name(key), (0.0, 0.0))
        out[name(key)] = (calls + row[1] / n, own + row[2] / n)
    return out


def name(key: Key) -> str:
    path, _, function = key
    if path == "~":
        return function
    parts = Path(path).parts
    short = "/".join(parts[parts.index("faregate") :]) if "faregate" in parts else parts[-1]
    return f"{function} ({short})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("trees", nargs="+", help="NAME=PATH: a source tree (its faregate package)")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--keep", type=Path, default=None, help="copy each tree's profile here")
    add_tree_access_log(p)
    args = p.parse_args()
    if not (1 <= args.requests <= 20_000 and 1 <= args.concurrency <= 64):
        p.error("keep --requests in [1, 20000] and --concurrency in [1, 64]")
    gen_cpu, gw_cpu = pin_generator(120 + 120 * len(args.trees))
    results: dict[str, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="faregate-calls-") as tmp:
        hook = Path(tmp) / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(HOOK)
        for spec in args.trees:
            tree, _, path = spec.partition("=")
            folder = Path(tmp) / tree
            folder.mkdir()
            out = folder / "calls.prof"
            os.environ["PYTHONPATH"] = f"{hook}{os.pathsep}{Path(path).resolve()}"
            os.environ["FAREGATE_CALLS_OUT"] = str(out)
            logged = access_log_for(args, tree)
            sim, gw, _, port, _, _, token = start_processes(
                folder, gen_cpu, gw_cpu, access_log=logged
            )
            try:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    runner.run(serve(port, token, args.stream, WARMUP, args.concurrency))
                    os.kill(gw.pid, signal.SIGUSR1)
                    time.sleep(0.2)
                    runner.run(serve(port, token, args.stream, args.requests, args.concurrency))
                    os.kill(gw.pid, signal.SIGUSR2)
                wait_for_file(out, "profile")
                results[tree] = counted(out, args.requests)
                if args.keep is not None:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(out, args.keep / f"{tree}.prof")
            finally:
                stop_process(gw)
                stop_process(sim)
    first = args.trees[0].partition("=")[0]
    print("| tree | Python calls per request | cProfile seconds per request |")
    print("| --- | ---: | ---: |")
    for tree, rows in results.items():
        total_calls = sum(c for c, _ in rows.values())
        total_own = sum(t for _, t in rows.values())
        print(f"| {tree} | {total_calls:,.1f} | {total_own * 1e6:,.0f} µs |")
    base = results[first]
    for tree, rows in results.items():
        if tree == first:
            continue
        keys = set(base) | set(rows)

        def calls(key: str, rows: dict[str, tuple[float, float]] = rows) -> float:
            return rows.get(key, (0.0, 0.0))[0] - base.get(key, (0.0, 0.0))[0]

        def own(key: str, rows: dict[str, tuple[float, float]] = rows) -> float:
            return rows.get(key, (0.0, 0.0))[1] - base.get(key, (0.0, 0.0))[1]

        print(f"\n{tree} against {first}: the functions whose calls per request differ most")
        print("| function | Δ calls | calls | Δ own µs |")
        print("| --- | ---: | ---: | ---: |")
        for key in sorted(keys, key=lambda k: (-abs(calls(k)), -abs(own(k))))[: args.top]:
            now = rows.get(key, (0.0, 0.0))[0]
            print(f"| {key[:100]} | {calls(key):+.2f} | {now:.2f} | {own(key) * 1e6:+.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
