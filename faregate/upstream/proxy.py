"""Egress proxies of upstream connections: which proxy a provider is reached through (its
`proxy` key, else HTTPS_PROXY / HTTP_PROXY / NO_PROXY) and the CONNECT tunnel through it."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from faregate.config import ConfigError
from faregate.errors import FailureClass, UpstreamError
from faregate.upstream.config import check_proxy_url

MAX_REPLY_HEAD = 16 * 1024
"""Bytes of the proxy's answer to CONNECT read at most."""


def _env(environ: Mapping[str, str], name: str) -> str:
    """A variable by its lowercase name, else its uppercase one (the usual precedence)."""
    return environ.get(name) or environ.get(name.upper()) or ""


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class EnvProxies:
    """The proxies the environment names, read once when the upstream client starts."""

    https: str | None = None
    http: str | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> EnvProxies:
        found: dict[str, str | None] = {}
        for scheme in ("https", "http"):
            value = _env(environ, f"{scheme}_proxy").strip()
            if value and "://" not in value:
                value = "http://" + value  # `host:port` is common shorthand
            if value:
                try:
                    check_proxy_url(value)
                except ValueError as exc:
                    raise ConfigError(f"{scheme.upper()}_PROXY={value!r}: {exc}") from None
            found[scheme] = value or None
        entries = (e.strip().lower() for e in _env(environ, "no_proxy").split(","))
        return cls(found["https"], found["http"], tuple(e for e in entries if e))

    def for_origin(self, scheme: str, host: str, port: int) -> str | None:
        """The proxy for `scheme://host:port`, or None to connect directly. Loopback hosts
        always connect directly."""
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or _is_loopback(host) or self._bypassed(host.lower(), port):
            return None
        return proxy

    def _bypassed(self, host: str, port: int) -> bool:
        """Whether NO_PROXY names `host`: `*`, a domain (and its subdomains, with or without a
        leading dot), an IP address or network, each optionally with `:port`."""
        try:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        for entry in self.no_proxy:
            if entry == "*":
                return True
            name, wanted_port = entry, ""
            if entry.count(":") == 1 or entry.startswith("["):
                name, _, wanted_port = entry.rpartition(":")
                if not wanted_port.isdigit():
                    name, wanted_port = entry, ""
            name = name.strip("[]")
            if wanted_port and int(wanted_port) != port:
                continue
            try:
                network = ipaddress.ip_network(name, strict=False)
            except ValueError:
                name = name.lstrip("*").lstrip(".")
                if name and (host == name or host.endswith("." + name)):
                    return True
                continue
            if ip is not None and ip in network:
                return True
        return False


def choose(
    configured: str | None, env: EnvProxies, scheme: str, host: str, port: int
) -> str | None:
    """The proxy a provider's origin is reached through: as configured ("" for none), else as
    the environment says."""
    if configured is not None:
        return configured or None
    return env.for_origin(scheme, host, port)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def open_tunnel(
    loop: asyncio.AbstractEventLoop, proxy: str, host: str, port: int
) -> socket.socket:
    """A socket to the proxy whose CONNECT to `host:port` was answered with a 2xx: from here
    on, bytes on it reach the origin. Authenticates with the proxy URL's user and password."""
    url = urlsplit(proxy)
    assert url.hostname is not None
    sock = await _connect(loop, url.hostname, url.port or 80)
    target = _authority(host, port)
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if url.username is not None:
        user = f"{unquote(url.username)}:{unquote(url.password or '')}"
        head += f"Proxy-Authorization: Basic {base64.b64encode(user.encode()).decode()}\r\n"
    try:
        await loop.sock_sendall(sock, (head + "\r\n").encode("latin-1"))
        status = await _reply_status(loop, sock)
    except OSError as exc:
        sock.close()
        raise UpstreamError(
            FailureClass.TRANSIENT, f"the egress proxy connection failed ({exc})"
        ) from None
    except BaseException:
        sock.close()
        raise
    if not 200 <= status < 300:
        sock.close()
        raise UpstreamError(
            FailureClass.TRANSIENT, f"the egress proxy refused the tunnel to {target} ({status})"
        )
    return sock


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A connected non-blocking socket to the proxy, trying each of its addresses in turn."""
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UpstreamError(
            FailureClass.TRANSIENT, f"cannot resolve the egress proxy ({exc})"
        ) from None
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise UpstreamError(
        FailureClass.TRANSIENT, f"cannot connect to the egress proxy ({error})"
    ) from None


async def _reply_status(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> int:
    """The status of the proxy's answer, read to the end of its head. The origin speaks only
    once spoken to, so nothing past the head can be in the socket yet."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise ConnectionResetError("the proxy closed the connection")
        data += chunk
        if len(data) > MAX_REPLY_HEAD:
            raise ConnectionError("the proxy's answer is too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].split(None, 2)
    if len(line) < 2 or not line[0].startswith(b"HTTP/1.") or not line[1].isdigit():
        raise ConnectionError("the proxy sent a malformed answer")
    status = int(line[1])
    if rest and 200 <= status < 300:
        raise ConnectionError("the proxy sent bytes past its answer")
    return status
