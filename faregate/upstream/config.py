"""Config checks of how providers are reached: the CA bundle and the egress proxy URL."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit


def check_ca_bundle(path: str) -> None:
    """A CA bundle must be a readable PEM file holding at least one certificate."""
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load CA certificates from this file ({exc})") from None


def check_proxy_url(url: str) -> None:
    """An egress proxy must be `http://[user:password@]host[:port]`: Faregate opens a CONNECT
    tunnel through it (TLS to the proxy itself is not supported)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError('use http://[USER:PASSWORD@]HOST[:PORT] (a CONNECT proxy), or "" for none')
    try:
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        raise ValueError("the proxy URL has an invalid port") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("a proxy URL has no path, query or fragment")
