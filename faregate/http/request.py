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
        declared = self.headers.get("content-length")
        if self._body is not None:
            declared = str(len(self._body))
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.")
        if self._body is not None:
            yield self._body
            return
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.")
                yield chunk
            if not message.get("more_body", False):
                return

    async def _read(self, limit: int) -> bytes:
        chunks = [chunk async for chunk in self.stream(limit)]
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
