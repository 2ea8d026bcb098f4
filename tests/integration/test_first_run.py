"""The zero-config first run: SQLite, the in-process simulator, a printed key that works, and
the README's tour (the CLI from the server's folder, every client protocol, embeddings)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from harness import free_port, spawn, stop, wait_http


def _cli(cwd: Path, env: dict[str, str], *args: str) -> object:
    r = subprocess.run(
        [sys.executable, "-m", "faregate.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert f"database: sqlite:///{cwd.resolve() / '.faregate' / 'faregate.db'}" in r.stderr
    return json.loads(r.stdout)


def _readme_tour(base: str, cwd: Path, env: dict[str, str]) -> None:
    """The README's quick tour, against the zero-config server, from its folder."""
    account = _cli(cwd, env, "accounts", "create", "acme", "--credits", "5000000")
    assert isinstance(account, dict)
    created = _cli(cwd, env, "keys", "create", account["id"])
    assert isinstance(created, dict)
    auth = {"authorization": f"Bearer {created['key']}"}
    balance = httpx.get(f"{base}/v1/client/balance", headers=auth, timeout=10)
    assert balance.status_code == 200, balance.text
    embedded = httpx.post(
        f"{base}/v1/embeddings",
        headers=auth,
        json={"model": "text-embedding-3-small", "input": "Hello"},
        timeout=10,
    )
    assert embedded.status_code == 200, embedded.text
    assert embedded.json()["data"][0]["embedding"]
    image = httpx.post(
        f"{base}/v1/images/generations",
        headers=auth,
        json={"model": "dall-e-3", "prompt": "Hello"},
        timeout=10,
    )
    assert image.status_code == 200, image.text
    assert httpx.get(image.json()["data"][0]["url"], timeout=10).status_code == 200
    message = httpx.post(
        f"{base}/v1/messages",
        headers={"x-api-key": created["key"], "anthropic-version": "2023-06-01"},
        json={
            "model": "gpt-4o-mini",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": "Hello"}],
        },
        timeout=10,
    )
    assert message.status_code == 200, message.text
    assert message.json()["content"][0]["text"]
    reply = httpx.post(
        f"{base}/v1beta/models/gemini-2.5-flash:generateContent",
        headers={"x-goog-api-key": created["key"]},
        json={"contents": [{"parts": [{"text": "Hello"}]}]},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["candidates"][0]["content"]["parts"][0]["text"]
    video = httpx.post(  # OpenAI's default video model, on the simulator
        f"{base}/v1/videos", headers=auth, json={"prompt": "a fox", "seconds": "1"}, timeout=10
    )
    assert video.status_code == 200, video.text
    assert video.json()["model"] == "sora-2" and video.json()["status"] == "queued"
    polled = httpx.get(f"{base}/v1/videos/{video.json()['id']}", headers=auth, timeout=10)
    assert polled.json()["status"] in ("queued", "in_progress", "completed")


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
        _readme_tour(f"http://127.0.0.1:{port}", tmp_path, env)
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


def test_two_processes_starting_at_once_on_a_fresh_folder_both_come_up(tmp_path: Path) -> None:
    """They take turns on the migrations; one alone creates the admin key and the demo key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAREGATE_")}
    env.pop("OPENAI_API_KEY", None)
    ports = [free_port(), free_port()]
    procs = [
        spawn(
            [sys.executable, "-m", "faregate.cli", "serve", "--port", str(port)],
            tmp_path / f"serve-{port}.log",
            env=env,
            cwd=tmp_path,
        )
        for port in ports
    ]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_http(f"http://127.0.0.1:{port}/health", proc, timeout=60)
        deadline = time.monotonic() + 10
        logs = [""]
        while time.monotonic() < deadline:
            logs = [(tmp_path / f"serve-{port}.log").read_text() for port in ports]
            if all("new keys:" in log for log in logs):
                break
            time.sleep(0.05)
        assert all("new keys:" in log for log in logs), logs
        assert sum("admin key (shown once" in log for log in logs) == 1
        assert sum("this API key was created" in log for log in logs) == 1
    finally:
        for proc in procs:
            stop(proc)
