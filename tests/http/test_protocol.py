"""The server protocol: a response head leaves with its first body bytes, a stream's later chunks
of one loop iteration leave together, and nothing is held past the end of that iteration."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from harness import free_port

from faregate.http.protocol import MAX_JOINED, HttpProtocol, JoinedWrites

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 0


def wrapped() -> tuple[JoinedWrites, Recorder]:
    inner = Recorder()
    return JoinedWrites(inner, asyncio.get_running_loop()), inner


async def test_head_and_body_leave_in_one_write() -> None:
    t, inner = wrapped()
    t.write(HEAD)
    assert inner.writes == []
    assert t.get_write_buffer_size() == len(HEAD)
    t.write(b"{}")
    assert inner.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)
    assert inner.writes == [HEAD + b"{}"]  # the scheduled flush finds nothing left


async def test_a_head_alone_leaves_at_the_end_of_the_iteration() -> None:
    t, inner = wrapped()
    t.write(HEAD)
    await asyncio.sleep(0)
    assert inner.writes == [HEAD]


async def test_later_chunks_of_one_iteration_leave_together() -> None:
    t, inner = wrapped()
    t.write(HEAD)
    t.write(b"a")  # a stream's first chunk: at once, with the head
    assert inner.writes == [HEAD + b"a"]
    t.write(b"b")
    t.write(b"c")
    t.write(b"0\r\n\r\n")
    assert inner.writes == [HEAD + b"a"]
    assert t.get_write_buffer_size() == 7
    await asyncio.sleep(0)
    assert inner.writes == [HEAD + b"a", b"bc0\r\n\r\n"]
    t.write(b"d")  # the next iteration's chunks are a new write
    await asyncio.sleep(0)
    assert inner.writes == [HEAD + b"a", b"bc0\r\n\r\n", b"d"]


async def test_a_new_head_sends_what_is_pending_first_and_big_writes_do_not_wait() -> None:
    t, inner = wrapped()
    t.write(b"x")
    t.write(HEAD)
    assert inner.writes == [b"x"]
    t.write(b"{}")
    assert inner.writes == [b"x", HEAD + b"{}"]
    big = b"y" * MAX_JOINED
    t.write(big)
    assert inner.writes == [b"x", HEAD + b"{}", big]


async def test_close_sends_a_held_head_first_and_abort_drops_it() -> None:
    t, inner = wrapped()
    t.write(HEAD)
    t.close()
    assert inner.writes == [HEAD]
    assert inner.closed
    t2, inner2 = wrapped()
    t2.write(HEAD)
    t2.abort()
    await asyncio.sleep(0)
    assert inner2.writes == []
    assert inner2.aborted


async def test_nothing_is_written_to_a_closing_transport_and_queries_are_delegated() -> None:
    t, inner = wrapped()
    t.writelines([b"a", b"b"])
    inner.closed = True  # the client went away before the iteration ended
    await asyncio.sleep(0)
    assert inner.writes == []
    inner.closed = False
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)
    assert t.get_extra_info("missing", "x") == "x"
    assert not t.is_closing()


# -- through a real server -------------------------------------------------------------------


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/json":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await asyncio.sleep(0.3)
    await send({"type": "http.response.body", "body": b"second", "more_body": False})


@pytest.fixture
async def server() -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(app, port=port, http=HttpProtocol, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    task = asyncio.ensure_future(srv.serve())
    for _ in range(500):  # up to 5 s
        if srv.started:
            break
        await asyncio.sleep(0.01)
    assert srv.started
    yield port
    srv.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


def _exchange(port: int, path: str, until: bytes) -> list[tuple[float, bytes]]:
    """(seconds since the request, bytes) for each recv until `until` has arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        start = time.monotonic()
        for _ in range(2):  # two requests on one keep-alive connection
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            got: list[tuple[float, bytes]] = []
            while not b"".join(d for _, d in got).endswith(until):
                data = s.recv(65536)
                assert data, "connection closed early"
                got.append((time.monotonic() - start, data))
        return got


async def test_whole_replies_over_keep_alive(server: int) -> None:
    got = await asyncio.to_thread(_exchange, server, "/json", b"{}")
    raw = b"".join(d for _, d in got)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"\r\n\r\n{}")


async def test_a_stream_starts_before_its_late_chunks(server: int) -> None:
    got = await asyncio.to_thread(_exchange, server, "/stream", b"0\r\n\r\n")
    first_at, first = got[0]
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"first" in first and b"second" not in first
    assert got[-1][0] - first_at >= 0.2  # the late chunk came later, the head did not wait
