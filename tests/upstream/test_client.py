"""The upstream client against real servers on loopback: framing, bodies, streams, timeouts,
transport failures, the keep-alive pool; on the default event loop and on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import uvloop
from aiohttp import web

from faregate.config import Timeouts
from faregate.errors import FailureClass, UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest
from faregate.upstream import http1
from faregate.upstream import pool as pool_module
from faregate.upstream.client import MAX_ERROR_BODY, Reply, Stream, Upstream
from faregate.upstream.http1 import encode_head

pytestmark = pytest.mark.timeout(30)

Scenario = Callable[[], Coroutine[Any, Any, None]]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]

FAST = Timeouts(connect=2, first_byte=2, idle=2, total=5)
JSON = {"content-type": "application/json"}


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Scenario], None]:
    """Run a scenario on a fresh loop of each kind, bounded in time."""

    def go(scenario: Scenario) -> None:
        async def bounded() -> None:
            async with asyncio.timeout(15):
                await scenario()

        if request.param == "uvloop":
            uvloop.run(bounded())
        else:
            asyncio.run(bounded())

    return go


class RawServer:
    """An HTTP server on loopback written byte by byte: `handler(reader, writer, index)` runs
    for each connection (numbered from 0)."""

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        reply: bytes = b"",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler or self._keep_answering
        self.reply = reply or response(b'{"ok":true}')
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.closed_by_client = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks)
        await self._server.wait_closed()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return head, body

    async def trickle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
    ) -> None:
        """Answer with a chunked body of one byte every 50 ms, for ever."""
        await self.read_request(reader)
        writer.write(CHUNKED_HEAD)
        while True:
            writer.write(b"1\r\nx\r\n")
            await asyncio.sleep(0.05)

    async def _keep_answering(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
    ) -> None:
        while True:
            await self.read_request(reader)
            writer.write(self.reply)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        self._writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        try:
            await self.handler(reader, writer, index)
            # Wait for the client to hang up (or the server to be closed).
            if not writer.is_closing():
                await reader.read()
                self.closed_by_client += 1
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            self.closed_by_client += 1
        except asyncio.CancelledError:
            pass  # the server is closing (a cancelled handler would be reported as an error)
        finally:
            writer.close()


def response(body: bytes = b"{}", status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), extra, body)


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def creds(server: RawServer, scheme: str = "http") -> Credentials:
    return Credentials(server.url(scheme), "key")


def post(path: str = "/chat/completions", body: bytes = b"{}") -> UpstreamRequest:
    return UpstreamRequest(path, dict(JSON), body)


@contextlib.asynccontextmanager
async def upstream(**limits: int) -> AsyncIterator[Upstream]:
    client = Upstream(**limits)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Wait for something the other side does in its own time."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition()


async def failure(awaitable: Awaitable[object]) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await awaitable
    return caught.value


async def read_all(stream: Stream) -> bytes:
    return b"".join([chunk async for chunk in stream.chunks()])


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset rather than an orderly shutdown."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- the request on the wire --


def test_the_request_head_is_exactly_what_was_asked(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        server = RawServer()
        async with server, upstream() as client:
            headers = {"content-type": "application/json", "authorization": "Bearer k"}
            req = UpstreamRequest("/chat/completions?x=1", headers, b'{"a":1}')
            reply = await client.send(creds(server), req, FAST)
        assert reply == Reply(200, {}, b'{"ok":true}')
        head, body = server.requests[0]
        assert head == (
            b"POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
            b"Host: 127.0.0.1:%d\r\n"
            b"Content-Length: 7\r\n"
            b"content-type: application/json\r\n"
            b"authorization: Bearer k\r\n\r\n" % server.port
        )
        assert body == b'{"a":1}'

    run(scenario)


def test_a_get_carries_no_body(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        server = RawServer()
        async with server, upstream() as client:
            req = UpstreamRequest("/videos/v1", {}, b"")
            reply = await client.send(creds(server), req, FAST, method="GET")
        assert reply.status == 200
        assert server.requests[0][
            0
        ] == b"GET /v1/videos/v1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (server.port)

    run(scenario)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-evil": "a\r\nInjected: 1"},
        {"x-evil\n": "a"},
        {"Content-Length": "1"},
        {"transfer-encoding": "chunked"},
        {"x-name": "caf\u00e9 \u2615"},
    ],
)
def test_unsafe_or_reserved_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="upstream header"):
        encode_head(b"POST / HTTP/1.1\r\n", b"Host: h\r\n", headers, 0)


def test_a_host_header_of_its_own_replaces_the_url_host() -> None:
    head = encode_head(b"POST / HTTP/1.1\r\n", b"Host: h\r\n", {"HOST": "api.internal"}, 2)
    assert head == b"POST / HTTP/1.1\r\nContent-Length: 2\r\nHOST: api.internal\r\n\r\n"


def test_default_ports_stay_out_of_the_host_header() -> None:
    from faregate.upstream.client import _target

    assert _target("https://api.example.com/v1", "/chat", "POST") == (
        http1.Origin("https", "api.example.com", 443),
        b"POST /v1/chat HTTP/1.1\r\n",
        b"Host: api.example.com\r\n",
    )
    assert _target("http://[::1]:8080", "/a b?q=x y", "GET") == (
        http1.Origin("http", "::1", 8080),
        b"GET /a%20b?q=x%20y HTTP/1.1\r\n",
        b"Host: [::1]:8080\r\n",
    )


# -- response bodies --


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_every_body_framing_is_read_whole(run: Callable[[Scenario], None], framing: str) -> None:
    parts = [b'{"a":', b'"' + b"x" * 70_000 + b'"', b"}"]
    whole = b"".join(parts)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server.read_request(reader)
            if framing == "length":
                writer.write(response(whole))
            elif framing == "chunked":
                writer.write(CHUNKED_HEAD + chunked(*parts))
            else:
                writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
                for part in parts:
                    writer.write(part)
                    await writer.drain()
                    await asyncio.sleep(0.01)
                writer.close()
                return

    async def scenario() -> None:
        async with server, upstream() as client:
            for _ in range(3):
                reply = await client.send(creds(server), post(), FAST)
                assert (reply.status, reply.body) == (200, whole)
            for _ in range(2):
                opened = await client.stream(creds(server), post(), FAST)
                assert isinstance(opened, Stream)
                assert await read_all(opened) == whole
        # A body that ends with its connection cannot leave the connection for another request.
        assert server.connections == (5 if framing == "close" else 1)

    server = RawServer(handler)
    run(scenario)


def test_an_interim_100_continue_is_skipped(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        continue_first = b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
        reply = response(b"done", extra=b"X-Final: 1\r\n")
        server = RawServer(reply=continue_first + reply)
        async with server, upstream() as client:
            assert (await client.send(creds(server), post(), FAST)).body == b"done"
            opened = await client.stream(creds(server), post(), FAST)
            assert isinstance(opened, Stream)
            assert "x-interim" not in opened.headers
            assert opened.headers["x-final"] == "1"
            assert await read_all(opened) == b"done"
        assert server.connections == 1

    run(scenario)


def test_an_error_status_comes_with_its_headers_and_body(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        body = b'{"error":{"message":"slow down"}}'
        answer = response(body, b"429 Too Many Requests", b"Retry-After: 7\r\n")
        server = RawServer(reply=answer)
        async with server, upstream() as client:
            for opened in (
                await client.send(creds(server), post(), FAST),
                await client.stream(creds(server), post(), FAST),
            ):
                assert isinstance(opened, Reply)
                assert opened.status == 429
                assert opened.headers["retry-after"] == "7"
                assert opened.body == body
        assert server.connections == 1  # an error reply read whole leaves a reusable connection

    run(scenario)


def test_a_streamed_error_body_is_capped(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        answer = response(b"e" * (3 * MAX_ERROR_BODY), b"500 Internal Server Error")
        server = RawServer(reply=answer)
        async with server, upstream() as client:
            opened = await client.stream(creds(server), post(), FAST)
            assert isinstance(opened, Reply)
            assert (opened.status, len(opened.body)) == (500, MAX_ERROR_BODY)

    run(scenario)


def test_the_simulator_end_to_end(run: Callable[[Scenario], None]) -> None:
    from faregate.sim.server import start

    headers = {**JSON, "authorization": "Bearer sk-test"}
    body = b'{"model":"sim-a","messages":[{"role":"user","content":"hi"}]}'

    async def scenario() -> None:
        runner, port = await start("127.0.0.1", 0)
        try:
            async with upstream() as client:
                sim = Credentials(f"http://127.0.0.1:{port}/v1", "sk-test")
                req = UpstreamRequest("/chat/completions", headers, body)
                reply = await client.send(sim, req, FAST)
                assert reply.status == 200 and b'"choices"' in reply.body
                req = UpstreamRequest("/chat/completions", headers, body[:-1] + b',"stream":true}')
                opened = await client.stream(sim, req, FAST)
                assert isinstance(opened, Stream)
                assert opened.headers["content-type"].startswith("text/event-stream")
                assert (await read_all(opened)).rstrip().endswith(b"data: [DONE]")
                faulty = {**headers, "x-sim-fault": "status=429;retry_after=7"}
                req = UpstreamRequest("/chat/completions", faulty, body)
                limited = await client.send(sim, req, FAST)
                assert limited.status == 429 and limited.headers["retry-after"] == "7"
        finally:
            await runner.cleanup()

    run(scenario)


# -- streams --


def test_each_chunk_reaches_the_caller_before_the_next_is_sent(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario() -> None:
        received = asyncio.Event()

        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
        ) -> None:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD + b"5\r\nfirst\r\n")
            await received.wait()  # never set if the client waits for more before handing it over
            writer.write(chunked(b"second"))

        server = RawServer(handler)
        async with server, upstream() as client:
            opened = await client.stream(creds(server), post(), FAST)
            assert isinstance(opened, Stream)
            chunks = opened.chunks()
            assert await anext(chunks) == b"first"
            received.set()
            assert [c async for c in chunks] == [b"second"]

    run(scenario)


def test_a_slow_reader_is_not_an_idle_provider(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
        ) -> None:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD + b"1\r\na\r\n")
            await asyncio.sleep(0.05)
            writer.write(b"1\r\nb\r\n")
            await asyncio.sleep(10)

        server = RawServer(handler)
        t = Timeouts(connect=1, first_byte=1, idle=0.3, total=5)
        async with server, upstream() as client:
            opened = await client.stream(creds(server), post(), t)
            assert isinstance(opened, Stream)
            chunks = opened.chunks()
            assert await anext(chunks) == b"a"
            await asyncio.sleep(0.6)  # longer than idle, with "b" waiting in the buffer
            assert await anext(chunks) == b"b"
            started = time.monotonic()
            exc = await failure(anext(chunks))
            assert exc.failure is FailureClass.TIMEOUT
            assert exc.message == "the provider stopped sending mid-stream"
            assert 0.25 < time.monotonic() - started < 1.5

    run(scenario)


def test_a_large_stream_is_not_buffered_whole(run: Callable[[Scenario], None]) -> None:
    size = 32 * 1024 * 1024

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"x" * size)
        await writer.drain()
        written.set()

    async def scenario() -> None:
        nonlocal written
        written = asyncio.Event()
        async with server, upstream() as client:
            opened = await client.stream(creds(server), post(), FAST)
            assert isinstance(opened, Stream)
            await asyncio.sleep(0.3)
            # The client stopped reading the socket: the sender is held back.
            assert not written.is_set()
            total = 0
            async for chunk in opened.chunks():
                total += len(chunk)
            assert total == size
            await asyncio.wait_for(written.wait(), 2)

    written: asyncio.Event
    server = RawServer(handler)
    run(scenario)


def test_a_connection_paused_as_its_body_ended_is_reused_reading(
    run: Callable[[Scenario], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http1, "HIGH_WATER", 10)

    async def scenario() -> None:
        server = RawServer(reply=response(b"x" * 50))
        async with server, upstream() as client:
            opened = await client.stream(creds(server), post(), FAST)
            assert isinstance(opened, Stream)
            await asyncio.sleep(0.05)
            opened.close()  # unread, yet complete: the connection is reused
            assert (await client.send(creds(server), post(), FAST)).body == b"x" * 50
        assert server.connections == 1

    run(scenario)


# -- timeouts --


def test_connect_timeout(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        # A listener that accepts nothing with its one-place backlog taken: connects hang.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        await asyncio.sleep(0.05)
        t = Timeouts(connect=0.3, first_byte=5, idle=5, total=5)
        try:
            async with upstream() as client:
                started = time.monotonic()
                exc = await failure(
                    client.send(Credentials(f"http://127.0.0.1:{port}", None), post(), t)
                )
                assert exc.failure is FailureClass.TIMEOUT
                assert exc.message == "cannot connect in time (0.3 s)"
                assert time.monotonic() - started < 2
        finally:
            filler.close()
            listener.close()

    run(scenario)


def test_a_refused_connection_is_transient(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        async with upstream() as client:
            exc = await failure(
                client.send(Credentials(f"http://127.0.0.1:{port}", None), post(), FAST)
            )
        assert exc.failure is FailureClass.TRANSIENT
        assert exc.message.startswith("cannot connect to the provider ([Errno")

    run(scenario)


@pytest.mark.parametrize("stream", [False, True])
def test_no_answer_in_time(run: Callable[[Scenario], None], stream: bool) -> None:
    async def scenario() -> None:
        async def silent(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
        ) -> None:
            await server.read_request(reader)
            await asyncio.sleep(10)

        server = RawServer(silent)
        t = Timeouts(connect=1, first_byte=0.3, idle=5, total=5)
        async with server, upstream() as client:
            started = time.monotonic()
            call = client.stream if stream else client.send
            exc = await failure(call(creds(server), post(), t))
            elapsed = time.monotonic() - started
        assert exc.failure is FailureClass.TIMEOUT
        assert exc.message == (
            "the provider sent no response headers in time"
            if stream
            else "the provider did not answer in time"
        )
        assert 0.25 < elapsed < 1.5

    run(scenario)


def test_a_whole_reply_that_stalls_after_its_headers(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
            await server.read_request(reader)
            await asyncio.sleep(0.2)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await asyncio.sleep(10)

        server = RawServer(stall)
        t = Timeouts(connect=1, first_byte=0.4, idle=5, total=5)
        async with server, upstream() as client:
            started = time.monotonic()
            exc = await failure(client.send(creds(server), post(), t))
            elapsed = time.monotonic() - started
        assert (exc.failure, exc.message) == (
            FailureClass.TIMEOUT,
            "the provider did not answer in time",
        )
        assert 0.55 < elapsed < 1.5  # the silence counts from the last byte

    run(scenario)


def test_a_whole_reply_trickling_past_its_deadline(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        server = RawServer()
        server.handler = server.trickle
        t = Timeouts(connect=1, first_byte=0.3, idle=5, total=0.4)
        async with server, upstream() as client:
            started = time.monotonic()
            exc = await failure(client.send(creds(server), post(), t))
            elapsed = time.monotonic() - started
        assert exc.failure is FailureClass.TIMEOUT
        assert 0.6 < elapsed < 1.5  # first_byte + total

    run(scenario)


def test_a_stream_that_goes_quiet(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD + b"5\r\nfirst\r\n")
            await asyncio.sleep(10)

        server = RawServer(quiet)
        t = Timeouts(connect=1, first_byte=1, idle=0.3, total=5)
        async with server, upstream() as client:
            opened = await client.stream(creds(server), post(), t)
            assert isinstance(opened, Stream)
            chunks = opened.chunks()
            assert await anext(chunks) == b"first"
            exc = await failure(anext(chunks))
        assert (exc.failure, exc.message) == (
            FailureClass.TIMEOUT,
            "the provider stopped sending mid-stream",
        )

    run(scenario)


def test_a_stream_past_its_deadline(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        server = RawServer()
        server.handler = server.trickle
        t = Timeouts(connect=1, first_byte=1, idle=0.3, total=0.5)
        async with server, upstream() as client:
            opened = await client.stream(creds(server), post(), t)
            assert isinstance(opened, Stream)
            started = time.monotonic()
            exc = await failure(read_all(opened))
            elapsed = time.monotonic() - started
        assert (exc.failure, exc.message) == (
            FailureClass.TIMEOUT,
            "the stream ran past its deadline",
        )
        assert 0.4 < elapsed < 1.5

    run(scenario)


# -- broken and malformed responses --


@pytest.mark.parametrize("how", ["reset", "eof"])
def test_a_connection_lost_mid_body_is_transient(run: Callable[[Scenario], None], how: str) -> None:
    async def scenario() -> None:
        async def broken(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
        ) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            await writer.drain()
            await asyncio.sleep(0.1)
            if how == "reset":
                reset(writer)
            else:
                writer.close()

        server = RawServer(broken)
        async with server, upstream() as client:
            exc = await failure(client.send(creds(server), post(), FAST))
            assert exc.failure is FailureClass.TRANSIENT
            opened = await client.stream(creds(server), post(), FAST)
            assert isinstance(opened, Stream)
            chunks = opened.chunks()
            assert await anext(chunks) == b"0123456789"
            exc = await failure(anext(chunks))
        assert exc.failure is FailureClass.TRANSIENT
        assert exc.message.startswith("the stream broke")

    run(scenario)


@pytest.mark.parametrize(
    "answer",
    [b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_malformed_response_is_transient(
    run: Callable[[Scenario], None], answer: bytes, stream: bool
) -> None:
    async def scenario() -> None:
        server = RawServer(reply=answer)
        async with server, upstream() as client:
            call = client.stream if stream else client.send
            exc = await failure(call(creds(server), post(), FAST))
        assert exc.failure is FailureClass.TRANSIENT
        assert exc.message.startswith("the provider sent a malformed response")

    run(scenario)


# -- the pool --


def test_sequential_requests_share_one_connection(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        transports: list[object] = []

        async def chat(request: web.Request) -> web.Response:
            await request.read()
            if request.transport not in transports:
                transports.append(request.transport)
            return web.json_response({"ok": True})

        async def events(request: web.Request) -> web.StreamResponse:
            await request.read()
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(3):
                await resp.write(b"data: %d\n\n" % i)
            await resp.write_eof()
            return resp

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_post("/v1/events", events)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with upstream() as client:
                where = Credentials(f"http://127.0.0.1:{port}/v1", None)
                for _ in range(50):
                    reply = await client.send(where, post(), FAST)
                    assert (reply.status, reply.body) == (200, b'{"ok": true}')
                for _ in range(5):
                    opened = await client.stream(where, post("/events"), FAST)
                    assert isinstance(opened, Stream)
                    assert await read_all(opened) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
                    reply = await client.send(where, post(), FAST)
            assert len(transports) == 1
        finally:
            await runner.cleanup()

    run(scenario)


def test_callers_beyond_the_per_origin_limit_wait_their_turn(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario() -> None:
        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
            while True:
                _, body = await server.read_request(reader)
                await asyncio.sleep(0.05)
                writer.write(response(body))

        server = RawServer(slow)
        async with server, upstream(limit_per_host=2) as client:
            bodies = [b"%d" % i for i in range(8)]
            replies = await asyncio.gather(
                *(client.send(creds(server), post(body=b), FAST) for b in bodies)
            )
        assert [r.body for r in replies] == bodies
        assert server.connections == 2

    run(scenario)


def test_waiting_callers_are_served_in_order(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        server = RawServer()
        async with server, upstream(limit_per_host=1) as client:
            bodies = [b"%d" % i for i in range(6)]
            await asyncio.gather(*(client.send(creds(server), post(body=b), FAST) for b in bodies))
        assert [body for _, body in server.requests] == bodies
        assert server.connections == 1

    run(scenario)


def test_the_wait_for_a_free_connection_counts_against_connect(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario() -> None:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD + b"1\r\na\r\n")
            await asyncio.sleep(10)

        server = RawServer(hold)
        t = Timeouts(connect=0.2, first_byte=5, idle=5, total=5)
        async with server, upstream(limit=1) as client:
            opened = await client.stream(creds(server), post(), t)
            assert isinstance(opened, Stream)
            exc = await failure(client.send(creds(server), post(), t))
            assert (exc.failure, exc.message) == (
                FailureClass.TIMEOUT,
                "no connection to the provider became free in time (0.2 s)",
            )
            opened.close()  # its slot frees: the next caller connects
            second = await client.stream(creds(server), post(), t)
            assert isinstance(second, Stream)
            second.close()
        assert server.connections == 2

    run(scenario)


def test_an_idle_connection_to_another_origin_yields_its_slot(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario() -> None:
        first = RawServer()
        second = RawServer()
        async with first, second, upstream(limit=1) as client:
            assert (await client.send(creds(first), post(), FAST)).status == 200
            assert (await client.send(creds(second), post(), FAST)).status == 200
            await until(lambda: first.closed_by_client == 1)
            assert (await client.send(creds(first), post(), FAST)).status == 200
        assert (first.connections, second.connections) == (2, 1)

    run(scenario)


def test_connections_idle_too_long_are_not_reused(
    run: Callable[[Scenario], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "KEEPALIVE", 0.1)

    async def scenario() -> None:
        server = RawServer()
        async with server, upstream() as client:
            await client.send(creds(server), post(), FAST)
            await client.send(creds(server), post(), FAST)
            await asyncio.sleep(0.2)
            await client.send(creds(server), post(), FAST)
            await until(lambda: server.closed_by_client == 1)
        assert server.connections == 2

    run(scenario)


def test_a_connection_the_server_closed_is_dropped(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        async def one_each(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
        ) -> None:
            await server.read_request(reader)
            writer.write(response())  # keep-alive, yet closed a moment later
            await asyncio.sleep(0.05)
            writer.close()

        server = RawServer(one_each)
        async with server, upstream() as client:
            for _ in range(3):
                assert (await client.send(creds(server), post(), FAST)).status == 200
                await asyncio.sleep(0.15)
        assert (server.connections, len(server.requests)) == (3, 3)

    run(scenario)


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_lost_to_a_closing_idle_connection_is_sent_again(
    run: Callable[[Scenario], None], stream: bool
) -> None:
    async def scenario() -> None:
        async def race(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
        ) -> None:
            await server.read_request(reader)
            writer.write(response(b"one"))
            if index == 0:
                # The keep-alive race: the next request meets a connection being closed.
                await server.read_request(reader)
                reset(writer)
                return
            await server.read_request(reader)
            writer.write(response(b"two"))

        server = RawServer(race)
        async with server, upstream() as client:
            assert (await client.send(creds(server), post(), FAST)).body == b"one"
            if stream:
                opened = await client.stream(creds(server), post(), FAST)
                assert isinstance(opened, Stream)
                assert await read_all(opened) == b"one"
            else:
                assert (await client.send(creds(server), post(), FAST)).body == b"one"
        assert (server.connections, len(server.requests)) == (2, 3)

    run(scenario)


def test_no_second_try_once_the_response_began(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
            await server.read_request(reader)
            writer.write(response())
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200")
            await writer.drain()
            writer.close()

        server = RawServer(half)
        async with server, upstream() as client:
            await client.send(creds(server), post(), FAST)
            exc = await failure(client.send(creds(server), post(), FAST))
        assert exc.failure is FailureClass.TRANSIENT
        assert (server.connections, len(server.requests)) == (1, 2)

    run(scenario)


def test_no_second_try_on_a_new_connection(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        async def hang_up(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
        ) -> None:
            await server.read_request(reader)
            writer.close()

        server = RawServer(hang_up)
        async with server, upstream() as client:
            exc = await failure(client.send(creds(server), post(), FAST))
        assert (exc.failure, exc.message) == (
            FailureClass.TRANSIENT,
            "the provider closed the connection without answering",
        )
        assert server.connections == 1

    run(scenario)


def test_closing_a_stream_midway_closes_its_connection(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
        ) -> None:
            while True:
                await server.read_request(reader)
                writer.write(CHUNKED_HEAD + b"1\r\na\r\n")
                await asyncio.sleep(0.1)
                writer.write(chunked(b"b"))

        server = RawServer(handler)
        async with server, upstream() as client:
            opened = await client.stream(creds(server), post(), FAST)
            assert isinstance(opened, Stream)
            assert await anext(opened.chunks()) == b"a"
            opened.close()
            opened.close()  # idempotent
            await until(lambda: server.closed_by_client == 1)
            opened = await client.stream(creds(server), post(), FAST)
            assert isinstance(opened, Stream)
            assert await read_all(opened) == b"ab"
            assert (await client.send(creds(server), post(), FAST)).status == 200
        assert server.connections == 2

    run(scenario)


async def _content_then(
    server: RawServer, rest: bytes, after: float
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]:
    """A handler: every response's content at once, `rest` of its body `after` seconds later."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD + b"5\r\ndone.\r\n")
            await asyncio.sleep(after)
            writer.write(rest)

    return handler


