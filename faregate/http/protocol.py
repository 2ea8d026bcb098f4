"""uvicorn's httptools protocol on a transport that joins the small writes of a response."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD = b"HTTP/1.1 "
MAX_JOINED = 256 * 1024
"""Bytes joined at most before they are written without waiting for the iteration's end."""


class JoinedWrites(asyncio.Transport):
    """A transport that joins what uvicorn writes piecemeal, never holding bytes past the end
    of the event-loop iteration that wrote them.

    - A response head waits for the first body bytes and leaves with them. uvicorn writes the
      two separately; on a socket with TCP_NODELAY (every asyncio TCP socket) that is two
      system calls and two segments, and the client wakes up for a head it cannot use yet.
    - Later writes of a response (a stream's chunks) made in one iteration leave together at
      its end: every event decoded from one upstream read goes out in one write, not one
      write (and one client wake-up) per event.

    The first body bytes of a reply are never held: a whole reply, or a stream's first
    chunk, goes out at once."""

    __slots__ = ("_head", "_loop", "_pending", "_scheduled", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data[:9] == _HEAD:
            self.flush()
            self._head = bytes(data)
            self._schedule()
        else:
            self._pending.append(bytes(data))
            self._size += len(data)
            if self._size >= MAX_JOINED:
                self.flush()
            else:
                self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._head is not None:
            self._pending.insert(0, self._head)
            self._head = None
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending, self._size = [], 0
            if not self._transport.is_closing():  # a client gone meanwhile gets nothing
                self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._head = None
        self._pending, self._size = [], 0
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._head or b"") + self._size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()


class HttpProtocol(HttpToolsProtocol):
    """The server's HTTP/1.1 protocol: uvicorn's, on a transport that joins its writes."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(JoinedWrites(transport, self.loop))
