"""Before fetching a client-supplied URL: one normalised host, resolved once, every address public.

The fetcher connects to an address from the returned `Target` and nowhere else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from yarl import URL

from faregate.errors import BadRequest

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(ASCII host name, port) -> the IP addresses it resolves to, as text."""

# A host name after IDNA encoding: letters, digits, hyphens, underscores, dots.
_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
# The legacy inet_aton spellings of IPv4 (2130706433, 0x7f.1, 0177.0.0.1, 127.1, ...).
_LEGACY_PART = re.compile(r"0x[0-9a-f]*|[0-9]+")


class FetchRefused(BadRequest):
    code = "url_refused"


@dataclass(frozen=True, slots=True)
class Target:
    """Where one hop of a fetch goes: the URL as meant, and the checked address to dial."""

    url: URL
    """The URL, host normalised (IDNA, NFKC), without userinfo."""
    host: str
    """The host as sent in the Host header and as TLS server name (ASCII)."""
    addresses: tuple[str, ...]
    """Checked addresses to connect to, in order; never resolved again."""

    def request_url(self, address: str) -> URL:
        """The URL with `address` in place of the host name: the connection goes there."""
        return self.url.with_host(address)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.url.explicit_port is not None and self.url.port != _default_port(self.url):
            return f"{host}:{self.url.port}"
        return host

    @property
    def server_hostname(self) -> str | None:
        """The TLS server name: the host name, or none for an IP literal."""
        return None if _ip_literal(self.host) is not None else self.host


def _default_port(url: URL) -> int:
    return 443 if url.scheme == "https" else 80


def address_allowed(ip: IP) -> bool:
    """Whether `ip` is a globally reachable unicast address; an IPv4-mapped IPv6 address is
    judged by its IPv4 address, and 6to4 and Teredo addresses (which tunnel to an IPv4
    address) are refused."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None or ip.teredo is not None:
            return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a numeric host spells in any inet_aton form, or None for a name."""
    parts = host.removesuffix(".").split(".")
    if not 1 <= len(parts) <= 4 or not all(_LEGACY_PART.fullmatch(p) for p in parts):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.removesuffix(".")))
    except OSError:
        raise FetchRefused(f"The host '{host}' is not a valid address.") from None


def _ip_literal(host: str) -> IP | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def normalise(raw: str) -> URL:
    """The URL as it will be fetched, or a refusal: http(s) only, no userinfo, and the host
    normalised once, the way the HTTP client would (IDNA with the UTS #46 mapping, which
    includes NFKC: full-width and circled digits, ideographic full stops become ASCII).
    Only the normalised host is used from here on, so no later step reads it otherwise."""
    try:
        url = URL(raw).with_fragment(None)
        host = url.raw_host
    except (ValueError, UnicodeError, TypeError):
        raise FetchRefused("The URL is not valid.") from None
    if url.scheme not in ("http", "https") or not host:
        raise FetchRefused("Only http and https URLs can be fetched.")
    if url.raw_user is not None or url.raw_password is not None:
        raise FetchRefused("URLs with credentials (user@host) cannot be fetched.")
    host = host.lower()
    if ":" in host:
        if "%" in host:
            raise FetchRefused("IPv6 addresses with a zone cannot be fetched.")
        return url
    if not _NAME.fullmatch(host):
        raise FetchRefused(f"The host '{host}' is not a valid host name.")
    return url


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolver (getaddrinfo), every address it gives."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check(raw: str, resolver: Resolver, allow_private: bool = False) -> Target:
    """The target of one hop: `raw` normalised, its host resolved once, every address it
    resolves to public (unless `allow_private`), else FetchRefused before any connection."""
    url = normalise(raw)
    host = (url.raw_host or "").lower()
    port = url.port or _default_port(url)
    literal = _ip_literal(host) or _legacy_ipv4(host)
    if literal is not None:
        if not allow_private and not address_allowed(literal):
            raise FetchRefused("The URL points at a non-public address.")
        return Target(url, str(literal), (str(literal),))
    try:
        resolved = await resolver(host, port)
    except (OSError, UnicodeError):
        resolved = []
    ips: list[IP] = []
    for text in resolved:
        ip = _ip_literal(text.split("%", 1)[0])
        if ip is None or (not allow_private and not address_allowed(ip)):
            raise FetchRefused(f"The host '{host}' resolves to a non-public address.")
        if ip not in ips:
            ips.append(ip)
    if not ips:
        raise FetchRefused(f"The host '{host}' does not resolve.")
    return Target(url, host, tuple(str(ip) for ip in ips))
