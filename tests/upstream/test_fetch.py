"""The guard in front of client-supplied URLs: internal targets refused, caps enforced."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from faregate.config import Images
from faregate.upstream.fetch import (
    Fetcher,
    FetchRefused,
    GuardedResolver,
    _address_allowed,
    check_url,
    inline_remote_images,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert not _address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert _address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/x.png",
        "http://127.0.0.1/x.png",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "gopher://x",
        "http:///x",
    ],
)
def test_urls_refused_before_connecting(url: str) -> None:
    with pytest.raises(FetchRefused):
        check_url(url)


async def test_resolver_refuses_names_of_internal_hosts() -> None:
    with pytest.raises(FetchRefused, match="non-public"):
        await GuardedResolver().resolve("localhost", 80)
    assert await GuardedResolver(allow_private=True).resolve("localhost", 80)


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    async def png(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000, content_type="image/png")

    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>", content_type="text/html")

    async def hop(_: web.Request) -> web.Response:
        raise web.HTTPFound("/img.png")

    async def to_metadata(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/")

    app = web.Application()
    app.router.add_get("/img.png", png)
    app.router.add_get("/big.png", big)
    app.router.add_get("/page", html)
    app.router.add_get("/hop", hop)
    app.router.add_get("/evil", to_metadata)
    runner, port = await _serve(app)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _fetcher(allow_private: bool, max_bytes: int = 4096) -> Fetcher:
    f = Fetcher(Images(allow_private_addresses=allow_private, max_bytes=max_bytes))
    await f.start()
    return f


async def test_loopback_origin_refused_by_default(origin: str) -> None:
    f = await _fetcher(False)
    try:
        with pytest.raises(FetchRefused):
            await f.fetch(origin + "/img.png")
    finally:
        await f.close()


async def test_fetch_and_caps(origin: str) -> None:
    f = await _fetcher(True)
    try:
        assert await f.fetch(origin + "/img.png") == ("image/png", PNG)
        assert (await f.fetch(origin + "/hop"))[1] == PNG  # a redirect, checked again
        with pytest.raises(FetchRefused, match="larger"):
            await f.fetch(origin + "/big.png")
        with pytest.raises(FetchRefused, match="not an image"):
            await f.fetch(origin + "/page")
        with pytest.raises(FetchRefused, match="HTTP 404"):
            await f.fetch(origin + "/missing.png")
    finally:
        await f.close()


async def test_redirect_to_metadata_is_refused_even_when_origin_allowed(origin: str) -> None:
    f = Fetcher(Images(allow_private_addresses=False))
    await f.start()
    try:
        with pytest.raises(FetchRefused):
            await f.fetch(origin + "/evil")
    finally:
        await f.close()


async def test_inline_remote_images(origin: str) -> None:
    f = await _fetcher(True)
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {
                        "type": "image_url",
                        "image_url": {"url": origin + "/img.png", "detail": "low"},
                    },
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
        ],
    }
    try:
        out = await inline_remote_images(f, body)
    finally:
        await f.close()
    parts = out["messages"][0]["content"]
    assert parts[1]["image_url"] == {
        "detail": "low",
        "url": "data:image/png;base64," + base64.b64encode(PNG).decode(),
    }
    assert parts[2] == body["messages"][0]["content"][2]
    assert body["messages"][0]["content"][1]["image_url"]["url"].startswith("http")  # not mutated
    assert await inline_remote_images(f, {"messages": [{"role": "user", "content": "x"}]}) == {
        "messages": [{"role": "user", "content": "x"}]
    }
