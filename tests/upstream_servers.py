"""Servers on loopback for the upstream client's tests: an HTTPS server, a plain HTTP one
and a recording CONNECT proxy."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import trustme

REPLY = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)
PLAIN_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain"


class Listener:
    """A server on loopback whose connections all end when it does: `handle` serves one."""

    port: int

    def __init__(self) -> None:
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self.context: ssl.SSLContext | None = None

    async def __aenter__(self) -> Any:
        self._server = await asyncio.start_server(self._track, "127.0.0.1", 0, ssl=self.context)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def own(self, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)

    async def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.own(writer)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                await self.handle(reader, writer)
        finally:
            writer.close()
            self._writers.discard(writer)
            self._handlers.discard(task)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: bytes) -> None:
    """Answer every request on the connection with `reply`."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        writer.write(reply)
        await writer.drain()


class TLSServer(Listener):
    """An HTTPS server answering every request with a small JSON body; counts TLS handshakes
    begun (refused ones included), connections that completed one, and the names asked for."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        super().__init__()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.context)
        self.context.sni_callback = self._hello
        self.handshakes = 0
        self.connections = 0
        self.server_names: list[str | None] = []

    def _hello(self, sock: Any, name: str | None, context: ssl.SSLContext) -> None:
        self.handshakes += 1
        self.server_names.append(name)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await _answer(reader, writer, REPLY)


class PlainServer(Listener):
    """A plain HTTP server answering every request with `plain`."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _answer(reader, writer, PLAIN_REPLY)


class Proxy(Listener):
    """A CONNECT proxy that sends every tunnel to 127.0.0.1 (the port asked for) and records
    each tunnel's target and Proxy-Authorization; with `auth`, others get a 407."""

    def __init__(self, auth: str | None = None) -> None:
        super().__init__()
        self.auth = auth
        self.tunnels: list[tuple[str, str | None]] = []

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ")
        headers = dict(line.split(": ", 1) for line in head[1:] if line)
        auth = headers.get("Proxy-Authorization")
        self.tunnels.append((target, auth))
        if method != "CONNECT" or (self.auth is not None and auth != self.auth):
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", int(target.rsplit(":", 1)[1])
            )
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        self.own(up_writer)
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            self._writers.discard(up_writer)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
    finally:
        dst.close()
