"""Wrong admin keys from one address end in 429 with Retry-After; other addresses go on."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from harness import ADMIN_KEY, Gateway, Sim, start_gateway, stop

ATTACKER = "203.0.113.50"


@pytest.fixture(scope="module")
def proxied(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway that trusts X-Forwarded-For from loopback, as behind a reverse proxy."""
    gw = start_gateway(
        sim.url, tmp_path_factory.mktemp("proxied"), trusted_proxies=["127.0.0.1/32"]
    )
    yield gw
    stop(gw.proc)


def _accounts(gw: Gateway, key: str, forwarded_for: str) -> httpx.Response:
    return httpx.get(
        f"{gw.url}/admin/v1/accounts",
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": forwarded_for},
        timeout=10,
    )


def test_wrong_admin_keys_are_throttled_per_address(proxied: Gateway) -> None:
    statuses = []
    for i in range(11):  # the 10th failure blocks, so the 11th attempt is refused at the latest
        r = _accounts(proxied, f"fga-guess-{i}", ATTACKER)
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[:6] == [401] * 6  # five free failures, the sixth starts a wait
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}
    assert int(r.headers["retry-after"]) >= 1
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "admin_auth_throttled")
    assert _accounts(proxied, ADMIN_KEY, "198.51.100.7").status_code == 200  # another address
    assert proxied.admin("GET", "/accounts")["object"] == "list"  # the proxy itself

    audit = proxied.admin("GET", f"/audit?actor=addr:{ATTACKER}")["data"]
    assert len(audit) == len(statuses) - 1
    assert {row["action"] for row in audit} <= {"admin_auth.failed", "admin_auth.blocked"}
    assert [row["detail"]["failures"] for row in reversed(audit)] == list(range(1, len(statuses)))
