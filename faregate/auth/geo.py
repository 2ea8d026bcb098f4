"""The caller's country: from a trusted proxy's header, else from a MaxMind DB country file."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from faregate.auth.restrictions import Network, parse_ip

UNKNOWN_CODES = frozenset({"", "XX", "T1", "ZZ"})
"""Header values that name no country (Cloudflare: XX unknown, T1 Tor)."""


def country_code(value: str | None) -> str | None:
    """An ISO 3166-1 alpha-2 code from a header or database value, None for unknown."""
    if not value:
        return None
    code = value.strip().upper()
    if len(code) != 2 or not code.isalpha() or code in UNKNOWN_CODES:
        return None
    return code


class CountryLookup:
    """Looks an address up in a MaxMind DB country file (GeoLite2-Country, DB-IP country
    lite, or any file with `country.iso_code`), opened once with the C reader where it is
    installed (memory-mapped), else the pure-Python one."""

    def __init__(self, path: str) -> None:
        import maxminddb  # only with a country file

        self._reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
        self.lookup = lru_cache(maxsize=65_536)(self._lookup)

    def _lookup(self, address: str) -> str | None:
        try:
            record: Any = self._reader.get(address)
        except ValueError:  # not an IP address
            return None
        if not isinstance(record, dict):
            return None
        for field in ("country", "registered_country"):
            entry = record.get(field)
            if isinstance(entry, dict):
                code = country_code(entry.get("iso_code"))
                if code is not None:
                    return code
        return None

    def close(self) -> None:
        self._reader.close()


def caller_country(
    *,
    peer: str | None,
    address: str,
    header_value: str | None,
    trusted: Sequence[Network],
    lookup: CountryLookup | None,
) -> str | None:
    """The caller's country: the proxy's header when the peer is a trusted proxy (a header
    from anyone else is ignored), else the country database's answer for `address`."""
    if header_value is not None:
        ip = parse_ip(peer or "")
        if ip is not None and any(ip in net for net in trusted):
            code = country_code(header_value)
            if code is not None:
                return code
    if lookup is not None and address:
        return lookup.lookup(address)
    return None