def _idle(client: Upstream) -> int:
    return sum(len(stack) for stack in client.pool._idle.values())


async def _release_after_content(client: Upstream, server: RawServer) -> None:
    opened = await client.stream(creds(server), post(), FAST)
    assert isinstance(opened, Stream)
    assert await anext(opened.chunks()) == b"done."
    opened.release()  # before the body's terminator has arrived
    opened.release()  # idempotent, and so is close after it
    opened.close()


def test_a_stream_released_after_its_content_keeps_its_connection(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario() -> None:
        server = RawServer()
        server.handler = await _content_then(server, b"0\r\n\r\n", 0.05)
        async with server, upstream() as client:
            for _ in range(3):
                await _release_after_content(client, server)
                await until(lambda: _idle(client) == 1)  # back once the terminator came
        assert server.connections == 1 and len(server.requests) == 3

    run(scenario)


@pytest.mark.parametrize("rest", ["late", "too much", "more after its end", "a reset"])
def test_a_released_stream_whose_rest_goes_wrong_closes_its_connection(
    run: Callable[[Scenario], None], monkeypatch: pytest.MonkeyPatch, rest: str
) -> None:
    monkeypatch.setattr(http1, "DRAIN_SECONDS", 0.1)
    monkeypatch.setattr(http1, "DRAIN_LIMIT", 100)
    tail = {
        "late": (b"0\r\n\r\n", 0.4),
        "too much": (chunked(b"x" * 200), 0.02),
        "more after its end": (b"0\r\n\r\nHTTP/1.1 200 OK\r\n", 0.02),
        "a reset": (b"", 0.02),
    }[rest]

    async def scenario() -> None:
        server = RawServer()
        content = await _content_then(server, tail[0], tail[1])

        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
        ) -> None:
            if rest == "a reset" and i == 0:
                await server.read_request(reader)
                writer.write(CHUNKED_HEAD + b"5\r\ndone.\r\n")
                await asyncio.sleep(0.02)
                reset(writer)
                return
            await content(reader, writer, i)

        server.handler = handler
        async with server, upstream() as client:
            await _release_after_content(client, server)
            await until(lambda: not client.pool._conns)  # closed, never back in the pool
            reply = await client.stream(creds(server), post(), FAST)  # on a new connection
            assert isinstance(reply, Stream)
            assert await anext(reply.chunks()) == b"done."
            reply.close()
        assert server.connections == 2

    run(scenario)


