"""The URL guard: one normalised host, resolved once, every address public, or a refusal."""
# ruff: noqa: RUF001  (look-alike characters are what these tests are about)

from __future__ import annotations

import ipaddress

import pytest

from faregate.upstream.url_guard import FetchRefused, address_allowed, check, normalise


class Names:
    """A resolver answering from a table, recording every lookup."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise OSError("unknown name")
        return self.table[host]


NAMES = {
    "localhost": ["127.0.0.1", "::1"],
    "internal.example": ["10.0.0.7"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": ["93.184.216.34", "192.168.1.10"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "cgnat.example": ["100.64.0.1"],
    "public.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
}


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::7f00:1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
        "2001::1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address))


# Spellings of internal hosts: each must be refused without reaching an address, or (for
# names) after one lookup whose answer is internal.
SPELLINGS = [
    "http://127.0.0.1/x",
    "http://１２７.０.０.１/x",  # full-width digits and dots
    "http://①②⑦.0.0.1/x",  # circled digits
    "http://𝟏𝟐𝟕.𝟎.𝟎.𝟏/x",  # mathematical bold digits
    "http://127。0。0。1/x",  # ideographic full stops
    "http://127．0．0．1/x",  # full-width full stops
    "http://127｡0｡0｡1/x",  # half-width ideographic full stops
    "http://１２７。０。０。１/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://１６９.２５４.１６９.２５４/latest/",
    "http://2130706433/x",  # decimal
    "http://017700000001/x",  # octal
    "http://0x7f000001/x",  # hex
    "http://0x7F.0.0.1/x",
    "http://0177.0.0.1/x",
    "http://0177.1/x",
    "http://127.1/x",
    "http://127.0.0.1./x",  # trailing dot
    "http://0/x",
    "http://0.0.0.0/x",
    "http://[::]/x",
    "http://[::1]/x",
    "http://[::ffff:127.0.0.1]/x",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/x",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/x",
    "http://[::ffff:a9fe:a9fe]/x",
    "http://[fe80::1%25eth0]/x",
    "http://8.8.8.8@127.0.0.1/x",  # userinfo tricks
    "http://user:pass@8.8.8.8/x",
    "http://8.8.8.8:80@127.0.0.1/x",
    "http://127.0.0.1%2f@8.8.8.8/x",
    "http://127.0.0.1\\@8.8.8.8/x",
    "http://%31%32%37.0.0.1/x",  # percent-encoded host
    "http://localhost/x",
    "http://LOCALHOST./x",
    "http://ｌｏｃａｌｈｏｓｔ/x",  # full-width letters
    "http://internal.example/x",  # names resolving to internal ranges
    "http://INTERNAL.example./x",
    "http://metadata.example/x",
    "http://mixed.example/x",
    "http://mapped.example/x",
    "http://cgnat.example/x",
    "http://١٢٧.٠.٠.١/x",  # Arabic-Indic digits: a name that does not resolve
    "HTTP://127.0.0.1/x",
    "https://127.0.0.1:8443/x",
    "file:///etc/passwd",
    "ftp://8.8.8.8/x.png",
    "gopher://8.8.8.8/",
    "http:///x",
    "//8.8.8.8/x",
    "not a url",
]


@pytest.mark.parametrize("url", SPELLINGS)
async def test_internal_spellings_are_refused(url: str) -> None:
    names = Names(NAMES)
    with pytest.raises(FetchRefused):
        await check(url, names)
    assert len(names.calls) <= 1


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://１２７.０.０.１:81/x", "127.0.0.1"),
        ("http://①②⑦.0.0.1/x", "127.0.0.1"),
        ("http://127。0。0。1/x", "127.0.0.1"),
        ("http://ＥＸＡＭＰＬＥ.com/x", "example.com"),
        ("http://bücher.example/x", "xn--bcher-kva.example"),
    ],
)
def test_hosts_are_normalised_once(url: str, host: str) -> None:
    assert normalise(url).raw_host == host


async def test_a_public_name_is_resolved_once_and_pinned() -> None:
    names = Names(NAMES)
    target = await check("https://Public.Example:8443/a/b.png?s=1#frag", names)
    assert names.calls == ["public.example"]
    assert target.addresses == ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    assert target.host_header == "public.example:8443"
    assert target.server_hostname == "public.example"
    assert str(target.request_url(target.addresses[1])) == (
        "https://[2606:2800:220:1:248:1893:25c8:1946]:8443/a/b.png?s=1"
    )


async def test_a_numeric_host_is_connected_to_as_written_without_a_lookup() -> None:
    names = Names(NAMES)
    target = await check("http://0x08080808/x", names)
    assert names.calls == []
    assert target.addresses == ("8.8.8.8",)
    assert target.host_header == "8.8.8.8"
    assert target.server_hostname is None
    ipv6 = await check("https://[2606:4700:4700::1111]/x", names)
    assert ipv6.host_header == "[2606:4700:4700::1111]"
    assert ipv6.server_hostname is None


async def test_private_addresses_pass_only_when_allowed() -> None:
    names = Names(NAMES)
    target = await check("http://internal.example:8080/x", names, allow_private=True)
    assert target.addresses == ("10.0.0.7",)
    assert target.host_header == "internal.example:8080"
    with pytest.raises(FetchRefused, match="does not resolve"):
        await check("http://nowhere.example/x", names, allow_private=True)
