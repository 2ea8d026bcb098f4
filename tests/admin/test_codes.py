"""Redemption codes on SQLite and PostgreSQL: shown once, one use per account, exactly
`max_uses` uses under concurrent redemptions, each a ledger grant naming the code."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import Connection, select, update

from faregate.admin import codes, ops
from faregate.admin.codes import CodeRefused
from faregate.admin.ops import AdminError
from faregate.auth.keys import KeyHasher
from faregate.billing.bounds import MAX_AMOUNT
from faregate.billing.store import now_ms
from faregate.db import migrate
from faregate.db.engine import AdminDB
from faregate.db.schema import accounts, ledger, redemption_codes, redemptions


async def _accounts(db: AdminDB, n: int) -> list[str]:
    def act(c: Connection) -> list[str]:
        return [str(ops.create_account(c, f"a{i}")["id"]) for i in range(n)]

    return list(await db.run(act))


async def _refusal(db: AdminDB, fn: Any) -> CodeRefused:
    with pytest.raises(CodeRefused) as info:
        await db.run(fn)
    return info.value


def _state(c: Connection, code_id: str) -> dict[str, Any]:
    uses = c.execute(select(redemption_codes.c.uses).where(redemption_codes.c.id == code_id))
    grants = c.execute(
        select(ledger.c.account_id, ledger.c.amount).where(
            ledger.c.kind == "grant", ledger.c.note == f"redemption code {code_id}"
        )
    ).all()
    rows = c.execute(select(redemptions.c.account_id).where(redemptions.c.code_id == code_id))
    return {
        "uses": uses.scalar_one(),
        "grants": sorted(g.account_id for g in grants),
        "redeemed": sorted(rows.scalars()),
        "balances": dict(c.execute(select(accounts.c.id, accounts.c.balance)).all()),
    }


async def test_a_code_is_stored_hashed_and_validated(db: AdminDB, hasher: KeyHasher) -> None:
    record, code = await db.run(lambda c: codes.create_code(c, hasher, 5_000, max_uses=3))
    assert code.startswith(codes.CODE_PREFIX) and "code_hash" not in record
    assert record["prefix"] == code[:10] and record["uses"] == 0 and record["max_uses"] == 3
    stored = await db.run(
        lambda c: c.execute(
            select(redemption_codes.c.code_hash).where(redemption_codes.c.id == record["id"])
        ).scalar_one()
    )
    assert stored == hasher(code) and code not in stored
    for kwargs in ({"amount": 0}, {"amount": 5, "max_uses": 0}, {"amount": 5, "expires_at": 1}):
        with pytest.raises(AdminError) as info:
            await db.run(lambda c, kw=kwargs: codes.create_code(c, hasher, **kw))
        assert info.value.status == 422
    listed, cursor = await db.run(lambda c: codes.list_codes(c))
    assert [r["id"] for r in listed] == [record["id"]] and cursor is None
    assert "code_hash" not in listed[0]


async def test_redeem_credits_once_per_account(db: AdminDB, hasher: KeyHasher) -> None:
    a, b, c3 = await _accounts(db, 3)
    record, code = await db.run(lambda c: codes.create_code(c, hasher, 7_000, max_uses=2))
    done = await db.run(lambda c: codes.redeem(c, hasher, f" {code} ", a))
    assert done == {"code_id": record["id"], "account_id": a, "amount": 7_000, "balance": 7_000}
    again = await _refusal(db, lambda c: codes.redeem(c, hasher, code, a))
    assert (again.status, again.code) == (409, "code_already_redeemed")
    await db.run(lambda c: codes.redeem(c, hasher, code, b))
    used_up = await _refusal(db, lambda c: codes.redeem(c, hasher, code, c3))
    assert (used_up.status, used_up.code) == (409, "code_used_up")
    state = await db.run(lambda c: _state(c, record["id"]))
    assert state["uses"] == 2 and state["grants"] == state["redeemed"] == sorted([a, b])
    assert state["balances"] == {a: 7_000, b: 7_000, c3: 0}
    seen = await db.run(lambda c: codes.get_code(c, record["id"]))
    assert sorted(r["account_id"] for r in seen["redemptions"]) == sorted([a, b])

    unknown = await _refusal(db, lambda c: codes.redeem(c, hasher, "fgc-nope", a))
    assert (unknown.status, unknown.code) == (404, "invalid_code")
    with pytest.raises(AdminError) as info:
        await db.run(lambda c: codes.redeem(c, hasher, code, "acct_nope"))
    assert info.value.status == 404


async def test_revoked_and_expired_codes_are_refused(db: AdminDB, hasher: KeyHasher) -> None:
    (a,) = await _accounts(db, 1)
    revoked, code1 = await db.run(lambda c: codes.create_code(c, hasher, 1_000, max_uses=5))
    expiring, code2 = await db.run(
        lambda c: codes.create_code(c, hasher, 1_000, expires_at=now_ms() + 60_000)
    )
    after = await db.run(lambda c: codes.revoke_code(c, revoked["id"]))
    assert after["revoked_at"] is not None
    assert (await db.run(lambda c: codes.revoke_code(c, revoked["id"])))["revoked_at"] == after[
        "revoked_at"
    ]
    err = await _refusal(db, lambda c: codes.redeem(c, hasher, code1, a))
    assert err.code == "code_revoked"
    await db.run(
        lambda c: c.execute(
            update(redemption_codes)
            .where(redemption_codes.c.id == expiring["id"])
            .values(expires_at=now_ms() - 1)
        )
    )
    err = await _refusal(db, lambda c: codes.redeem(c, hasher, code2, a))
    assert err.code == "code_expired"
    assert (await db.run(lambda c: _state(c, revoked["id"])))["balances"] == {a: 0}


@pytest.mark.parametrize("max_uses", [1, 5])
async def test_concurrent_redemptions_admit_exactly_max_uses(
    db: AdminDB, hasher: KeyHasher, max_uses: int
) -> None:
    """Concurrent tasks on one AdminDB (PostgreSQL: a connection each)."""
    ids = await _accounts(db, 20)
    record, code = await db.run(lambda c: codes.create_code(c, hasher, 1_000, max_uses=max_uses))
    results = await asyncio.gather(
        *(db.run(lambda c, a=a: codes.redeem(c, hasher, code, a)) for a in ids),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, CodeRefused)]
    assert len(won) == max_uses and len(lost) == 20 - max_uses
    assert {e.code for e in lost} == {"code_used_up"}
    state = await db.run(lambda c: _state(c, record["id"]))
    assert state["uses"] == max_uses
    assert state["grants"] == state["redeemed"] == sorted(r["account_id"] for r in won)
    assert sum(state["balances"].values()) == 1_000 * max_uses


async def test_one_account_racing_itself_redeems_once(db: AdminDB, hasher: KeyHasher) -> None:
    (a,) = await _accounts(db, 1)
    record, code = await db.run(lambda c: codes.create_code(c, hasher, 1_000, max_uses=100))
    results = await asyncio.gather(
        *(db.run(lambda c: codes.redeem(c, hasher, code, a)) for _ in range(10)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, dict) for r in results) == 1
    assert {r.code for r in results if isinstance(r, CodeRefused)} == {"code_already_redeemed"}
    state = await db.run(lambda c: _state(c, record["id"]))
    assert state["uses"] == 1 and state["balances"] == {a: 1_000}


def test_redemptions_from_separate_connections_in_threads(db_url: str, hasher: KeyHasher) -> None:
    """Eight threads, each with its own engine (so its own connections), race for a code with
    three uses: exactly three win on SQLite (file locks) and on PostgreSQL (row locks)."""
    asyncio.run(migrate.upgrade(db_url))
    ids = asyncio.run(_fresh_accounts(db_url, 8))
    _, code = asyncio.run(
        _run_once(db_url, lambda c: codes.create_code(c, hasher, 500, max_uses=3))
    )
    barrier = threading.Barrier(len(ids))
    outcomes: list[str] = []

    def worker(account_id: str) -> None:
        barrier.wait()
        try:
            asyncio.run(_run_once(db_url, lambda c: codes.redeem(c, hasher, code, account_id)))
            outcomes.append("won")
        except CodeRefused as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=worker, args=(a,)) for a in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["code_used_up"] * 5 + ["won"] * 3


async def _run_once(url: str, fn: Any) -> Any:
    own = AdminDB(url)
    try:
        return await own.run(fn)
    finally:
        await own.dispose()


async def _fresh_accounts(url: str, n: int) -> list[str]:
    own = AdminDB(url)
    try:
        return await _accounts(own, n)
    finally:
        await own.dispose()


@pytest.mark.parametrize(
    ("amount", "max_uses", "param"),
    [
        (2**63, 1, "amount"),
        (MAX_AMOUNT + 1, 1, "amount"),
        (0, 1, "amount"),
        (1, 2**31, "max_uses"),
        (1, 0, "max_uses"),
    ],
)
async def test_a_code_outside_the_range_is_refused_naming_the_field(
    db: AdminDB, hasher: KeyHasher, amount: int, max_uses: int, param: str
) -> None:
    def act(c: Connection) -> Any:
        return codes.create_code(c, hasher, amount, max_uses=max_uses)

    with pytest.raises(AdminError) as info:
        await db.run(act)
    assert (info.value.status, info.value.param) == (422, param)
    assert await db.run(lambda c: c.execute(select(redemption_codes.c.id)).all()) == []


async def test_a_redemption_past_the_bound_changes_nothing(db: AdminDB, hasher: KeyHasher) -> None:
    (account,) = await _accounts(db, 1)
    await db.run(lambda c: ops.grant(c, account, MAX_AMOUNT))
    record, code = await db.run(lambda c: codes.create_code(c, hasher, 1))
    with pytest.raises(AdminError) as info:
        await db.run(lambda c: codes.redeem(c, hasher, code, account))
    assert (info.value.status, info.value.code) == (409, ops.BALANCE_TOO_LARGE)
    state = await db.run(lambda c: _state(c, record["id"]))
    assert state["uses"] == 0 and state["redeemed"] == [] and state["grants"] == []
    assert state["balances"][account] == MAX_AMOUNT
