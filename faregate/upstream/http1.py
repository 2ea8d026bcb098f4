"""One HTTP/1.1 keep-alive connection to a provider: requests out, responses parsed by llhttp."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING, NamedTuple, cast

import httptools

from faregate.errors import FailureClass, UpstreamError

if TYPE_CHECKING:
    from faregate.upstream.pool import Pool


class Origin(NamedTuple):
    """What a connection is to, and what the pool is keyed by: the server, the CA bundle its
    certificate is checked against (None: the system's) and the proxy tunnelled through."""

    scheme: str
    host: str
    port: int
    ca_bundle: str | None = None
    proxy: str | None = None


HIGH_WATER = 1024 * 1024
"""Bytes of a streamed body buffered unread before the socket stops being read."""

_JOIN_LIMIT = 64 * 1024
"""Bodies up to this size go out in one write with the head; larger ones after it."""

_SLACK = 0.001
"""Timers may fire up to a millisecond early (uvloop's clock has millisecond steps)."""

_NEVER = float("inf")

DRAIN_SECONDS = 1.0
"""How long a connection whose caller is done waits for the rest of its response (after a
stream's last event, usually only the chunked body's terminator) to be reused."""

DRAIN_LIMIT = 64 * 1024
"""Bytes of a response's rest read (and dropped) at most while waiting; more, and the
connection is closed instead."""

# Where the connection is in its current exchange.
_IDLE, _HEAD, _BODY, _DONE = range(4)


def encode_head(
    request_line: bytes, host: bytes, headers: dict[str, str], length: int | None
) -> bytes:
    """The request head: the request line, Host (unless the headers name their own),
    Content-Length, then the headers as given.

    Header names and values come from the config: CR or LF in them could split the request,
    and a length or transfer encoding of their own would contradict the body, so both are
    refused."""
    parts = [request_line, b"", b"Content-Length: %d\r\n" % length if length is not None else b""]
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"upstream header {name!r}: CR or LF in a header name or value")
        lowered = name.lower()
        if lowered == "host":
            host = b""
        elif lowered in ("content-length", "transfer-encoding"):
            raise ValueError(f"upstream header {name!r} is set by the client itself")
        try:
            parts.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError:
            raise ValueError(f"upstream header {name!r}: not Latin-1 text") from None
    parts[1] = host
    parts.append(b"\r\n")
    return b"".join(parts)


