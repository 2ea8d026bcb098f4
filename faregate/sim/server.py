"""Run the simulator: blocking from the command line or inside a running loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web

from faregate.sim.app import create_app

SHUTDOWN_TIMEOUT = 1.0
"""Seconds `runner.cleanup()` lets in-flight requests (e.g. hangs) finish."""


def tls_context(cert: str, key: str | None = None) -> ssl.SSLContext:
    """A server TLS context from a PEM certificate chain and its key (or one file with both)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def start(
    host: str = "127.0.0.1",
    port: int = 9100,
    *,
    tls: ssl.SSLContext | None = None,
    **opts: Any,
) -> tuple[web.AppRunner, int]:
    """Start serving in the current loop (over HTTPS with `tls`); return the runner and the
    bound port.

    `opts` go to `create_app` (`latency_ms`, `chunk_delay_ms`). Port 0 binds a
    free port. Stop with `await runner.cleanup()`.
    """
    runner = web.AppRunner(
        create_app(**opts),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound = int(address[1])
            break
    return runner, bound


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def _serve(
    host: str,
    port: int,
    latency_ms: float,
    chunk_delay_ms: float,
    tls: ssl.SSLContext | None,
    video_ms: float = 200.0,
) -> None:
    runner, bound = await start(
        host,
        port,
        tls=tls,
        latency_ms=latency_ms,
        chunk_delay_ms=chunk_delay_ms,
        video_ms=video_ms,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if sys.platform != "win32":
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    scheme = "https" if tls is not None else "http"
    print(f"faregate sim listening on {scheme}://{host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(
    host: str = "127.0.0.1",
    port: int = 9100,
    latency_ms: float = 0.0,
    chunk_delay_ms: float = 0.0,
    tls: ssl.SSLContext | None = None,
    video_ms: float = 200.0,
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM), on uvloop when installed; over HTTPS
    with `tls`; simulated video jobs take `video_ms`."""
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=_loop_factory()) as runner,
    ):
        runner.run(_serve(host, port, latency_ms, chunk_delay_ms, tls, video_ms))
