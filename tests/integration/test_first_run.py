"""The zero-config first run: SQLite, the in-process simulator, a printed key that works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from harness import free_port, spawn, stop, wait_http


def test_first_run_prints_a_key_that_works(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAREGATE_")}
    env.pop("OPENAI_API_KEY", None)
    log = tmp_path / "serve.log"
    proc = spawn(
        [sys.executable, "-m", "faregate.cli", "serve", "--port", str(port)],
        log,
        env=env,
        cwd=tmp_path,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        deadline = time.monotonic() + 10
        while "demo account" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        banner = log.read_text()
        assert f"http://127.0.0.1:{port}" in banner
        admin = re.search(r"admin key \(shown once, keep it\): (fga-\S+)", banner)
        key = re.search(r"this API key was created: (fg-\S+)", banner)
        assert admin and key
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"authorization": f"Bearer {key[1]}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
        accounts = httpx.get(
            f"http://127.0.0.1:{port}/admin/v1/accounts",
            headers={"authorization": f"Bearer {admin[1]}"},
            timeout=10,
        ).json()["data"]
        assert [a["name"] for a in accounts] == ["demo"]
        assert (tmp_path / ".faregate" / "faregate.db").exists()
    finally:
        stop(proc)
    # A second start keeps the same database and creates no new keys.
    proc = spawn(
        [sys.executable, "-m", "faregate.cli", "serve", "--port", str(port)],
        tmp_path / "second.log",
        env=env,
        cwd=tmp_path,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        time.sleep(0.3)
        second = (tmp_path / "second.log").read_text()
        assert "admin key" not in second and "demo account" not in second
    finally:
        stop(proc, subprocess.signal.SIGINT)
