"""The guard in front of client-supplied URLs: internal targets refused, caps enforced."""
# ruff: noqa: RUF001  (look-alike characters are what these tests are about)

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import web

from faregate.config import Images
from faregate.upstream import url_guard
from faregate.upstream.fetch import Fetcher, FetchRefused, inline_remote_images

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Recorder:
    """A loopback HTTP server that records every connection (and its Host header) and
    answers each request with a PNG, or with a redirect to `redirect`."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.hosts: list[str] = []
        self.redirect: str | None = None
        self.port = 0
        self._tls = tls
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hosts.append("")
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("host:"):
                self.hosts[-1] = line[5:].strip()
        if self.redirect is not None:
            writer.write(
                b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n" % self.redirect.encode()
            )
        else:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (len(PNG), PNG)
            )
        await writer.drain()
        writer.close()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    await rec.start()
    yield rec
    await rec.stop()


class Names:
    """A resolver answering from a table, recording every lookup; a name with a `/next`
    entry answers that from its second lookup on (what a rebinding DNS server does)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        answer = self.table.get(host)
        if answer is None:
            return await url_guard.system_resolver(host, port)
        self.table[host] = self.table.get(host + "/next", answer)
        return answer


# Hosts that reach the recorder on 127.0.0.1 if the guard lets them through.
LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "１２７.０.０.１",
    "①②⑦.0.0.1",
    "①②⑦.⓪.⓪.①",
    "𝟏𝟐𝟕.𝟎.𝟎.𝟏",
    "127。0。0。1",
    "127．0．0．1",
    "127｡0｡0｡1",
    "１２７。０。０。１",
    "2130706433",
    "017700000001",
    "0x7f000001",
    "0x7f.1",
    "0177.0.0.1",
    "127.1",
    "127.0.0.1.",
    "0",
    "0.0.0.0",
    "０.０.０.０",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "8.8.8.8@127.0.0.1",
    "user:pw@127.0.0.1",
    "localhost",
    "LOCALHOST.",
    "ｌｏｃａｌｈｏｓｔ",
    "internal.example",
    "mixed.example",
    "mapped.example",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_loopback_spellings_are_refused_before_any_connection(
    recorder: Recorder, host: str
) -> None:
    names = Names(
        {
            "internal.example": ["127.0.0.1"],
            "mixed.example": ["93.184.216.34", "127.0.0.1"],
            "mapped.example": ["::ffff:127.0.0.1"],
        }
    )
    f = Fetcher(Images(), resolver=names)
    await f.start()
    try:
        for scheme in ("http", "HTTP", "https"):
            with pytest.raises(FetchRefused):
                await f.fetch(f"{scheme}://{host}:{recorder.port}/x.png")
    finally:
        await f.close()
    assert recorder.hosts == []


@pytest.fixture
def only_127_0_0_1_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests cannot reach a public address, so 127.0.0.1 plays one (and 127.0.0.2 does not)."""
    monkeypatch.setattr(url_guard, "address_allowed", lambda ip: str(ip) == "127.0.0.1")


@pytest.mark.usefixtures("only_127_0_0_1_public")
async def test_a_name_is_resolved_once_and_the_checked_address_connected_to(
    recorder: Recorder,
) -> None:
    names = Names({"img.example": ["127.0.0.1"], "img.example/next": ["127.0.0.2"]})
    f = Fetcher(Images(), resolver=names)
    await f.start()
    try:
        assert await f.fetch(f"http://img.example:{recorder.port}/x.png") == ("image/png", PNG)
    finally:
        await f.close()
    assert names.calls == ["img.example"]  # the HTTP client resolved nothing itself
    assert recorder.hosts == [f"img.example:{recorder.port}"]


@pytest.mark.usefixtures("only_127_0_0_1_public")
@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.2:{port}/x.png",
        "http://①②⑦.0.0.②:{port}/x.png",
        "http://0x7f000002:{port}/x.png",
        "http://[::ffff:127.0.0.2]:{port}/x.png",
        "http://internal.example:{port}/x.png",
        "http://img.example:{port}/x.png",  # the same name, rebound to 127.0.0.2
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ],
)
async def test_redirects_are_checked_again(recorder: Recorder, location: str) -> None:
    names = Names(
        {
            "img.example": ["127.0.0.1"],
            "img.example/next": ["127.0.0.2"],
            "internal.example": ["127.0.0.2"],
        }
    )
    recorder.redirect = location.format(port=recorder.port)
    f = Fetcher(Images(), resolver=names)
    await f.start()
    try:
        with pytest.raises(FetchRefused):
            await f.fetch(f"http://img.example:{recorder.port}/first.png")
    finally:
        await f.close()
    assert recorder.hosts == [f"img.example:{recorder.port}"]


@pytest.mark.usefixtures("only_127_0_0_1_public")
@pytest.mark.parametrize("certified", ["img.example", "other.example"])
async def test_tls_goes_to_the_checked_address_and_verifies_the_host_name(
    certified: str,
) -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(certified).configure_cert(server_tls)
    server_names: list[str | None] = []
    server_tls.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    recorder = Recorder(server_tls)
    await recorder.start()
    names = Names({"img.example": ["127.0.0.1"], "img.example/next": ["127.0.0.2"]})
    f = Fetcher(Images(), resolver=names, tls=client_tls)
    await f.start()
    try:
        url = f"https://img.example:{recorder.port}/x.png"
        if certified == "img.example":
            assert await f.fetch(url) == ("image/png", PNG)
            assert recorder.hosts == [f"img.example:{recorder.port}"]
        else:
            with pytest.raises(FetchRefused, match="Certificate"):
                await f.fetch(url)
            assert recorder.hosts in ([], [""])  # the handshake failed before any request
    finally:
        await f.close()
        await recorder.stop()
    assert server_names == ["img.example"]
    assert names.calls == ["img.example"]


@pytest.mark.usefixtures("only_127_0_0_1_public")
async def test_a_relative_redirect_keeps_the_host_name(recorder: Recorder) -> None:
    names = Names({"img.example": ["127.0.0.1"]})
    recorder.redirect = "/again.png"
    f = Fetcher(Images(), resolver=names)
    await f.start()
    try:
        with pytest.raises(FetchRefused, match="Too many redirects"):
            await f.fetch(f"http://img.example:{recorder.port}/first.png")
    finally:
        await f.close()
    assert recorder.hosts == [f"img.example:{recorder.port}"] * 4
    assert names.calls == ["img.example"] * 4


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


@pytest.mark.parametrize(
    "url", ["HTTP://127.0.0.1/x.png", "ftp://8.8.8.8/x.png", "gs://bucket/x.png", "x.png"]
)
async def test_every_url_but_inline_data_goes_through_the_guard(url: str) -> None:
    f = await _fetcher(False)
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": url}]}]}
    try:
        with pytest.raises(FetchRefused):
            await inline_remote_images(f, body)
    finally:
        await f.close()
