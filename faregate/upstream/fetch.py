"""Fetching the URLs that clients send (images), only through a guard against internal targets.

Every address a host name resolves to must be public: loopback, private, link-local
(cloud metadata included), multicast, reserved and unspecified addresses are refused,
also behind IPv4-mapped IPv6. The guard sits in the resolver, so it holds for every
redirect hop and pins the connection to the address that was checked.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from faregate.config import Images
from faregate.errors import BadRequest

MAX_REDIRECTS = 3


class FetchRefused(BadRequest):
    code = "url_refused"


def _address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class GuardedResolver(AbstractResolver):
    """Resolves like the system, then refuses the host unless every address is public."""

    def __init__(self, allow_private: bool = False) -> None:
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        except socket.gaierror:
            raise FetchRefused(f"The host '{host}' does not resolve.") from None
        results: list[ResolveResult] = []
        for fam, _, proto, _, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0])
            if not self._allow_private and not _address_allowed(ip):
                raise FetchRefused(f"The host '{host}' resolves to a non-public address.")
            results.append(
                {
                    "hostname": host,
                    "host": str(ip),
                    "port": int(sockaddr[1]),
                    "family": fam,
                    "proto": proto,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        return None


def check_url(url: str, allow_private: bool = False) -> str:
    """Refuse non-HTTP(S) URLs and literal internal addresses before any connection."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused("Only http and https URLs can be fetched.")
    try:
        ip = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return url
    if not allow_private and not _address_allowed(ip):
        raise FetchRefused("The URL points at a non-public address.")
    return url


class Fetcher:
    """A separate client for client-supplied URLs: guarded resolver, no cookies, capped size
    and time, redirects followed by hand and checked at every hop."""

    def __init__(self, settings: Images) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self._settings.allow_private_addresses), limit=64
        )
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str) -> tuple[str, bytes]:
        """(media type, bytes) of an image at `url`, or a 400 naming what was refused."""
        if self._session is None:
            raise RuntimeError("fetcher not started")
        s = self._settings
        try:
            async with asyncio.timeout(s.fetch_timeout_seconds):
                for _ in range(MAX_REDIRECTS + 1):
                    check_url(url, s.allow_private_addresses)
                    async with self._session.get(url, allow_redirects=False) as resp:
                        if resp.status in (301, 302, 303, 307, 308) and "location" in resp.headers:
                            url = str(resp.url.join(URL(resp.headers["location"])))
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
        except aiohttp.ClientError as exc:
            raise FetchRefused(f"Fetching the image failed: {type(exc).__name__}.") from None


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
                if isinstance(url, str) and url.startswith(("http://", "https://")):
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
