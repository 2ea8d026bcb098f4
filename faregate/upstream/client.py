"""One pooled HTTP client for every upstream; transport failures are classified here, once."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
from yarl import URL

from faregate.config import Timeouts
from faregate.errors import FailureClass, UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest

MAX_ERROR_BODY = 64 * 1024


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Stream:
    """An open upstream response whose body is read chunk by chunk, each within the idle
    timeout and all within the total deadline."""

    __slots__ = ("_deadline", "_idle", "_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, idle: float, deadline: float) -> None:
        self._resp = resp
        self._idle = idle
        self._deadline = deadline
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.headers.items()}

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        content = self._resp.content
        try:
            while True:
                wait = min(self._idle, self._deadline - loop.time())
                if wait <= 0:
                    raise UpstreamError(FailureClass.TIMEOUT, "the stream ran past its deadline")
                try:
                    async with asyncio.timeout(wait):
                        chunk = await content.readany()
                except TimeoutError:
                    raise UpstreamError(
                        FailureClass.TIMEOUT, "the provider stopped sending mid-stream"
                    ) from None
                except (aiohttp.ClientError, OSError) as exc:
                    raise UpstreamError(
                        FailureClass.TRANSIENT, f"the stream broke: {type(exc).__name__}"
                    ) from None
                if not chunk:
                    return
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self._resp.release() if self._resp.content.at_eof() else self._resp.close()


@contextlib.contextmanager
def _transport_errors(timed_out: str) -> Iterator[None]:
    """Transport failures as classified upstream errors (aiohttp's timeouts are TimeoutErrors)."""
    try:
        yield
    except TimeoutError:
        raise UpstreamError(FailureClass.TIMEOUT, timed_out) from None
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamError(
            FailureClass.TRANSIENT, f"cannot connect to the provider ({exc.os_error})"
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamError(
            FailureClass.TRANSIENT, f"the provider connection failed: {type(exc).__name__}"
        ) from None


@functools.lru_cache(maxsize=4096)
def _url(base: str, path: str) -> URL:
    """The upstream URL, parsed once (aiohttp would parse and requote a string every call)."""
    return URL(base + path)


@functools.lru_cache(maxsize=1024)
def _whole_reply_timeout(t: Timeouts) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=t.first_byte + t.total, sock_connect=t.connect, sock_read=t.first_byte
    )


class Upstream:
    def __init__(self, *, limit: int = 1024, limit_per_host: int = 512) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=self._limit_per_host,
            ttl_dns_cache=300,
            keepalive_timeout=30,
        )
        # No cookies (upstreams are APIs, and a jar costs work on every reply); bodies are
        # asked for uncompressed (no Accept-Encoding), so nothing has to be inflated.
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("upstream client not started")
        return self._session

    async def _open(
        self, creds: Credentials, req: UpstreamRequest, t: Timeouts
    ) -> aiohttp.ClientResponse:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=t.connect, connect=t.connect)
        with _transport_errors("the provider sent no response headers in time"):
            async with asyncio.timeout(t.first_byte):
                return await self.session.post(
                    _url(creds.base_url, req.path),
                    data=req.body,
                    headers=req.headers,
                    timeout=timeout,
                )

    async def send(self, creds: Credentials, req: UpstreamRequest, t: Timeouts) -> Reply:
        """A whole request and its whole reply (for non-streaming calls). aiohttp's own timers
        bound it: connect, no byte for `first_byte` seconds (headers or body), `total`."""
        with _transport_errors("the provider did not answer in time"):
            async with self.session.post(
                _url(creds.base_url, req.path),
                data=req.body,
                headers=req.headers,
                timeout=_whole_reply_timeout(t),
            ) as resp:
                body = await resp.read()
                status = resp.status
                # Headers matter only to classify an error.
                headers = {k.lower(): v for k, v in resp.headers.items()} if status >= 400 else {}
        return Reply(status, headers, body)

    async def stream(self, creds: Credentials, req: UpstreamRequest, t: Timeouts) -> Stream | Reply:
        """An open stream on success; on an error status, the whole (capped) error reply."""
        loop = asyncio.get_running_loop()
        resp = await self._open(creds, req, t)
        if resp.status >= 400:
            try:
                async with asyncio.timeout(t.idle):
                    body = await resp.content.read(MAX_ERROR_BODY)
            except (TimeoutError, aiohttp.ClientError, OSError):
                body = b""
            finally:
                resp.close()
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)
        return Stream(resp, t.idle, loop.time() + t.total)