class Connection(asyncio.Protocol):
    """A connection carrying one exchange at a time. Its single timer re-arms itself: the
    response must start and end within a deadline, and no gap between bytes may exceed `gap`
    while someone waits for them (a slow reader is not the provider's fault)."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_deadline",
        "_deadline_msg",
        "_draining",
        "_exc",
        "_gap",
        "_gap_msg",
        "_got_bytes",
        "_headers",
        "_interim",
        "_keep_alive",
        "_last",
        "_loop",
        "_lost",
        "_parser",
        "_paused",
        "_state",
        "_stream",
        "_timer",
        "_transport",
        "_waiter",
        "closed",
        "idle",
        "idle_since",
        "origin",
        "pool",
        "reused",
        "stale",
        "status",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: Origin) -> None:
        self._loop = loop
        self.origin = origin
        self.pool: Pool | None = None
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._lost: asyncio.Future[None] | None = None
        self.closed = False
        self.reused = False
        self.idle = False
        self.idle_since = 0.0
        self.stale = False
        self.status = 0
        self._state = _IDLE
        self._stream = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._interim = False
        self._keep_alive = False
        self._got_bytes = False
        self._draining = False
        self._exc: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._gap = _NEVER
        self._deadline = _NEVER
        self._gap_msg = self._deadline_msg = ""

    # -- the exchange, as its caller drives it --

    @property
    def usable(self) -> bool:
        t = self._transport
        return not self.closed and t is not None and not t.is_closing()

    def request(
        self, head: bytes, body: bytes, *, stream: bool, gap: float, deadline: float, message: str
    ) -> None:
        """Send a request. Until the response head (streams) or its end (whole replies), no
        gap of `gap` seconds and nothing past `deadline`; both fail with `message`."""
        transport = self._transport
        assert transport is not None and self._state == _IDLE
        self._state = _HEAD
        self._stream = stream
        if self.closed or transport.is_closing():
            # Lost while it was being handed over: fail as a closed idle connection does.
            self.stale = self.reused
            self._exc = UpstreamError(FailureClass.TRANSIENT, "the provider closed the connection")
            return
        self.status = 0
        self._headers = []
        self._chunks = []
        self._buffered = 0
        self._got_bytes = self._keep_alive = self._interim = False
        self._exc = None
        self._last = now = self._loop.time()
        self._gap, self._deadline = gap, deadline
        self._gap_msg = self._deadline_msg = message
        self._timer = self._loop.call_at(min(now + gap, deadline), self._on_timer)
        if len(body) <= _JOIN_LIMIT:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)

    def watch_body(self, idle: float, total: float) -> None:
        """From now on: the body within `total` seconds, each wait for bytes within `idle`."""
        now = self._loop.time()
        self._gap, self._deadline = idle, now + total
        self._gap_msg = "the provider stopped sending mid-stream"
        self._deadline_msg = "the stream ran past its deadline"
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._loop.call_at(min(now + idle, self._deadline), self._on_timer)

    async def response(self) -> None:
        """Wait for the response head."""
        while self._state == _HEAD:
            self._raise_failure()
            await self._wait()

    async def complete(self) -> None:
        """Wait for the whole response."""
        while self._state != _DONE:
            self._raise_failure()
            await self._wait()

    def body(self) -> bytes:
        """The whole body of a complete response."""
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def read(self) -> bytes:
        """The body bytes buffered so far, waiting for some if there are none; b"" at its end."""
        while True:
            chunks = self._chunks
            if chunks:
                self._chunks = []
                self._buffered = 0
                if self._paused:
                    self._paused = False
                    if self._transport is not None and not self._transport.is_closing():
                        self._transport.resume_reading()
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if self._state == _DONE:
                return b""
            self._raise_failure()
            self._last = self._loop.time()
            await self._wait()

    def response_headers(self) -> dict[str, str]:
        return {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self._headers
        }

    def finish(self, *, drain: bool = False) -> None:
        """The exchange is over for its caller: a complete response on a keep-alive connection
        goes back to the pool, anything else is closed. With `drain` (the caller has all it
        wanted, e.g. a stream's last event), a response whose last bytes are still on their
        way is read to its end first, within `DRAIN_SECONDS` and `DRAIN_LIMIT`, and then
        goes back (closed if they do not come)."""
        pool = self.pool
        if self._state == _DONE and self._keep_alive and pool is not None and self.usable:
            self._state = _IDLE
            self._chunks = []
            self._headers = []
            self._resume()  # the body may have ended in the read that filled the buffer
            pool.put(self)
        elif drain and self._state == _BODY and self._drainable():
            self._drain()
        else:
            self.close()

    def _drainable(self) -> bool:
        return (
            self.pool is not None
            and self.usable
            and self._exc is None
            and not self._delimited_by_close()  # its end would be the connection's
        )

    def _drain(self) -> None:
        """Read the rest of the response without a reader; `_end` hands the connection back."""
        self._draining = True
        self._chunks = []
        self._buffered = 0
        self._resume()
        self._deadline = self._loop.time() + DRAIN_SECONDS
        self._deadline_msg = "the rest of the response did not come"
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(self._deadline, self._on_timer)

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            cast(asyncio.Transport, self._transport).resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._state in (_HEAD, _BODY):
            self._fail(UpstreamError(FailureClass.TRANSIENT, "the connection was closed"))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.drop(self)

    def lost(self) -> asyncio.Future[None]:
        """Resolved once the transport is gone (for an orderly shutdown)."""
        if self._lost is None:
            self._lost = self._loop.create_future()
        return self._lost

    # -- transport callbacks --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        state = self._state
        if state in (_IDLE, _DONE):
            # Bytes nobody asked for: this connection cannot carry another request.
            self._keep_alive = False
            if state == _IDLE:
                self.close()
            return
        self._got_bytes = True
        self._last = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._end(keep_alive=False)
        except httptools.HttpParserError as exc:
            detail = str(exc) or type(exc).__name__
            self._fail(
                UpstreamError(
                    FailureClass.TRANSIENT, f"the provider sent a malformed response ({detail})"
                )
            )
            self.close()

    def eof_received(self) -> None:
        return None  # let the transport close; connection_lost decides what it meant

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lost = self._lost
        if lost is not None and not lost.done():
            lost.set_result(None)
        if self.closed:
            return
        self.closed = True
        if self._state == _BODY and exc is None and self._delimited_by_close():
            self._end(keep_alive=False)
        elif self._state in (_HEAD, _BODY):
            if self.reused and not self._got_bytes:
                # The provider closed a kept-alive connection as the request went out.
                self.stale = True
                self._fail(
                    UpstreamError(FailureClass.TRANSIENT, "the provider closed an idle connection")
                )
            else:
                self._fail(UpstreamError(FailureClass.TRANSIENT, self._broken(exc)))
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.drop(self)

    # -- parser callbacks --

    def on_message_begin(self) -> None:
        if self._state == _DONE:
            self._keep_alive = False  # a second response to one request

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True  # 100 Continue and the like: the real response follows
            return
        self.status = status
        self._state = _BODY
        if self._stream:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if self._draining:
            self._buffered += len(body)
            if self._buffered > DRAIN_LIMIT:
                self.close()
            return
        self._chunks.append(body)
        if self._stream:
            self._buffered += len(body)
            if self._buffered > HIGH_WATER and not self._paused and self._transport is not None:
                self._paused = True
                self._transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            self._headers = []
            return
        self._end(keep_alive=self._parser.should_keep_alive())

    # -- internals --

    def _end(self, *, keep_alive: bool) -> None:
        if self._state not in (_HEAD, _BODY):
            return
        self._state = _DONE
        self._keep_alive = keep_alive
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._draining:
            # Back to the pool after this read (`finish`; closed meanwhile, it stays closed).
            # Bytes past the end in this read mark the connection as not reusable first;
            # later ones find it idle, and close it.
            self._draining = False
            self._loop.call_soon(self.finish)
        self._wake()

    def _fail(self, exc: UpstreamError) -> None:
        if self._exc is None:
            self._exc = exc
        self._wake()

    def _raise_failure(self) -> None:
        if self._exc is not None:
            raise self._exc.with_traceback(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = self._loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._state not in (_HEAD, _BODY):
            return
        now = self._loop.time() + _SLACK
        waiting = self._waiter is not None
        if now >= self._deadline:
            message = self._deadline_msg
        elif waiting and now - self._last >= self._gap:
            message = self._gap_msg
        else:
            since = self._last if waiting else now
            self._timer = self._loop.call_at(min(since + self._gap, self._deadline), self._on_timer)
            return
        self._fail(UpstreamError(FailureClass.TIMEOUT, message))
        self.close()

    def _delimited_by_close(self) -> bool:
        """Whether the body runs to the end of the connection (no length, not chunked)."""
        for name, _ in self._headers:
            if name.lower() in (b"content-length", b"transfer-encoding"):
                return False
        return True

    def _broken(self, exc: Exception | None) -> str:
        if self._stream and self._state == _BODY:
            return f"the stream broke: {type(exc).__name__ if exc else 'the provider hung up'}"
        if exc is not None:
            return f"the provider connection failed: {type(exc).__name__}"
        if self._state == _HEAD:
            return "the provider closed the connection without answering"
        return "the provider closed the connection mid-response"
