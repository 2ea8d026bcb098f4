"""Egress proxies: CONNECT tunnels to HTTP and HTTPS upstreams through a recording proxy on
loopback, proxy authentication, the pool keyed by proxy, and which proxy the environment
(HTTPS_PROXY / HTTP_PROXY / NO_PROXY) or a provider's `proxy` key chooses."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
import uvloop
from upstream_servers import PlainServer, Proxy, TLSServer

from faregate.config import ConfigError, Provider, Timeouts
from faregate.errors import FailureClass, UpstreamError
from faregate.providers.base import Credentials, UpstreamRequest
from faregate.upstream.client import Upstream
from faregate.upstream.proxy import EnvProxies, choose

pytestmark = pytest.mark.timeout(30)

NAME = "api.upstream.test"  # resolvable only by the proxy: the gateway must not resolve it
FAST = Timeouts(connect=2, first_byte=2, idle=2, total=5)


@contextlib.asynccontextmanager
async def client(environ: dict[str, str] | None = None) -> AsyncIterator[Upstream]:
    upstream = Upstream(environ=environ or {})
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()


def post() -> UpstreamRequest:
    return UpstreamRequest("/chat/completions", {"content-type": "application/json"}, b"{}")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_https_goes_through_a_connect_tunnel_checked_against_the_origin_name(
    ca: trustme.CA, tmp_path: Path
) -> None:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    async with TLSServer(ca.issue_cert(NAME)) as server, Proxy() as proxy, client() as up:
        c = Credentials(f"https://{NAME}:{server.port}/v1", "k", ca_bundle=str(path))
        tunnelled = Credentials(c.base_url, "k", ca_bundle=str(path), proxy=proxy.url())
        for _ in range(2):
            assert (await up.send(tunnelled, post(), FAST)).status == 200
        assert proxy.tunnels == [(f"{NAME}:{server.port}", None)]  # one tunnel, kept alive
        assert server.server_names == [NAME]


async def test_plain_http_goes_through_a_connect_tunnel_too() -> None:
    async with PlainServer() as plain, Proxy() as proxy, client() as up:
        c = Credentials(f"http://{NAME}:{plain.port}/v1", "k", proxy=proxy.url())
        reply = await up.send(c, post(), FAST)
        assert (reply.status, reply.body) == (200, b"plain")
        assert proxy.tunnels == [(f"{NAME}:{plain.port}", None)]


async def test_the_proxy_urls_user_and_password_authenticate() -> None:
    expected = "Basic " + base64.b64encode(b"gw:p@ss word").decode()
    async with PlainServer() as plain, Proxy(auth=expected) as proxy, client() as up:
        base = f"http://{NAME}:{plain.port}/v1"
        good = Credentials(base, "k", proxy=proxy.url("gw:p%40ss%20word"))
        assert (await up.send(good, post(), FAST)).status == 200
        with pytest.raises(UpstreamError) as caught:
            await up.send(Credentials(base, "k", proxy=proxy.url("gw:wrong")), post(), FAST)
        assert caught.value.failure is FailureClass.TRANSIENT
        assert caught.value.message == (
            f"the egress proxy refused the tunnel to {NAME}:{plain.port} (407)"
        )
        assert [auth for _, auth in proxy.tunnels] == [expected, "Basic Z3c6d3Jvbmc="]


async def test_connections_are_pooled_per_proxy() -> None:
    async with PlainServer() as plain, Proxy() as first, Proxy() as second, client() as up:
        base = f"http://{NAME}:{plain.port}/v1"
        for proxy in (first, second, first, second):
            assert (
                await up.send(Credentials(base, "k", proxy=proxy.url()), post(), FAST)
            ).status == 200
        assert len(first.tunnels) == len(second.tunnels) == 1


async def test_an_unreachable_proxy_is_a_transient_failure() -> None:
    async with Proxy() as proxy:
        dead = proxy.url()
    async with client() as up:
        with pytest.raises(UpstreamError) as caught:
            await up.send(Credentials(f"https://{NAME}/v1", "k", proxy=dead), post(), FAST)
    assert caught.value.failure is FailureClass.TRANSIENT
    assert caught.value.message.startswith("cannot connect to the egress proxy (")


async def test_the_environment_names_the_proxy_per_scheme(ca: trustme.CA, tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    async with (
        TLSServer(ca.issue_cert(NAME)) as tls_server,
        PlainServer() as plain,
        Proxy() as for_https,
        Proxy() as for_http,
    ):
        env = {"HTTPS_PROXY": for_https.url(), "http_proxy": f"127.0.0.1:{for_http.port}"}
        async with client(env) as up:
            secure = Credentials(f"https://{NAME}:{tls_server.port}", "k", ca_bundle=str(path))
            assert (await up.send(secure, post(), FAST)).status == 200
            assert (
                await up.send(Credentials(f"http://{NAME}:{plain.port}", "k"), post(), FAST)
            ).status == 200
        assert [t for t, _ in for_https.tunnels] == [f"{NAME}:{tls_server.port}"]
        assert [t for t, _ in for_http.tunnels] == [f"{NAME}:{plain.port}"]


async def test_an_empty_proxy_key_connects_directly_despite_the_environment() -> None:
    async with Proxy() as proxy, client({"HTTP_PROXY": proxy.url()}) as up:
        routed = Credentials(f"http://{NAME}:9/v1", "k")
        direct = Credentials(routed.base_url, "k", proxy="")
        with pytest.raises(UpstreamError) as caught:  # only the proxy knows the name
            await up.send(direct, post(), FAST)
        assert caught.value.message.startswith(
            ("cannot connect to the provider", "cannot connect in time")
        )
        assert proxy.tunnels == []
        with pytest.raises(UpstreamError):  # the proxy's tunnel to port 9 finds nobody
            await up.send(routed, post(), FAST)
        assert [t for t, _ in proxy.tunnels] == [f"{NAME}:9"]


def test_lowercase_variables_win_and_shorthand_means_http() -> None:
    env = EnvProxies.read({"https_proxy": "proxy-a:3128", "HTTPS_PROXY": "http://proxy-b:3128"})
    assert env.https == "http://proxy-a:3128"
    assert EnvProxies.read({"HTTPS_PROXY": "http://proxy-b:3128"}).https == "http://proxy-b:3128"
    assert EnvProxies.read({}) == EnvProxies()


def test_a_proxy_variable_that_is_not_an_http_proxy_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="HTTPS_PROXY='socks5://proxy:1080'"):
        EnvProxies.read({"HTTPS_PROXY": "socks5://proxy:1080"})


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypassed"),
    [
        ("*", "api.openai.com", 443, True),
        ("openai.com", "api.openai.com", 443, True),
        ("openai.com", "openai.com", 443, True),
        (".openai.com", "api.openai.com", 443, True),
        ("*.openai.com", "api.openai.com", 443, True),
        ("openai.com", "notopenai.com", 443, False),
        ("OpenAI.com", "API.openai.COM", 443, True),
        ("api.openai.com:443", "api.openai.com", 443, True),
        ("api.openai.com:8443", "api.openai.com", 443, False),
        ("10.0.0.0/8", "10.1.2.3", 443, True),
        ("10.0.0.0/8", "11.1.2.3", 443, False),
        ("10.1.2.3", "10.1.2.3", 443, True),
        ("[2001:db8::1]:443", "2001:db8::1", 443, True),
        ("2001:db8::/32", "2001:db8::5", 443, True),
        (" example.org , openai.com ", "api.openai.com", 443, True),
        ("", "api.openai.com", 443, False),
    ],
)
def test_no_proxy(no_proxy: str, host: str, port: int, bypassed: bool) -> None:
    env = EnvProxies.read({"HTTPS_PROXY": "http://proxy:3128", "no_proxy": no_proxy})
    assert (env.for_origin("https", host, port) is None) is bypassed


def test_loopback_never_takes_a_proxy_from_the_environment() -> None:
    env = EnvProxies.read({"HTTP_PROXY": "http://proxy:3128"})
    for host in ("127.0.0.1", "127.3.4.5", "::1", "localhost", "vllm.localhost"):
        assert env.for_origin("http", host, 8000) is None
    assert env.for_origin("http", "10.0.0.7", 8000) == "http://proxy:3128"
    assert env.for_origin("https", "10.0.0.7", 443) is None  # no HTTPS_PROXY


def test_a_configured_proxy_overrides_the_environment() -> None:
    env = EnvProxies.read({"HTTPS_PROXY": "http://env-proxy:3128"})
    assert choose(None, env, "https", "api.openai.com", 443) == "http://env-proxy:3128"
    assert choose("", env, "https", "api.openai.com", 443) is None
    assert choose("http://mine:8080", env, "https", "127.0.0.1", 443) == "http://mine:8080"


@pytest.mark.parametrize(
    "proxy",
    ["https://proxy:3128", "socks5://proxy:1080", "proxy:3128", "http://proxy:x", "http://proxy/p"],
)
def test_a_provider_proxy_must_be_an_http_connect_proxy(proxy: str) -> None:
    with pytest.raises(ValueError, match="proxy"):
        Provider(base_url="https://api.example.com", proxy=proxy)


def test_a_provider_ca_bundle_must_hold_certificates(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    for path in (junk, tmp_path / "missing.pem"):
        with pytest.raises(ValueError, match="cannot load CA certificates"):
            Provider(base_url="https://api.example.com", ca_bundle=str(path))


def test_a_tunnel_on_uvloop(ca: trustme.CA, tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))

    async def scenario() -> None:
        async with TLSServer(ca.issue_cert(NAME)) as server, Proxy() as proxy, client() as up:
            c = Credentials(f"https://{NAME}:{server.port}", "k", ca_bundle=str(path))
            tunnelled = Credentials(c.base_url, "k", ca_bundle=c.ca_bundle, proxy=proxy.url())
            assert (await up.send(tunnelled, post(), FAST)).status == 200
            assert len(proxy.tunnels) == 1

    uvloop.run(scenario())
