"""Admin authentication: failed attempts throttled per caller address, audited; success unharmed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import orjson

from faregate.admin import audit, ops
from faregate.api.admin import AdminAPI
from faregate.api.envelopes import openai_error
from faregate.auth.keys import KeyHasher
from faregate.auth.throttle import Throttle
from faregate.config import Config
from faregate.db.engine import AdminDB
from faregate.errors import FaregateError
from faregate.http.request import Request
from faregate.pipeline.services import Services

ENV_KEY = "fga-env-admin-key-0123456789abcdef"
ATTACKER = "203.0.113.9"
OPERATOR = "198.51.100.7"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _api(db: AdminDB, hasher: KeyHasher, clock: Clock, trusted: list[str]) -> AdminAPI:
    config = Config.model_validate({"server": {"trusted_proxies": trusted}})
    svc = cast(Services, SimpleNamespace(config=config, hasher=hasher))
    return AdminAPI(svc, db, ENV_KEY, lambda: "", Throttle(clock=clock))


async def _call(api: AdminAPI, key: str, forwarded_for: str | None = None) -> tuple[int, Any]:
    """GET /admin/v1/accounts from 127.0.0.1 (a proxy, when trusted): (status, response)."""
    headers = [(b"authorization", f"Bearer {key}".encode())]
    if forwarded_for:
        headers.append((b"x-forwarded-for", forwarded_for.encode()))
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/admin/v1/accounts",
        "headers": headers,
        "query_string": b"",
        "client": ("127.0.0.1", 40000),
    }
    handler = api._route(api.list_accounts)
    try:
        response = await handler(Request(scope, None))
    except FaregateError as exc:
        response = openai_error(exc)
    return response.status, response


def _retry_after(response: Any) -> str | None:
    return dict(response.headers).get(b"retry-after", b"").decode() or None


async def test_failures_delay_then_block_the_address_not_others(
    db: AdminDB, hasher: KeyHasher
) -> None:
    clock = Clock()
    api = _api(db, hasher, clock, ["127.0.0.1/32"])
    for _ in range(6):
        assert (await _call(api, "fga-wrong", ATTACKER))[0] == 401
    status, response = await _call(api, ENV_KEY, ATTACKER)  # even the right key must wait
    assert status == 429
    assert _retry_after(response) == "1"
    error = orjson.loads(response.body)["error"]
    assert error["code"] == "admin_auth_throttled"
    assert error["type"] == "rate_limit_error"
    assert "retry in 1 s" in error["message"]
    assert (await _call(api, ENV_KEY, OPERATOR))[0] == 200  # another address is unaffected
    assert (await _call(api, ENV_KEY))[0] == 200  # and so is the proxy itself
    for wait in (1, 2, 4):
        clock.now += wait
        assert (await _call(api, "fga-wrong", ATTACKER))[0] == 401
    clock.now += 8
    assert (await _call(api, "fga-wrong", ATTACKER))[0] == 401  # the 10th failure blocks
    status, response = await _call(api, ENV_KEY, ATTACKER)
    assert (status, _retry_after(response)) == (429, "900")
    clock.now += 900
    assert (await _call(api, ENV_KEY, ATTACKER))[0] == 200  # the block ends; success resets
    assert (await _call(api, "fga-wrong", ATTACKER))[0] == 401
    assert (await _call(api, ENV_KEY, ATTACKER))[0] == 200

    rows, _ = await db.run(lambda c: audit.list_entries(c, audit.AuditFilters()))
    actions = [(r["actor"], r["action"], r["detail"]["failures"]) for r in reversed(rows)]
    assert actions == [
        *((f"addr:{ATTACKER}", "admin_auth.failed", n) for n in range(1, 10)),
        (f"addr:{ATTACKER}", "admin_auth.blocked", 10),
        (f"addr:{ATTACKER}", "admin_auth.failed", 1),
    ]
    assert rows[1]["detail"] == {"address": ATTACKER, "failures": 10, "retry_after": 900}


async def test_forwarded_for_counts_only_from_trusted_proxies(
    db: AdminDB, hasher: KeyHasher
) -> None:
    api = _api(db, hasher, Clock(), [])
    for i in range(6):  # a different X-Forwarded-For each time changes nothing
        assert (await _call(api, "fga-wrong", f"203.0.113.{i}"))[0] == 401
    assert (await _call(api, ENV_KEY, OPERATOR))[0] == 429
    rows, _ = await db.run(lambda c: audit.list_entries(c, audit.AuditFilters()))
    assert {r["actor"] for r in rows} == {"addr:127.0.0.1"}


async def test_concurrent_guesses_cannot_pass_together(db: AdminDB, hasher: KeyHasher) -> None:
    api = _api(db, hasher, Clock(), ["127.0.0.1/32"])
    results = await asyncio.gather(*(_call(api, f"fga-guess-{i}", ATTACKER) for i in range(20)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [401] * 6 + [429] * 14


async def test_a_stored_admin_key_is_throttled_alike(db: AdminDB, hasher: KeyHasher) -> None:
    stored = await db.run(lambda c: ops.bootstrap_admin(c, hasher))
    assert stored is not None
    api = _api(db, hasher, Clock(), ["127.0.0.1/32"])
    for _ in range(3):
        assert (await _call(api, "fga-wrong", ATTACKER))[0] == 401
    assert (await _call(api, stored, ATTACKER))[0] == 200
    assert len(api.throttle) == 0  # a success forgets the failures


async def test_a_missing_key_is_not_counted(db: AdminDB, hasher: KeyHasher) -> None:
    api = _api(db, hasher, Clock(), [])
    for _ in range(10):
        assert (await _call(api, ""))[0] == 401
    assert len(api.throttle) == 0
