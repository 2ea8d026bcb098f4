"""Benchmark load generator: keep-alive connections parsed with httptools, one window each."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import cast

import httptools


class Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; responses are parsed by httptools (llhttp, C)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.first_body_ns = 0
        self.tail = b""
        self.status = 0
        self.keep_alive = True
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(exc or ConnectionResetError("connection closed"))

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        if not self.first_body_ns:
            self.first_body_ns = time.perf_counter_ns()
        self.tail = (self.tail + body)[-32:]

    def on_message_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def request(self, payload: bytes) -> None:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.first_body_ns = 0
        self.tail = b""
        self.status = 0
        self.transport.write(payload)
        await self.waiter


@dataclass
class Window:
    """Everything recorded in one measured window."""

    latencies_ns: list[int] = field(default_factory=list)
    ttfb_ns: list[int] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    measuring: bool = False
    stopped: bool = False
    capped: asyncio.Event = field(default_factory=asyncio.Event)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


def pct(values: list[int], q: float) -> float:
    """Nearest-rank percentile in milliseconds of sorted nanosecond values."""
    if not values:
        return float("nan")
    rank = max(0, min(len(values) - 1, round(q / 100 * len(values) + 0.5) - 1))
    return values[rank] / 1e6


async def worker(port: int, payload: bytes, stream: bool, win: Window, cap: int) -> None:
    loop = asyncio.get_running_loop()
    conn: Conn | None = None
    done_tail = b"data: [DONE]\n\n" if stream else b"}"
    while not win.stopped:
        if conn is None or conn.lost:
            try:
                _, conn = await loop.create_connection(Conn, "127.0.0.1", port)
            except OSError as exc:
                win.error(f"connect: {exc}")
                await asyncio.sleep(0.01)
                continue
            sock = conn.transport.get_extra_info("socket") if conn.transport else None
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter_ns()
        try:
            await conn.request(payload)
        except (OSError, httptools.HttpParserError) as exc:
            if win.measuring:
                win.error(f"{type(exc).__name__}: {exc}")
            conn = None
            continue
        t1 = time.perf_counter_ns()
        if not win.measuring:
            continue
        if conn.status != 200:
            win.error(f"HTTP {conn.status}: ...{conn.tail!r}")
        elif not conn.tail.endswith(done_tail):
            win.error(f"incomplete body: ...{conn.tail!r}")
        else:
            win.ok += 1
            win.latencies_ns.append(t1 - t0)
            if stream:
                win.ttfb_ns.append(conn.first_body_ns - t0)
            if win.ok >= cap:
                win.stopped = True
                win.capped.set()
        if not conn.keep_alive:
            assert conn.transport is not None
            conn.transport.close()
            conn = None
    if conn is not None and conn.transport is not None:
        conn.transport.close()
