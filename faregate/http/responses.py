"""Responses: a JSON body in one send, or a stream of chunks sent as they come."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def header_list(headers: dict[str, str]) -> Headers:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class Response:
    """A complete response."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes, status: int = 200, headers: Headers | None = None) -> None:
        self.body = body
        self.status = status
        self.headers = headers if headers is not None else [JSON_TYPE]

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        extra = header_list(headers) if headers else []
        return cls(orjson.dumps(data), status, [JSON_TYPE, *extra])

    async def __call__(self, send: Send, receive: Receive) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [*self.headers, (b"content-length", str(len(self.body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": self.body})


class StreamResponse:
    """A response whose body is sent chunk by chunk as the iterator yields.

    The client going away is noticed from `receive` (an ASGI server may turn sends after a
    disconnect into silent no-ops): the pump is cancelled, and closing the iterator runs its
    `finally`, which accounts for what was produced.
    """

    __slots__ = ("chunks", "headers", "status")

    def __init__(
        self, chunks: AsyncIterator[bytes], status: int = 200, headers: Headers | None = None
    ) -> None:
        self.chunks = chunks
        self.status = status
        self.headers = headers if headers is not None else SSE_HEADERS

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        async for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def __call__(self, send: Send, receive: Receive) -> None:
        # The pump runs in this task, so the iterator is never closed while another task is
        # still inside it; a watcher task waits for the disconnect and cancels the pump.
        task = asyncio.current_task()
        assert task is not None
        state = {"left": False, "done": False}

        def gone(watcher: asyncio.Future[None]) -> None:
            if not watcher.cancelled():
                watcher.exception()  # a failing receive counts as the client gone
                if not state["done"]:
                    state["left"] = True
                    task.cancel()

        watcher = asyncio.ensure_future(_disconnected(receive))
        watcher.add_done_callback(gone)
        try:
            await self._pump(send)
        except asyncio.CancelledError:
            if not state["left"]:
                raise  # cancelled from outside (the server stopping): not ours to swallow
            task.uncancel()
        except OSError:
            pass
        finally:
            state["done"] = True
            watcher.cancel()
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                await aclose()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
