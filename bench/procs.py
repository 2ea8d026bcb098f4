"""Benchmark processes: ports, placement, start and stop, and what /proc says of them."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

MODEL = "sim-small"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PACKAGES = ("faregate", "uvicorn", "uvloop", "httptools", "aiohttp", "orjson", "msgspec")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int | None) -> Callable[[], None] | None:
    """A preexec_fn that pins the child (and every thread it later starts) to `cpu`."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def wait_health(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{log.read_text()}")


def wait_for_file(path: Path, what: str, timeout: float = 30) -> None:
    """Wait until a child process has written `path` (TimeoutError naming `what` if not)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gateway wrote no {what}")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def http_json(method: str, url: str, body: Any = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def gateway_config(sim_url: str, db_path: Path) -> str:
    """One provider (the simulator) and one model; everything else at production defaults
    (key_cache_seconds = 5, billing heartbeat/reaper, upstream timeouts)."""
    return f"""\
[database]
url = "sqlite:///{db_path}"

[auth]
key_cache_seconds = 5

[providers.sim]
base_url = "{sim_url}/v1"
api_key = "sk-sim"

[models."{MODEL}"]
provider = "sim"
upstream = "{MODEL}"
max_output_tokens = 1000
price = {{ input = 1000000, output = 2000000, cached_input = 500000 }}
"""


# -- /proc ---------------------------------------------------------------------------------


def cpu_seconds(pid: int | str) -> float:
    """utime + stime of a whole process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kb(pid: int | str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            out[name] = int(value.split()[0])
    return out


def allowed_cpus(pid: int) -> dict[str, str]:
    """Cpus_allowed_list of every thread of `pid`, to check the placement really holds."""
    out: dict[str, str] = {}
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                out[task.name] = line.split(":", 1)[1].strip()
    return out


def source_version() -> str:
    """The commit of the gateway code under test, and how many of its files differ from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "faregate"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.splitlines()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{commit} + {len(dirty)} uncommitted file(s) under faregate/" if dirty else commit


def environment() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "faregate_source": source_version(),
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "packages": versions,
    }


# -- the load generator --------------------------------------------------------------------
