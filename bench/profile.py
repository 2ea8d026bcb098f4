"""Profile the gateway under load with py-spy: where its CPU time goes, per function and file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import uvloop
from launch import pg_database, pin_generator, start_pg_gateway, start_processes
from procs import CLK_TCK, stop_process
from run import Target, measure, sanity_check


def frame_name(frame: str) -> tuple[str, str]:
    """("function", "short/path.py") from a py-spy frame "function (path/file.py:line)"."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return name, path


def package(path: str) -> str:
    """faregate's sub-package (faregate/billing), else the top-level package or module."""
    parts = path.split("/")
    if parts[0] == "faregate" and len(parts) > 2:
        return "/".join(parts[:2])
    if len(parts) == 1 or parts[0].startswith("<"):
        return "stdlib: " + parts[0].removesuffix(".py")
    return parts[0]


def summarize(raw: Path, top: int) -> str:
    """Self and inclusive shares of the event-loop thread from py-spy's raw (collapsed) output.
    Other threads are left out: py-spy counts a thread blocked in `queue.get` (aiosqlite's
    worker) as busy; their real CPU time is in the per-thread table from /proc."""
    self_time: Counter[tuple[str, str]] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    by_file: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    total = others = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        if any(name == "Thread._bootstrap" for name, _ in frames):
            others += count
            continue
        total += count
        self_time[frames[-1]] += count
        by_file[frames[-1][1]] += count
        by_package[package(frames[-1][1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples of the event-loop thread ({others} of other threads left out)", ""]
    for title, counter in (("self", self_time), ("inclusive", inclusive)):
        lines.append(f"## top {top} by {title} time")
        for (name, path), n in counter.most_common(top):
            lines.append(f"{100 * n / total:6.1f}%  {name}  ({path})")
        lines.append("")
    lines.append(f"## top {top} files by self time")
    for path, n in by_file.most_common(top):
        lines.append(f"{100 * n / total:6.1f}%  {path}")
    lines += ["", "## self time by package"]
    for name, n in by_package.most_common():
        lines.append(f"{100 * n / total:6.1f}%  {name}")
    return "\n".join(lines)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread ("tid name") of a process."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            out[f"{task.name} {name}"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


async def load(target: Target, args: argparse.Namespace, pids: dict[str, int]) -> dict[str, float]:
    ns = argparse.Namespace(warmup=0.5, duration=args.seconds, cap=10**6)
    row = await measure(target, args.mode == "stream", args.concurrency, ns, pids)
    return {k: row[k] for k in ("rps", "p50_ms", "p99_ms", "errors", "other_load")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("json", "stream"), default="json")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--native", action="store_true", help="include C frames (py-spy)")
    parser.add_argument("--raw", type=Path, default=None, help="keep py-spy's collapsed stacks")
    parser.add_argument(
        "--postgres",
        default=None,
        help="profile a gateway whose ledger is on PostgreSQL, in a fresh database made"
        " through this URL (e.g. postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument("--redis", default=None, help="with --postgres: limits in this Redis")
    parser.add_argument("--no-access-log", action="store_true", help="the access log off")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 120:
        parser.error("--seconds must be within 1-120")
    gen_cpu, gw_cpu = pin_generator(int(args.seconds) + 120)  # py-spy stays off the gateway's CPU
    with (
        tempfile.TemporaryDirectory(prefix="faregate-profile-") as tmpdir,
        pg_database(args.postgres) as pg_url,
    ):
        tmp = Path(tmpdir)
        sim, gw, sim_port, gw_port, _, _, key = start_processes(
            tmp, gen_cpu, gw_cpu, access_log=not args.no_access_log
        )
        try:
            if pg_url is not None:  # profile the PostgreSQL gateway instead
                stop_process(gw)
                gw, gw_port, key = start_pg_gateway(tmp, sim_port, gw_cpu, pg_url, args.redis)
            target = Target("faregate", gw_port, key, "gateway")
            sanity_check(target, args.mode == "stream")
            raw = args.raw or tmp / "profile.txt"
            spy = [args.py_spy, "record", "--pid", str(gw.pid), "--rate", str(args.rate)]
            spy += ["--duration", str(int(args.seconds)), "--format", "raw", "-o", str(raw)]
            spy += ["--native"] if args.native else []
            spy_proc = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            pids = {"generator": os.getpid(), "simulator": sim.pid, "gateway": gw.pid}
            before = thread_cpu(gw.pid)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                stats = runner.run(load(target, args, pids))
            after = thread_cpu(gw.pid)
            _, err = spy_proc.communicate(timeout=60)
            if spy_proc.returncode != 0:
                print(err.decode(), file=sys.stderr)
                return 1
            print(f"load ({args.mode}, c={args.concurrency}, under py-spy): {stats}\n")
            print("gateway CPU seconds per thread during the load (from /proc):")
            for name, cpu in sorted(after.items()):
                print(f"  {name}: {cpu - before.get(name, 0.0):.2f}")
            print()
            print(summarize(raw, args.top))
        finally:
            stop_process(gw)
            stop_process(sim)
            signal.alarm(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
