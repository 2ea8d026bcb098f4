"""Test harness: real simulator and gateway processes on loopback, and a few admin helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ADMIN_KEY = "fga-test-admin-key-0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent

# Micro-credits per million tokens: simple numbers make exact costs easy to check.
PRICES = {"input": 1_000_000, "output": 2_000_000, "cached_input": 500_000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A peer that takes the connection and what is sent on it, and says nothing."""
    await reader.read(1 << 16)


@contextlib.asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[int]:
    """A throwaway server on a free loopback port (yielded) running `handler` per connection;
    every connection it took is closed at the end."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await handler(reader, writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


def spawn(args: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    """A child process whose output goes to a file (a pipe nobody drains could block it)."""
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kw)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not come up in {timeout} s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class Sim:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/sim/stats", timeout=5).json())

    def reset(self) -> None:
        httpx.post(f"{self.url}/sim/reset", timeout=5)


def start_sim(log: Path) -> Sim:
    port = free_port()
    proc = spawn([sys.executable, "-m", "faregate.sim", "--port", str(port)], log)
    wait_http(f"http://127.0.0.1:{port}/health", proc)
    return Sim(port, proc)


def toml_value(value: Any) -> str:
    """A Python value as a TOML value (strings, numbers, booleans and lists of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def config_toml(
    sim_url: str,
    *,
    database_url: str,
    timeouts: dict[str, float] | None = None,
    billing: dict[str, Any] | None = None,
    max_body_bytes: int | None = None,
    trusted_proxies: list[str] | None = None,
    routing: dict[str, Any] | None = None,
    extra_models: str = "",
    server: dict[str, Any] | None = None,
    sections: str = "",
) -> str:
    t = {"connect": 2, "first_byte": 10, "idle": 10, "total": 60, **(timeouts or {})}
    b = {"heartbeat_seconds": 0.5, "reaper_interval_seconds": 0.5, **(billing or {})}
    lines = [
        "[server]",
        *([f"max_body_bytes = {max_body_bytes}"] if max_body_bytes else []),
        *([f"trusted_proxies = {trusted_proxies!r}"] if trusted_proxies else []),
        *(f"{k} = {toml_value(v)}" for k, v in (server or {}).items()),
        "[database]",
        f'url = "{database_url}"',
        "[billing]",
        *(f"{k} = {v}" for k, v in b.items()),
        "[auth]",
        "key_cache_seconds = 0",
        "[routing]",
        *(f"{k} = {v}" for k, v in (routing or {}).items()),
        "[providers.sim]",
        f'base_url = "{sim_url}/v1"',
        'api_key = "sk-sim"',
        "[providers.sim.timeouts]",
        *(f"{k} = {v}" for k, v in t.items()),
        "[providers.sim-anthropic]",
        'protocol = "anthropic"',
        f'base_url = "{sim_url}"',
        'api_key = "sk-ant-sim"',
        "[providers.sim-anthropic.timeouts]",
        *(f"{k} = {v}" for k, v in t.items()),
        "[providers.sim-gemini]",
        'protocol = "gemini"',
        f'base_url = "{sim_url}"',
        'api_key = "sim-gemini-key"',
        "[providers.sim-gemini.timeouts]",
        *(f"{k} = {v}" for k, v in t.items()),
        "[providers.dead]",
        'base_url = "http://127.0.0.1:9/v1"',
        'api_key = "sk-dead"',
        "[providers.dead.timeouts]",
        "connect = 1",
    ]
    price = ", ".join(f"{k} = {v}" for k, v in PRICES.items())
    for name, provider, upstream, max_out in (
        ("sim-small", "sim", "sim-small", 1000),
        ("sim-large", "sim", "sim-large", 4000),
        ("sim-faulty", "sim", "sim-faulty", 1000),
        ("gemini-2.5-flash", "sim", "gemini-2.5-flash", 1000),
        ("dead-model", "dead", "dead-model", 100),
        ("claude-sim", "sim-anthropic", "claude-sonnet-4-5", 1000),
        ("gemini-sim", "sim-gemini", "gemini-2.5-pro", 1000),
    ):
        lines += [
            f'[models."{name}"]',
            f'provider = "{provider}"',
            f'upstream = "{upstream}"',
            f"max_output_tokens = {max_out}",
            f"price = {{ {price} }}",
        ]
    for name, provider in (("embed-sim", "sim"),):
        lines += [
            f'[models."{name}"]',
            'kind = "embedding"',
            f'provider = "{provider}"',
            f"price = {{ {price} }}",
        ]
    return "\n".join(lines) + "\n" + extra_models + sections


@dataclass
class Gateway:
    port: int
    proc: subprocess.Popen[bytes]
    home: Path
    config_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(
            method,
            f"{self.url}/admin/v1{path}",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
            **kw,
        )
        r.raise_for_status()
        return r.json()

    def account(self, credits: int, models: list[str] | None = None) -> tuple[str, str]:
        """A new account with `credits` and one key: (account id, key)."""
        acct = self.admin("POST", "/accounts", json={"name": "t", "credits": credits})
        key = self.admin(
            "POST", f"/accounts/{acct['id']}/keys", json={"name": "k", "models": models}
        )
        return acct["id"], key["key"]

    def reset_routing(self) -> None:
        """Forget breakers and cooldowns left by an earlier test."""
        self.admin("POST", "/routing/reset")

    def account_state(self, account_id: str) -> dict[str, Any]:
        return dict(self.admin("GET", f"/accounts/{account_id}"))

    def ledger(self, account_id: str) -> list[dict[str, Any]]:
        return list(self.admin("GET", f"/accounts/{account_id}/ledger?limit=1000")["data"])


def start_gateway(
    sim_url: str,
    tmp: Path,
    *,
    database_url: str | None = None,
    home: Path | None = None,
    **config: Any,
) -> Gateway:
    home = home or tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{home / 'faregate.db'}"
    config_path = tmp / "faregate.toml"
    config_path.write_text(config_toml(sim_url, database_url=url, **config))
    port = free_port()
    env = {
        **os.environ,
        "FAREGATE_HOME": str(home),
        "FAREGATE_ADMIN_KEY": ADMIN_KEY,
        "FAREGATE_SECRET_KEY": "test-secret",
    }
    env.pop("FAREGATE_DATABASE_URL", None)
    proc = spawn(
        [
            sys.executable,
            "-m",
            "faregate.cli",
            "serve",
            "--config",
            str(config_path),
            "--port",
            str(port),
        ],
        tmp / "gateway.log",
        env=env,
        cwd=tmp,
    )
    wait_http(f"http://127.0.0.1:{port}/health", proc)
    return Gateway(port, proc, home, config_path, env)


def ledger_consistent(gw: Gateway, account_id: str) -> None:
    """Invariants 3 and 4: the balance is the sum of the ledger; each hold has one terminal."""
    state = gw.account_state(account_id)
    rows = gw.ledger(account_id)
    assert state["balance"] == sum(r["amount"] for r in rows)
    assert state["balance"] >= 0
    holds: dict[str, list[str]] = {}
    for r in rows:
        if r["hold_id"]:
            holds.setdefault(r["hold_id"], []).append(r["kind"])
    for kinds in holds.values():
        assert sorted(kinds) in (["hold", "release"], ["hold", "settle"]), kinds


def protocol_models() -> str:
    """Extra config: one model per upstream protocol (m-openai, m-anthropic, m-gemini), each
    with room for reasoning (8000 output tokens)."""
    price = ", ".join(f"{k} = {v}" for k, v in PRICES.items())
    return "".join(
        f'\n[models."{name}"]\nprovider = "{provider}"\nmax_output_tokens = 8000\n'
        f"price = {{ {price} }}\n"
        for name, provider in (
            ("m-openai", "sim"),
            ("m-anthropic", "sim-anthropic"),
            ("m-gemini", "sim-gemini"),
        )
    )


def responses_models(sim_url: str) -> str:
    """A Responses-native upstream (m-responses), one serving legacy completions itself
    (m-legacy) and a model whose one deployment is unreachable, falling back to m-openai
    (m-fallback), beside the three protocol models."""
    price = ", ".join(f"{k} = {v}" for k, v in PRICES.items())
    return protocol_models() + (
        f'\n[providers.sim-responses]\nprotocol = "openai-responses"\nbase_url = "{sim_url}/v1"\n'
        'api_key = "sk-sim"\n'
        f'\n[providers.sim-legacy]\nbase_url = "{sim_url}/v1"\napi_key = "sk-sim"\n'
        "completions = true\n"
        f'\n[models."m-responses"]\nprovider = "sim-responses"\nmax_output_tokens = 8000\n'
        f"price = {{ {price} }}\n"
        f'\n[models."m-legacy"]\nprovider = "sim-legacy"\nmax_output_tokens = 8000\n'
        f"price = {{ {price} }}\n"
        f'\n[models."m-fallback"]\nprovider = "dead"\nmax_output_tokens = 8000\n'
        f'fallbacks = ["m-openai"]\nprice = {{ {price} }}\n'
    )


_OPEN_CLIENTS: list[Any] = []


def openai_client(gw: Gateway, key: str, base: str = "/v1") -> Any:
    """The official `openai` client on the gateway (no retries), closed after the test."""
    import openai

    client = openai.OpenAI(base_url=gw.url + base, api_key=key, max_retries=0)
    _OPEN_CLIENTS.append(client)
    return client


def close_openai_clients() -> None:
    while _OPEN_CLIENTS:
        _OPEN_CLIENTS.pop().close()
