"""The caller's country: trusted proxy headers and a MaxMind DB file built by the test."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from faregate.auth import restrictions as r
from faregate.auth.geo import CountryLookup, caller_country, country_code
from faregate.errors import PermissionDenied

TRUSTED = r.networks(("10.0.0.0/8",))


def write_country_db(path: Path, networks: dict[str, str]) -> Path:
    """A MaxMind DB country file mapping each network to an ISO code, as GeoLite2 lays it out."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    for network, code in networks.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": code}})
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def lookup(tmp_path: Path) -> CountryLookup:
    db = write_country_db(
        tmp_path / "countries.mmdb",
        {"198.51.100.0/24": "US", "203.0.113.0/24": "DE", "2001:db8::/32": "FR"},
    )
    return CountryLookup(str(db))


def test_lookup_reads_the_database(lookup: CountryLookup) -> None:
    assert lookup.lookup("198.51.100.7") == "US"
    assert lookup.lookup("203.0.113.200") == "DE"
    assert lookup.lookup("2001:db8::1") == "FR"
    assert lookup.lookup("192.0.2.1") is None  # not in the file
    assert lookup.lookup("not an address") is None


@pytest.mark.parametrize(
    ("value", "code"),
    [("de", "DE"), (" US ", "US"), ("XX", None), ("T1", None), ("", None), ("DEU", None)],
)
def test_country_codes(value: str, code: str | None) -> None:
    assert country_code(value) == code


def test_header_believed_only_from_a_trusted_proxy(lookup: CountryLookup) -> None:
    def country(peer: str, header: str | None) -> str | None:
        return caller_country(
            peer=peer, address="198.51.100.7", header_value=header, trusted=TRUSTED, lookup=lookup
        )

    assert country("10.0.0.2", "DE") == "DE"
    # The same header from anyone else is ignored: the database answers.
    assert country("198.51.100.7", "DE") == "US"
    # A trusted proxy that names no country: the database answers.
    assert country("10.0.0.2", "XX") == "US"
    assert (
        caller_country(
            peer="10.0.0.2", address="192.0.2.1", header_value=None, trusted=TRUSTED, lookup=None
        )
        is None
    )


@pytest.mark.parametrize(
    ("countries", "country", "ok"),
    [
        ({"allow": ["DE"]}, "DE", True),
        ({"allow": ["DE"]}, "US", False),
        ({"block": ["RU"]}, "DE", True),
        ({"block": ["RU"]}, "RU", False),
        ({"allow": ["DE", "RU"], "block": ["RU"]}, "RU", False),
        ({"allow": ["DE"]}, None, True),  # unknown: allowed by default
        ({"allow": ["DE"], "unknown": "refuse"}, None, False),
    ],
)
def test_check_country(countries: dict[str, object], country: str | None, ok: bool) -> None:
    r.validate({"countries": countries})
    if ok:
        r.check_country(countries, country)
    else:
        with pytest.raises(PermissionDenied) as err:
            r.check_country(countries, country)
        assert err.value.code == "country_not_allowed"
        assert err.value.status == 403


@pytest.mark.parametrize(
    "countries",
    [
        ["DE"],
        {"allow": "DE"},
        {"allow": ["de"]},
        {"allow": ["DEU"]},
        {"block": [1]},
        {"unknown": "maybe"},
        {"allowed": ["DE"]},
    ],
)
def test_bad_country_documents_are_refused(countries: object) -> None:
    with pytest.raises(r.RestrictionError, match="countries"):
        r.validate({"countries": countries})
