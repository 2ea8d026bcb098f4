"""Streamed responses: every chunk sent in order; a client that leaves stops the stream and
closes its iterator; a cancellation from outside still propagates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from faregate.http.responses import StreamResponse


class Client:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.leave = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def receive(self) -> dict[str, Any]:
        await self.leave.wait()
        return {"type": "http.disconnect"}


class Chunks:
    """An iterator that yields `ready` chunks, then waits for more (like a slow upstream)."""

    def __init__(self, ready: int, wait: bool) -> None:
        self.ready = ready
        self.wait = wait
        self.closed = False

    async def gen(self) -> AsyncIterator[bytes]:
        try:
            for i in range(self.ready):
                yield b"c%d" % i
            if self.wait:
                await asyncio.sleep(30)
        finally:
            self.closed = True


async def test_every_chunk_then_the_end() -> None:
    client, chunks = Client(), Chunks(3, wait=False)
    await StreamResponse(chunks.gen())(client.send, client.receive)
    bodies = [m.get("body") for m in client.sent[1:]]
    assert client.sent[0]["type"] == "http.response.start"
    assert bodies == [b"c0", b"c1", b"c2", b""]
    assert chunks.closed


async def test_a_client_that_leaves_stops_the_stream() -> None:
    client, chunks = Client(), Chunks(2, wait=True)
    task = asyncio.ensure_future(StreamResponse(chunks.gen())(client.send, client.receive))
    await asyncio.sleep(0.05)
    client.leave.set()
    await asyncio.wait_for(task, 5)  # returns normally: the departure is not an error
    assert chunks.closed
    assert [m.get("body") for m in client.sent[1:]] == [b"c0", b"c1"]


async def test_a_cancellation_from_outside_propagates() -> None:
    client, chunks = Client(), Chunks(1, wait=True)
    task = asyncio.ensure_future(StreamResponse(chunks.gen())(client.send, client.receive))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert chunks.closed