def test_closing_the_client_closes_every_connection(run: Callable[[Scenario], None]) -> None:
    async def scenario() -> None:
        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
        ) -> None:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD + b"1\r\na\r\n" if i == 0 else response())

        server = RawServer(handler)
        async with server:
            client = Upstream()
            await client.start()
            opened = await client.stream(creds(server), post(), FAST)
            assert isinstance(opened, Stream)
            await client.send(creds(server), post(), FAST)
            chunks = opened.chunks()
            assert await anext(chunks) == b"a"
            pending = asyncio.ensure_future(anext(chunks))
            await asyncio.sleep(0.05)
            await client.close()
            exc = await failure(pending)
            assert exc.failure is FailureClass.TRANSIENT
            await until(lambda: server.closed_by_client == 2)
            with pytest.raises(RuntimeError, match="not started"):
                await client.send(creds(server), post(), FAST)

    run(scenario)


# -- TLS --


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_checks_the_certificate_and_keeps_alive(
    run: Callable[[Scenario], None], tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)

    async def scenario() -> None:
        server = RawServer(ssl_context=server_side)
        async with server:
            # The system's trust store does not know this certificate.
            async with upstream() as client:
                exc = await failure(client.send(creds(server, "https"), post(), FAST))
                assert exc.message.startswith("the provider's TLS certificate was refused (")
            trusting = replace(creds(server, "https"), ca_bundle=str(cert))
            async with upstream() as client:
                for _ in range(3):
                    reply = await client.send(trusting, post(), FAST)
                    assert reply.status == 200
        assert server.connections == 1  # the refused handshake never reached the handler

    run(scenario)
