"""Running the simulator: in-process `start()` and `python -m faregate.sim`."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import aiohttp

from faregate.sim.app import create_app
from faregate.sim.server import start


async def test_start_binds_free_port_and_stops() -> None:
    runner, port = await start("127.0.0.1", 0, latency_ms=0.0)
    try:
        assert port > 0
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/health") as resp,
        ):
            assert resp.status == 200
    finally:
        await runner.cleanup()


def test_create_app_routes() -> None:
    app = create_app(latency_ms=5, chunk_delay_ms=1)
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    assert {
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("GET", "/health"),
        ("GET", "/sim/stats"),
        ("POST", "/sim/reset"),
    } <= routes


async def test_module_entry_point() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "faregate.sim",
        "--port",
        "0",
        "--latency-ms",
        "1",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        match = re.fullmatch(r"faregate sim listening on http://127\.0\.0\.1:(\d+)\n", line)
        assert match, line
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{match[1]}/health") as resp,
        ):
            assert resp.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
