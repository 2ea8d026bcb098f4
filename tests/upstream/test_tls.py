"""HTTPS to upstreams: certificates checked against a provider's CA bundle and the origin's
name, refusals classified once and not retried; on the default event loop and on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop
from upstream_servers import TLSServer

from faregate.config import Timeouts
from faregate.errors import FailureClass, UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest
from faregate.upstream.client import Upstream

pytestmark = pytest.mark.timeout(30)

FAST = Timeouts(connect=2, first_byte=2, idle=2, total=5)
REPLY = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)

Scenario = Callable[[], Coroutine[Any, Any, None]]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Scenario], None]:
    def go(scenario: Scenario) -> None:
        async def bounded() -> None:
            async with asyncio.timeout(15):
                await scenario()

        if request.param == "uvloop":
            uvloop.run(bounded())
        else:
            asyncio.run(bounded())

    return go


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def bundle(ca: trustme.CA, tmp: Path, name: str = "ca.pem") -> str:
    path = tmp / name
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@contextlib.asynccontextmanager
async def client() -> AsyncIterator[Upstream]:
    upstream = Upstream(environ={})
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()


def post() -> UpstreamRequest:
    return UpstreamRequest("/chat/completions", {"content-type": "application/json"}, b"{}")


def creds(port: int, ca_bundle: str | None, host: str = "127.0.0.1") -> Credentials:
    return Credentials(f"https://{host}:{port}/v1", "key", ca_bundle=ca_bundle)


async def refusal(upstream: Upstream, c: Credentials) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await upstream.send(c, post(), FAST)
    return caught.value


def test_the_providers_ca_bundle_is_trusted_and_the_connection_kept(
    run: Callable[[Scenario], None], ca: trustme.CA, tmp_path: Path
) -> None:
    trusted = bundle(ca, tmp_path)

    async def scenario() -> None:
        async with TLSServer(ca.issue_cert("127.0.0.1", "localhost")) as server, client() as up:
            for _ in range(3):
                reply = await up.send(creds(server.port, trusted), post(), FAST)
                assert (reply.status, reply.body) == (200, b'{"ok":true}')
            reply = await up.send(creds(server.port, trusted, "localhost"), post(), FAST)
            assert reply.status == 200
        # One connection per name: the pool kept each alive; SNI carries a name, not an IP.
        assert server.connections == 2
        assert server.server_names == [None, "localhost"]

    run(scenario)


def test_a_certificate_from_another_ca_is_refused_once(
    run: Callable[[Scenario], None], ca: trustme.CA, tmp_path: Path
) -> None:
    other = bundle(trustme.CA(), tmp_path, "other.pem")

    async def scenario() -> None:
        async with TLSServer(ca.issue_cert("127.0.0.1")) as server, client() as up:
            for trust in (other, None):  # another CA's bundle, and the system's trust store
                exc = await refusal(up, creds(server.port, trust))
                assert exc.failure is FailureClass.TLS
                assert exc.status is None
                assert exc.message.startswith("the provider's TLS certificate was refused (")
                assert "certificate verify failed" in exc.message or "unable" in exc.message
        assert server.handshakes == 2  # one per request: a refusal is never retried
        assert server.connections == 0

    run(scenario)


def test_a_certificate_for_another_name_is_refused(
    run: Callable[[Scenario], None], ca: trustme.CA, tmp_path: Path
) -> None:
    trusted = bundle(ca, tmp_path)

    async def scenario() -> None:
        async with TLSServer(ca.issue_cert("api.example.com")) as server, client() as up:
            exc = await refusal(up, creds(server.port, trusted))
            assert exc.message.startswith("the provider's TLS certificate was refused (")
            assert "mismatch" in exc.message
            exc = await refusal(up, creds(server.port, trusted, "localhost"))
            assert "mismatch" in exc.message
        assert server.handshakes == 2
        assert server.connections == 0

    run(scenario)


def test_a_replaced_ca_bundle_is_read_again(
    run: Callable[[Scenario], None], ca: trustme.CA, tmp_path: Path
) -> None:
    path = tmp_path / "rotating.pem"
    trustme.CA().cert_pem.write_to_path(str(path))

    async def scenario() -> None:
        async with TLSServer(ca.issue_cert("127.0.0.1")) as server, client() as up:
            exc = await refusal(up, creds(server.port, str(path)))
            assert "refused" in exc.message
            before = path.stat().st_mtime_ns
            ca.cert_pem.write_to_path(str(path))
            os.utime(path, ns=(before + 10**9, before + 10**9))  # coarse clocks: a sure change
            reply = await up.send(creds(server.port, str(path)), post(), FAST)
            assert reply.status == 200

    run(scenario)


def _spoil(path: Path) -> None:
    before = path.stat().st_mtime_ns
    path.write_text("not a certificate")
    os.utime(path, ns=(before + 10**9, before + 10**9))  # coarse clocks: a sure change


def test_a_ca_bundle_spoiled_after_the_start_fails_the_attempt_as_tls(
    run: Callable[[Scenario], None], ca: trustme.CA, tmp_path: Path
) -> None:
    path = Path(bundle(ca, tmp_path, "spoiled.pem"))

    async def scenario() -> None:
        async with TLSServer(ca.issue_cert("127.0.0.1")) as server:
            async with client() as up:
                assert (await up.send(creds(server.port, str(path)), post(), FAST)).status == 200
            _spoil(path)
            async with client() as up:  # a new connection reads the bundle
                exc = await refusal(up, creds(server.port, str(path)))
                assert exc.failure is FailureClass.TLS
                assert exc.message.startswith("cannot load the provider's CA bundle (")
                os.remove(path)
                exc = await refusal(up, creds(server.port, str(path)))
                assert exc.message.startswith("cannot load the provider's CA bundle (")

    run(scenario)
