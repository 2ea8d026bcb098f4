"""One pooled HTTP client for every upstream; transport failures are classified here, once."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Mapping
from urllib.parse import quote, urlsplit

from faregate.config import Timeouts
from faregate.errors import UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest
from faregate.upstream.base import Reply as Reply  # re-exported: the reply type of `send`
from faregate.upstream.http1 import Connection, Origin, encode_head
from faregate.upstream.pool import Pool
from faregate.upstream.proxy import EnvProxies, choose

MAX_ERROR_BODY = 64 * 1024

_NO_ANSWER = "the provider did not answer in time"
_NO_HEADERS = "the provider sent no response headers in time"
_NEVER = float("inf")


class Stream:
    """An open upstream response whose body is read chunk by chunk, each within the idle
    timeout and all within the total deadline."""

    __slots__ = ("_conn", "headers", "status")

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn
        self.status = conn.status
        self.headers = conn.response_headers()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while (conn := self._conn) is not None:
                chunk = await conn.read()
                if not chunk:
                    return
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        """Done with the stream: its connection is reused if the body was read to the end."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish()

    def release(self) -> None:
        """Done with the stream because its content ended (the relay saw the last event): the
        connection is reused once the rest of the body (its terminator) arrives, if it does
        within a second."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish(drain=True)


@functools.lru_cache(maxsize=4096)
def _target(base: str, path: str, method: str) -> tuple[Origin, bytes, bytes]:
    """Where a request goes, its request line and its Host header, worked out once."""
    url = urlsplit(base + path)
    scheme = url.scheme.lower()
    if scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"not an http(s) URL: {base + path!r}")
    host = url.hostname.encode("idna").decode("ascii")
    default = 443 if scheme == "https" else 80
    port = url.port or default
    target = quote(url.path or "/", safe="/:@!$&'()*+,;=-._~%")
    if url.query:
        target += "?" + quote(url.query, safe="/?:@!$&'()*+,;=-._~%")
    authority = f"[{host}]" if ":" in host else host
    if port != default:
        authority += f":{port}"
    request_line = f"{method} {target} HTTP/1.1\r\n".encode("ascii")
    return Origin(scheme, host, port), request_line, f"Host: {authority}\r\n".encode("ascii")


class Upstream:
    """HTTP/1.1 to the providers over keep-alive connections (at most `limit` overall and
    `limit_per_host` per origin). A request that finds its reused connection closed by the
    provider before any reply is sent once more on a new connection."""

    def __init__(
        self,
        *,
        limit: int = 1024,
        limit_per_host: int = 512,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._pool: Pool | None = None
        # The environment's proxies, read once (a provider's `proxy` key overrides them).
        self._env_proxies = EnvProxies.read(os.environ if environ is None else environ)
        self._routes: dict[tuple[Origin, str | None, str | None], Origin] = {}

    async def start(self) -> None:
        self._pool = Pool(asyncio.get_running_loop(), self._limit, self._limit_per_host)

    def _request(
        self, creds: Credentials, req: UpstreamRequest, method: str
    ) -> tuple[Origin, bytes]:
        """Where the request goes (its server, CA bundle and proxy: the pool's key) and its head."""
        server, request_line, host = _target(creds.base_url, req.path, method)
        route = (server, creds.ca_bundle, creds.proxy)
        origin = self._routes.get(route)
        if origin is None:
            proxy = choose(creds.proxy, self._env_proxies, *server[:3])
            origin = self._routes[route] = server._replace(ca_bundle=creds.ca_bundle, proxy=proxy)
        length = None if method == "GET" and not req.body else len(req.body)
        return origin, encode_head(request_line, host, req.headers, length)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("upstream client not started")
        return self._pool

    async def send(
        self, creds: Credentials, req: UpstreamRequest, t: Timeouts, *, method: str = "POST"
    ) -> Reply:
        """A whole request and its whole reply (for non-streaming calls): connect within
        `connect`, no silence of `first_byte` seconds, all within `first_byte + total`."""
        deadline = asyncio.get_running_loop().time() + t.first_byte + t.total
        conn = await self._exchange(creds, req, t, method, False, t.first_byte, deadline)
        status = conn.status
        body = conn.body()
        # Headers matter only to classify an error.
        headers = conn.response_headers() if status >= 400 else {}
        conn.finish()
        return Reply(status, headers, body)

    async def stream(
        self, creds: Credentials, req: UpstreamRequest, t: Timeouts, *, method: str = "POST"
    ) -> Stream | Reply:
        """An open stream on success (headers within `first_byte`, then each chunk within
        `idle`, all within `total`); on an error status, the whole (capped) error reply."""
        headers_by = asyncio.get_running_loop().time() + t.first_byte
        conn = await self._exchange(creds, req, t, method, True, _NEVER, headers_by)
        if conn.status >= 400:
            return await _error_reply(conn, t.idle)
        conn.watch_body(t.idle, t.total)
        return Stream(conn)

    async def _exchange(
        self,
        creds: Credentials,
        req: UpstreamRequest,
        t: Timeouts,
        method: str,
        stream: bool,
        gap: float,
        deadline: float,
    ) -> Connection:
        """A connection with the request sent and the response head (`stream`) or the whole
        response in. A reused connection the provider had closed gets one retry, fresh."""
        pool = self.pool
        origin, head = self._request(creds, req, method)
        message = _NO_HEADERS if stream else _NO_ANSWER
        fresh = False
        while True:
            conn = await pool.acquire(origin, t.connect, fresh=fresh)
            conn.request(head, req.body, stream=stream, gap=gap, deadline=deadline, message=message)
            try:
                await (conn.response() if stream else conn.complete())
            except UpstreamError:
                conn.close()
                if conn.stale and not fresh:
                    fresh = True
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            return conn


async def _error_reply(conn: Connection, within: float) -> Reply:
    """An error response, its body capped and read within `within` seconds (or left empty)."""
    conn.watch_body(within, within)
    headers = conn.response_headers()
    parts: list[bytes] = []
    size = 0
    try:
        while size < MAX_ERROR_BODY:
            chunk = await conn.read()
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        body = b"".join(parts)[:MAX_ERROR_BODY]
    except UpstreamError:
        body = b""
    finally:
        conn.finish()
    return Reply(conn.status, headers, body)
