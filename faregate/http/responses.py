"""Responses: a JSON body in one send, or a stream of chunks sent as they come."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

Send = Callable[[dict[str, Any]], Awaitable[None]]
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

    async def __call__(self, send: Send) -> None:
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

    When the client goes away the iterator is closed (so its `finally` runs and can
    account for what was produced) and the disconnect is swallowed.
    """

    __slots__ = ("chunks", "headers", "status")

    def __init__(
        self, chunks: AsyncIterator[bytes], status: int = 200, headers: Headers | None = None
    ) -> None:
        self.chunks = chunks
        self.status = status
        self.headers = headers if headers is not None else SSE_HEADERS

    async def __call__(self, send: Send) -> None:
        chunks = self.chunks
        try:
            await send(
                {"type": "http.response.start", "status": self.status, "headers": self.headers}
            )
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except OSError:
            pass  # the client disconnected; closing the iterator below settles the bill
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
