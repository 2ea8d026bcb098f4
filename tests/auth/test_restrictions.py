"""Key restrictions: addresses behind trusted proxies, origins, time windows."""

from __future__ import annotations

import datetime as dt

import pytest

from faregate.auth import restrictions as r
from faregate.billing.spend import period_key
from faregate.errors import PermissionDenied

TRUSTED = r.networks(("10.0.0.0/8",))


def test_client_address_behind_trusted_proxies() -> None:
    assert r.client_address("203.0.113.9", "1.2.3.4", TRUSTED) == "203.0.113.9"  # untrusted peer
    assert r.client_address("10.0.0.2", "1.2.3.4", TRUSTED) == "1.2.3.4"
    assert r.client_address("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7", TRUSTED) == "1.2.3.4"
    assert r.client_address("10.0.0.2", None, TRUSTED) == "10.0.0.2"
    assert r.client_address("10.0.0.2", "garbage", TRUSTED) == "10.0.0.2"


@pytest.mark.parametrize(
    ("address", "ok"), [("203.0.113.5", True), ("203.0.114.5", False), ("2001:db8::1", True)]
)
def test_ips(address: str, ok: bool) -> None:
    rules = {"ips": ["203.0.113.0/24", "2001:db8::/32"]}
    if ok:
        r.check(rules, address=address, origin=None)
    else:
        with pytest.raises(PermissionDenied) as err:
            r.check(rules, address=address, origin=None)
        assert err.value.code == "ip_not_allowed"
        assert address in err.value.message


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        ("https://app.example.com", True),
        ("https://eu.example.com", True),
        ("http://eu.example.com", False),
        ("https://example.com.evil.net", False),
        (None, False),
    ],
)
def test_origins(origin: str | None, ok: bool) -> None:
    rules = {"origins": ["https://app.example.com", "https://*.example.com"]}
    if ok:
        r.check(rules, address="1.1.1.1", origin=origin)
    else:
        with pytest.raises(PermissionDenied) as err:
            r.check(rules, address="1.1.1.1", origin=origin)
        assert err.value.code == "origin_not_allowed"


def test_time_windows_in_the_keys_time_zone() -> None:
    rules = {
        "hours": {
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "from": "09:00",
            "to": "18:00",
            "tz": "Europe/Berlin",
        }
    }
    monday_10_berlin = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)  # 10:00 CET
    r.check(rules, address="", origin=None, now=monday_10_berlin)
    for when in (
        dt.datetime(2026, 11, 23, 17, 30, tzinfo=dt.UTC),  # 18:30 CET
        dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC),
    ):  # Sunday
        with pytest.raises(PermissionDenied) as err:
            r.check(rules, address="", origin=None, now=when)
        assert err.value.code == "outside_time_window"
        assert "Europe/Berlin" in err.value.message
    overnight = {"hours": {"from": "22:00", "to": "06:00"}}
    r.check(overnight, address="", origin=None, now=dt.datetime(2026, 1, 1, 23, tzinfo=dt.UTC))
    with pytest.raises(PermissionDenied):
        r.check(overnight, address="", origin=None, now=dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    "bad",
    [
        {"ipz": []},
        {"ips": ["300.1.1.1/8"]},
        {"origins": ["example.com"]},
        {"hours": {"days": ["moon"]}},
        {"hours": {"tz": "Mars/Base"}},
        {"hours": {"from": "25:00"}},
    ],
)
def test_bad_documents_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(r.RestrictionError):
        r.validate(bad)


def test_spend_periods() -> None:
    t = dt.datetime(2026, 11, 21, 23, 30, tzinfo=dt.UTC)
    assert period_key("daily", t) == "D2026-11-21"
    assert period_key("weekly", t) == "W2026-47"
    assert period_key("monthly", t) == "M2026-11"
    with pytest.raises(ValueError, match="unknown spend period"):
        period_key("hourly", t)
