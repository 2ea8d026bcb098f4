"""One incoming HTTP request: headers, query, and a body read (or streamed, or parsed as a
form) under a size cap."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Protocol
from urllib.parse import parse_qs

from faregate.billing.types import KeyRecord
from faregate.errors import PayloadTooLarge
from faregate.http.multipart import Form, FormLimits, parse_form

Scope = dict[str, Any]
Message = dict[str, Any]


class Admission(Protocol):
    """A request's place under its limits, when its handler took it (released by the app
    once the response has ended)."""

    headers: dict[str, str]

    def release(self) -> None: ...


class Request:
    __slots__ = (
        "_body",
        "_form",
        "_headers",
        "_query",
        "key",
        "lease",
        "params",
        "receive",
        "scope",
    )

    def __init__(self, scope: Scope, receive: Any, params: dict[str, str] | None = None) -> None:
        self.scope = scope
        self.receive = receive
        self.params = params or {}
        self._headers: dict[str, str] | None = None
        self._query: dict[str, str] | None = None
        self._body: bytes | None = None
        self._form: Form | None = None
        self.key: KeyRecord | None = None  # set once the caller is authenticated
        self.lease: Admission | None = None  # taken by a handler that admits itself

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased header names; the last value wins."""
        if self._headers is None:
            self._headers = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in self.scope["headers"]
            }
        return self._headers

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = {k: v[-1] for k, v in parse_qs(raw).items()}
        return self._query

    @property
    def client_host(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    async def body(self, limit: int) -> bytes:
        """The whole body, refused with 413 as soon as it passes `limit` bytes (read once,
        then kept)."""
        if self._body is None:
            self._body = await self._read(limit)
        return self._body

    async def form(self, limits: FormLimits) -> Form:
        """The multipart/form-data body, parsed as it arrives (read once, then kept): text
        fields in memory, file parts spooled to temporary files that `close` removes."""
        if self._form is None:
            source = self.stream(limits.max_body)
            self._form = await parse_form(self.headers.get("content-type", ""), source, limits)
        return self._form

    def close(self) -> None:
        """Release what the request holds once its response has ended: a form's files."""
        if self._form is not None:
            self._form.close()

    async def stream(self, limit: int) -> AsyncGenerator[bytes, None]:
        """The body chunk by chunk as it arrives, refused with 413 as soon as it passes `limit`
        bytes. A client that leaves ends the stream early. A body already read whole comes in
        one chunk."""
        self._refuse_declared(limit)
        if self._body is not None:
            yield self._body
            return
        async for chunk in self._rest(limit, 0):
            yield chunk

    async def _rest(self, limit: int, size: int) -> AsyncGenerator[bytes, None]:
        """The chunks still to come, `size` bytes having come before them."""
        more = True
        while more:
            chunk, more = await self._next(limit, size)
            if chunk:
                size += len(chunk)
                yield chunk

    def _refuse_declared(self, limit: int) -> None:
        declared = self.headers.get("content-length")
        if self._body is not None:
            declared = str(len(self._body))
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.")

    async def _next(self, limit: int, size: int) -> tuple[bytes, bool]:
        """The next chunk of the body and whether more follows, refused with 413 when it
        takes the body (`size` bytes so far) past `limit`; a client gone ends the body."""
        message = await self.receive()
        if message["type"] == "http.disconnect":
            return b"", False
        chunk: bytes = message.get("body", b"")
        if size + len(chunk) > limit:
            raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.")
        return chunk, bool(message.get("more_body", False))

    async def _read(self, limit: int) -> bytes:
        """The whole body; the common case, one message, without a generator's frames."""
        self._refuse_declared(limit)
        first, more = await self._next(limit, 0)
        if not more:
            return first
        chunks = [first]
        async for chunk in self._rest(limit, len(first)):
            chunks.append(chunk)
        return b"".join(chunks)
