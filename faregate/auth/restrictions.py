"""Key restrictions: where a key may be used from (IP ranges, browser origins) and when.

A key's `restrictions` (set through the admin API) look like:

    {"ips": ["203.0.113.0/24", "2001:db8::/32"],
     "origins": ["https://app.example.com", "https://*.example.com"],
     "hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "18:00",
               "tz": "Europe/Berlin"},
     "countries": {"allow": ["DE", "AT"], "block": ["RU"], "unknown": "allow"}}

The caller's address is the peer's, unless the peer is a trusted proxy: then the nearest
address in `X-Forwarded-For` that is not a trusted proxy. A key limited to origins refuses
requests without an `Origin` header. Countries are ISO 3166-1 alpha-2 codes: the caller's
country (`auth/geo.py`) must be in `allow` when it is given and never in `block`; a caller
whose country is unknown is let through unless `unknown` is "refuse". The same document may
be set on an account, and both the account's and the key's apply. Each refusal is a 403
naming the restriction.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from faregate.errors import PermissionDenied

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class RestrictionError(ValueError):
    """A restrictions document that cannot be used (refused when an operator sets it)."""


@lru_cache(maxsize=4096)
def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in `value` (brackets and spaces around it allowed), None when it is none;
    remembered, as callers come back from the same addresses."""
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def networks(ranges: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(r, strict=False) for r in ranges)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The caller's address: the peer, or behind trusted proxies the nearest untrusted hop."""
    address = peer or ""
    if not forwarded_for or not trusted:  # nothing to look behind: no address parsed
        return address
    ip = parse_ip(address)
    if ip is not None and any(ip in net for net in trusted):
        for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
            hop_ip = parse_ip(hop)
            if hop_ip is None:
                break
            address = str(hop_ip)
            if not any(hop_ip in net for net in trusted):
                break
    return address


def _origin_allowed(origin: str, patterns: Sequence[str]) -> bool:
    origin = origin.rstrip("/").lower()
    for pattern in patterns:
        pattern = pattern.rstrip("/").lower()
        if pattern == origin or pattern == "*":
            return True
        if "://*." in pattern:
            scheme, _, suffix = pattern.partition("://*.")
            if origin.startswith(scheme + "://") and origin.endswith("." + suffix):
                return True
    return False


def _minutes(value: str) -> int:
    hours, _, minutes = value.partition(":")
    total = int(hours) * 60 + int(minutes or 0)
    if not 0 <= total <= 24 * 60:
        raise RestrictionError(f"{value!r} is not a time of day (HH:MM)")
    return total


def validate(restrictions: dict[str, Any]) -> dict[str, Any]:
    """Check a restrictions document; raise RestrictionError naming what is wrong."""
    unknown = set(restrictions) - {"ips", "origins", "hours", "countries"}
    if unknown:
        raise RestrictionError(f"unknown restriction(s): {', '.join(sorted(unknown))}")
    try:
        networks(tuple(restrictions.get("ips") or ()))
    except ValueError as exc:
        raise RestrictionError(f"ips: {exc}") from None
    origins = restrictions.get("origins") or []
    if not all(isinstance(o, str) and "://" in o for o in origins):
        raise RestrictionError("origins: each must be like https://app.example.com")
    hours = restrictions.get("hours")
    if hours is not None:
        if not isinstance(hours, dict):
            raise RestrictionError("hours: must be an object")
        bad_days = set(hours.get("days") or DAYS) - set(DAYS)
        if bad_days:
            raise RestrictionError(f"hours.days: unknown day(s) {sorted(bad_days)}")
        _minutes(str(hours.get("from", "00:00")))
        _minutes(str(hours.get("to", "24:00")))
        try:
            ZoneInfo(str(hours.get("tz", "UTC")))
        except (ZoneInfoNotFoundError, ValueError):
            raise RestrictionError(f"hours.tz: unknown time zone {hours.get('tz')!r}") from None
    countries = restrictions.get("countries")
    if countries is not None:
        _validate_countries(countries)
    return restrictions


def _validate_countries(countries: Any) -> None:
    if not isinstance(countries, dict):
        raise RestrictionError('countries: must be an object like {"allow": ["DE"]}')
    extra = set(countries) - {"allow", "block", "unknown"}
    if extra:
        raise RestrictionError(f"countries: unknown field(s) {', '.join(sorted(extra))}")
    for name in ("allow", "block"):
        codes = countries.get(name)
        if codes is None:
            continue
        if not isinstance(codes, list) or not all(
            isinstance(c, str) and len(c) == 2 and c.isascii() and c.isalpha() and c.isupper()
            for c in codes
        ):
            raise RestrictionError(
                f"countries.{name}: a list of ISO 3166-1 alpha-2 codes in capitals, like"
                ' ["DE", "FR"]'
            )
    if countries.get("unknown", "allow") not in ("allow", "refuse"):
        raise RestrictionError('countries.unknown: "allow" or "refuse"')


def check_country(countries: dict[str, Any], country: str | None) -> None:
    """Raise 403 `country_not_allowed` when `country` may not use the key or account."""
    allow = countries.get("allow")
    block = countries.get("block") or ()
    if country is None:
        if countries.get("unknown", "allow") == "refuse":
            raise PermissionDenied(
                "This API key may not be used from an unknown country.",
                code="country_not_allowed",
            )
        return
    if country in block or (allow and country not in allow):
        raise PermissionDenied(
            f"This API key may not be used from the country {country}.",
            code="country_not_allowed",
        )


def check(
    restrictions: dict[str, Any],
    *,
    address: str,
    origin: str | None,
    now: dt.datetime | None = None,
) -> None:
    """Raise 403 naming the first restriction the request does not meet."""
    ips = restrictions.get("ips")
    if ips:
        ip = parse_ip(address)
        if ip is None or not any(ip in net for net in networks(tuple(ips))):
            raise PermissionDenied(
                f"This API key may not be used from {address or 'an unknown address'}.",
                code="ip_not_allowed",
            )
    origins = restrictions.get("origins")
    if origins and (origin is None or not _origin_allowed(origin, origins)):
        raise PermissionDenied(
            f"This API key may not be used from the origin {origin or '(none sent)'}.",
            code="origin_not_allowed",
        )
    hours = restrictions.get("hours")
    if hours:
        tz = ZoneInfo(str(hours.get("tz", "UTC")))
        local = (now or dt.datetime.now(dt.UTC)).astimezone(tz)
        days = hours.get("days") or DAYS
        minute = local.hour * 60 + local.minute
        start = _minutes(str(hours.get("from", "00:00")))
        end = _minutes(str(hours.get("to", "24:00")))
        inside = start <= minute < end if start <= end else (minute >= start or minute < end)
        if DAYS[local.weekday()] not in days or not inside:
            raise PermissionDenied(
                "This API key may only be used on "
                f"{', '.join(days)} from {hours.get('from', '00:00')} to "
                f"{hours.get('to', '24:00')} ({tz.key}).",
                code="outside_time_window",
            )
