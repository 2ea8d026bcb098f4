"""One incoming HTTP request: headers, query and a body read under a size cap."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from faregate.billing.types import KeyRecord
from faregate.errors import PayloadTooLarge

Scope = dict[str, Any]
Message = dict[str, Any]


class Request:
    __slots__ = ("_body", "_headers", "_query", "key", "params", "receive", "scope")

    def __init__(self, scope: Scope, receive: Any, params: dict[str, str] | None = None) -> None:
        self.scope = scope
        self.receive = receive
        self.params = params or {}
        self._headers: dict[str, str] | None = None
        self._query: dict[str, str] | None = None
        self._body: bytes | None = None
        self.key: KeyRecord | None = None  # set once the caller is authenticated

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

    async def _read(self, limit: int) -> bytes:
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
