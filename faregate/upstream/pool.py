"""Keep-alive connections to providers, pooled per origin within overall and per-origin limits."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
from collections import deque

from faregate.errors import FailureClass, UpstreamError
from faregate.upstream.http1 import Connection, Origin
from faregate.upstream.proxy import open_tunnel

KEEPALIVE = 30.0
"""Seconds a connection may sit idle and still be reused."""


def _tls(ca_bundle: str | None = None) -> ssl.SSLContext:
    """The client TLS context: the system's trust store, or only the CAs of `ca_bundle`
    (read again when the file changes)."""
    if ca_bundle is None:
        return _context(None, 0)
    try:
        return _context(ca_bundle, os.stat(ca_bundle).st_mtime_ns)
    except (OSError, ssl.SSLError) as exc:  # removed or spoiled since the config was loaded
        raise UpstreamError(
            FailureClass.TLS, f"cannot load the provider's CA bundle ({exc})"
        ) from None


@functools.lru_cache(maxsize=64)
def _context(ca_bundle: str | None, changed: int) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_bundle)
    context.set_alpn_protocols(["http/1.1"])
    return context


class Pool:
    """Idle connections are reused last-in first-out; a caller finding no room waits its turn
    (first in, first out) for a connection handed back or a slot freed."""

    __slots__ = (
        "_closed",
        "_conns",
        "_count",
        "_idle",
        "_limit",
        "_loop",
        "_open",
        "_per_origin",
        "_queue",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, limit_per_origin: int) -> None:
        self._loop = loop
        self._limit = limit
        self._per_origin = limit_per_origin
        self._idle: dict[Origin, list[Connection]] = {}
        self._open: dict[Origin, int] = {}  # connections open or opening, per origin
        self._count = 0  # and overall
        self._conns: set[Connection] = set()
        self._queue: deque[tuple[Origin, asyncio.Future[Connection | None]]] = deque()
        self._closed = False

    def reuse(self, origin: Origin) -> Connection | None:
        """The most recently used idle connection to `origin`, if one is still fresh."""
        stack = self._idle.get(origin)
        if not stack:
            return None
        conn = stack.pop()
        conn.idle = False
        if self._loop.time() - conn.idle_since < KEEPALIVE and conn.usable:
            return conn
        # The newest idle connection is stale, so are those under it.
        stale = [conn, *stack]
        stack.clear()
        for old in stale:
            old.idle = False
            old.close()
        return None

    async def acquire(self, origin: Origin, within: float, *, fresh: bool = False) -> Connection:
        """A connection to `origin`: an idle one unless `fresh`, else a new one as soon as the
        limits allow; waiting for room and connecting both count against `within` seconds."""
        if not fresh:
            conn = self.reuse(origin)
            if conn is not None:
                return conn
        if self._closed:
            raise UpstreamError(FailureClass.TRANSIENT, "the upstream client is closed")
        waiting = False
        try:
            async with asyncio.timeout(within):
                if not self._room(origin):
                    self._evict_for(origin)
                if self._room(origin):
                    self._reserve(origin)
                else:
                    waiting = True
                    handed = await self._wait(origin)
                    waiting = False
                    if handed is not None:
                        return handed
                return await self._connect(origin)
        except TimeoutError:
            what = "no connection to the provider became free" if waiting else "cannot connect"
            raise UpstreamError(FailureClass.TIMEOUT, f"{what} in time ({within} s)") from None

    def put(self, conn: Connection) -> None:
        """A connection whose exchange ended cleanly: to the first caller waiting for its origin,
        else idle (or closed, when its slot would let a caller waiting for room proceed)."""
        conn.reused = True
        if self._closed:
            conn.close()
            return
        origin = conn.origin
        if self._queue:
            for i, (wanted, fut) in enumerate(self._queue):
                if wanted == origin and not fut.done():
                    del self._queue[i]
                    fut.set_result(conn)
                    return
            if any(self._open.get(o, 0) < self._per_origin for o, _ in self._queue):
                conn.close()
                return
        conn.idle = True
        conn.idle_since = self._loop.time()
        stack = self._idle.get(origin)
        if stack is None:
            self._idle[origin] = [conn]
        else:
            stack.append(conn)

    def drop(self, conn: Connection) -> None:
        """A connection closed (by either side): its slot is free."""
        if conn.idle:
            conn.idle = False
            self._idle[conn.origin].remove(conn)
        self._conns.discard(conn)
        self._free(conn.origin)

    async def close(self) -> None:
        """Close every connection, idle or in use; callers waiting for room get an error."""
        self._closed = True
        queue, self._queue = self._queue, deque()
        for _, fut in queue:
            if not fut.done():
                fut.set_exception(
                    UpstreamError(FailureClass.TRANSIENT, "the upstream client is closed")
                )
        conns = list(self._conns)
        lost = [conn.lost() for conn in conns]
        for conn in conns:
            conn.close()
        if lost:
            await asyncio.wait(lost, timeout=1.0)

    # -- slots --

    def _room(self, origin: Origin) -> bool:
        return self._count < self._limit and self._open.get(origin, 0) < self._per_origin

    def _reserve(self, origin: Origin) -> None:
        self._open[origin] = self._open.get(origin, 0) + 1
        self._count += 1

    def _free(self, origin: Origin) -> None:
        self._count -= 1
        left = self._open[origin] - 1
        if left:
            self._open[origin] = left
        else:
            del self._open[origin]
        if self._queue:
            self._grant()

    def _grant(self) -> None:
        """Give freed slots to waiting callers, in order, as far as the limits allow."""
        for entry in list(self._queue):
            if self._count >= self._limit:
                return
            origin, fut = entry
            if fut.done():
                self._queue.remove(entry)
            elif self._open.get(origin, 0) < self._per_origin:
                self._queue.remove(entry)
                self._reserve(origin)
                fut.set_result(None)

    def _evict_for(self, origin: Origin) -> None:
        """Close idle connections while only the overall limit is in the way."""
        while self._count >= self._limit and self._open.get(origin, 0) < self._per_origin:
            stack = next((s for s in self._idle.values() if s), None)
            if stack is None:
                return
            stack[0].close()

    async def _wait(self, origin: Origin) -> Connection | None:
        """A connection handed over, or None: a slot reserved for a new one."""
        fut: asyncio.Future[Connection | None] = self._loop.create_future()
        entry = (origin, fut)
        self._queue.append(entry)
        try:
            return await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                handed = fut.result()  # granted as we were leaving: give it back
                if handed is None:
                    self._free(origin)
                else:
                    self.put(handed)
            elif entry in self._queue:
                self._queue.remove(entry)
            raise

    async def _connect(self, origin: Origin) -> Connection:
        """A new connection in a slot already reserved."""
        try:
            conn = await self._dial(origin)
        except BaseException:
            self._free(origin)
            raise
        if conn.closed or self._closed:
            conn.close()
            self._free(origin)
            what = "the upstream client is closed" if self._closed else "the provider hung up"
            raise UpstreamError(FailureClass.TRANSIENT, what)
        conn.pool = self
        self._conns.add(conn)
        return conn

    async def _dial(self, origin: Origin) -> Connection:
        """A connection to the origin, directly or through a CONNECT tunnel, TLS checked
        against the origin's name; failures classified."""
        loop = self._loop
        conn = Connection(loop, origin)
        tls = _tls(origin.ca_bundle) if origin.scheme == "https" else None
        name = origin.host if tls is not None else None  # names the certificate must match
        try:
            if origin.proxy:
                sock = await open_tunnel(loop, origin.proxy, origin.host, origin.port)
                try:
                    await loop.create_connection(
                        lambda: conn, sock=sock, ssl=tls, server_hostname=name
                    )
                except BaseException:
                    sock.close()
                    raise
            else:
                await loop.create_connection(
                    lambda: conn, origin.host, origin.port, ssl=tls, server_hostname=name
                )
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamError(
                FailureClass.TLS,
                f"the provider's TLS certificate was refused ({exc.verify_message})",
            ) from None
        except ssl.SSLError as exc:
            raise UpstreamError(
                FailureClass.TLS, f"the TLS handshake with the provider failed ({exc})"
            ) from None
        except OSError as exc:
            raise UpstreamError(
                FailureClass.TRANSIENT, f"cannot connect to the provider ({exc})"
            ) from None
        return conn
