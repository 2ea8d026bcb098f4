"""Responses: a JSON or bytes body in one send, or a stream of chunks (events, bytes, a
local file's) sent as they come."""

from __future__ import annotations

import asyncio
import mimetypes
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from faregate.errors import NotFound

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


FILE_CHUNK = 64 * 1024


def header_list(headers: dict[str, str]) -> Headers:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def attachment(filename: str) -> str:
    """A `Content-Disposition` that saves the body as `filename`: the plain parameter for
    every client, and `filename*` (RFC 6266) when the name is not plain ASCII."""
    plain = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in filename)
    value = f'attachment; filename="{plain}"'
    if plain != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def _bytes_headers(content_type: str, disposition: str | None) -> Headers:
    headers = [(b"content-type", content_type.encode("latin-1"))]
    if disposition is not None:
        headers.append((b"content-disposition", disposition.encode("latin-1")))
    return headers


class StreamAborted(Exception):
    """Raised by a stream's iterator to end the response without its last chunk: the server
    closes the connection, so the client sees the body as incomplete (a raw byte stream has
    no way to carry an error of its own)."""


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

    @classmethod
    def raw(
        cls, body: bytes, content_type: str, *, disposition: str | None = None, status: int = 200
    ) -> Response:
        """Raw bytes of `content_type`, with a `Content-Disposition` when given."""
        return cls(body, status, _bytes_headers(content_type, disposition))

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
        except (OSError, StreamAborted):
            pass
        finally:
            state["done"] = True
            watcher.cancel()
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                await aclose()


class BytesStream(StreamResponse):
    """Raw bytes of one content type streamed chunk by chunk as the iterator yields them (never
    held whole): with `Content-Length` when `length` is known, else chunked."""

    __slots__ = ()

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        content_type: str,
        *,
        length: int | None = None,
        disposition: str | None = None,
        status: int = 200,
    ) -> None:
        headers = _bytes_headers(content_type, disposition)
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        super().__init__(chunks, status, headers)


class FileResponse(BytesStream):
    """A local file streamed in chunks read off the event loop, with its length, and its type
    as given or as its name says (application/octet-stream otherwise); 404 when it is not
    there. A `filename` makes it an attachment."""

    __slots__ = ()

    def __init__(
        self,
        path: str | os.PathLike[str],
        content_type: str | None = None,
        *,
        filename: str | None = None,
        chunk_size: int = FILE_CHUNK,
    ) -> None:
        file = Path(path)
        try:
            size = file.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("The file does not exist.", code="file_not_found") from None
        if content_type is None:
            content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        super().__init__(
            _read_file(file, chunk_size),
            content_type,
            length=size,
            disposition=None if filename is None else attachment(filename),
        )


async def _read_file(path: Path, chunk_size: int) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_size):
            yield chunk
    finally:
        handle.close()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
