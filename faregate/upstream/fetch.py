"""Fetching the URLs that clients send (images), only through a guard against internal targets.

Each hop (the first and every redirect) goes through `url_guard.check`: the host is
normalised once, resolved once, and every address must be public (loopback, private,
link-local and cloud metadata, multicast, reserved and unspecified refused, also behind
IPv4-mapped IPv6). The connection then goes to the checked IP itself, with the host name
as Host header and TLS server name, so nothing is resolved a second time.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from typing import TYPE_CHECKING, Any

from yarl import URL

from faregate.config import Images
from faregate.upstream.url_guard import FetchRefused, Resolver, Target, check, system_resolver

if TYPE_CHECKING:
    import aiohttp

__all__ = ["MAX_REDIRECTS", "FetchRefused", "Fetcher", "inline_remote_images"]

MAX_REDIRECTS = 3


def _session() -> aiohttp.ClientSession:
    """The fetcher's HTTP client: no cookies, no proxy from the environment, and a resolver
    that refuses every name. aiohttp is imported here, on the first fetch, so a gateway whose
    callers send no URLs does not hold it in memory."""
    import aiohttp
    from aiohttp.abc import AbstractResolver, ResolveResult

    class NoResolver(AbstractResolver):
        """The fetcher only ever gives the client IP addresses, so any name reaching this
        resolver is a bug, refused rather than resolved unchecked."""

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            raise FetchRefused(f"The host '{host}' was not checked before connecting.")

        async def close(self) -> None:
            return None

    connector = aiohttp.TCPConnector(resolver=NoResolver(), limit=64)
    return aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    )


class Fetcher:
    """A separate client for client-supplied URLs: every hop checked and pinned to its
    checked address, no cookies, capped size and time, redirects followed by hand."""

    def __init__(
        self,
        settings: Images,
        resolver: Resolver = system_resolver,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._settings = settings
        self._resolver = resolver
        self._tls: ssl.SSLContext | bool = tls if tls is not None else True
        self._session: aiohttp.ClientSession | None = None
        self._started = False

    async def start(self) -> None:
        """Ready to fetch; the HTTP client itself is made on the first fetch."""
        self._started = True

    async def close(self) -> None:
        self._started = False
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str) -> tuple[str, bytes]:
        """(media type, bytes) of an image at `url`, or a 400 naming what was refused."""
        if not self._started:
            raise RuntimeError("fetcher not started")
        import aiohttp

        if self._session is None:
            self._session = _session()
        s = self._settings
        try:
            async with asyncio.timeout(s.fetch_timeout_seconds):
                for _ in range(MAX_REDIRECTS + 1):
                    target = await check(url, self._resolver, s.allow_private_addresses)
                    async with await self._open(target) as resp:
                        if resp.status in (301, 302, 303, 307, 308) and "location" in resp.headers:
                            url = str(target.url.join(URL(resp.headers["location"])))
                            continue
                        if resp.status != 200:
                            raise FetchRefused(
                                f"Fetching the image failed with HTTP {resp.status}."
                            )
                        media = resp.content_type or ""
                        if not media.startswith("image/"):
                            raise FetchRefused(f"The URL is not an image ({media or 'no type'}).")
                        return media, await _read_capped(resp, s.max_bytes)
                raise FetchRefused("Too many redirects while fetching the image.")
        except TimeoutError:
            raise FetchRefused("Fetching the image took too long.") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise FetchRefused(f"Fetching the image failed: {type(exc).__name__}.") from None

    async def _open(self, target: Target) -> aiohttp.ClientResponse:
        """The response from the first checked address that accepts the connection; TLS
        verifies the certificate against the host name, not the address."""
        import aiohttp  # loaded by now: the session was made before the first hop

        assert self._session is not None
        failure: aiohttp.ClientConnectorError | None = None
        for address in target.addresses:
            try:
                return await self._session.get(
                    target.request_url(address),
                    allow_redirects=False,
                    headers={"Host": target.host_header},
                    server_hostname=target.server_hostname,
                    ssl=self._tls,
                )
            except aiohttp.ClientConnectorError as exc:
                failure = exc
        assert failure is not None
        raise failure


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise FetchRefused(f"The image is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise FetchRefused(f"The image is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _remote_image_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                # Anything but inline data is fetched, so the guard judges every other URL
                # (a scheme it does not fetch is refused, not passed on).
                if isinstance(url, str) and url and not url.startswith("data:"):
                    parts.append(part)
    return parts


async def inline_remote_images(fetcher: Fetcher, body: dict[str, Any]) -> dict[str, Any]:
    """A copy of the chat body whose remote image URLs became data URLs (fetched in parallel);
    the body itself is returned when it has none."""
    parts = _remote_image_parts(body)
    if not parts:
        return body
    urls = []
    for part in parts:
        image = part["image_url"]
        urls.append(image["url"] if isinstance(image, dict) else image)
    fetched = await asyncio.gather(*(fetcher.fetch(u) for u in urls))
    data_urls = {
        url: f"data:{media};base64,{base64.b64encode(data).decode()}"
        for url, (media, data) in zip(urls, fetched, strict=True)
    }
    messages = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            new_content = []
            for part in content:
                if part in parts:
                    image = part["image_url"]
                    url = image["url"] if isinstance(image, dict) else image
                    detail = (
                        {k: v for k, v in image.items() if k != "url"}
                        if isinstance(image, dict)
                        else {}
                    )
                    part = {**part, "image_url": {**detail, "url": data_urls[url]}}
                new_content.append(part)
            message = {**message, "content": new_content}
        messages.append(message)
    return {**body, "messages": messages}
