"""Jobs and the holds they own, on SQLite and PostgreSQL: the hold is taken with the job row,
the reaper never touches it, and it ends exactly once, through the job's terminal transition,
whoever races for it."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from faregate.admin import ops
from faregate.app import make_store
from faregate.billing.jobs import (
    DELETED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    Jobs,
    TooManyJobs,
)
from faregate.billing.store import SpendLimited, SpendWindow, Store
from faregate.billing.types import Settlement
from faregate.db import migrate, schema
from faregate.db.urls import sqlalchemy_url


class Db:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_async_engine(sqlalchemy_url(url))

    async def run(self, fn: Any) -> Any:
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    async def account(self, credits: int) -> str:
        def act(c: Connection) -> str:
            account = ops.create_account(c, "test")
            ops.grant(c, account["id"], credits, "test credits")
            return str(account["id"])

        return str(await self.run(act))

    async def money(self, account_id: str) -> tuple[int, list[dict[str, Any]]]:
        """The balance, checked against the ledger (and each hold's rows), and the ledger."""

        def act(c: Connection) -> tuple[int, list[dict[str, Any]]]:
            balance = c.execute(
                select(schema.accounts.c.balance).where(schema.accounts.c.id == account_id)
            ).scalar_one()
            rows = [
                dict(r)
                for r in c.execute(
                    select(schema.ledger)
                    .where(schema.ledger.c.account_id == account_id)
                    .order_by(schema.ledger.c.id)
                ).mappings()
            ]
            return int(balance), rows

        balance, rows = await self.run(act)
        assert balance >= 0 and balance == sum(r["amount"] for r in rows)
        kinds: dict[str, list[str]] = {}
        for r in rows:
            if r["hold_id"] is not None:
                kinds.setdefault(r["hold_id"], []).append(r["kind"])
        for found in kinds.values():
            assert sorted(found) in (["hold"], ["hold", "release"], ["hold", "settle"]), found
        return balance, rows

    async def hold_row(self, hold_id: str) -> dict[str, Any]:
        return dict(
            await self.run(
                lambda c: (
                    c.execute(select(schema.holds).where(schema.holds.c.id == hold_id))
                    .mappings()
                    .one()
                )
            )
        )

    async def count(self, table: str) -> int:
        return int(
            await self.run(lambda c: c.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
        )


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Db]:
    await migrate.upgrade(db_url)
    d = Db(db_url)
    try:
        yield d
    finally:
        await d.engine.dispose()


@pytest.fixture
async def store(db: Db) -> AsyncIterator[Store]:
    s = make_store(db.url)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def other_store(db: Db) -> AsyncIterator[Store]:
    """What another gateway process on the same database runs."""
    s = make_store(db.url)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


def jobs_of(store: Store) -> Jobs:
    return Jobs(store)


async def new_job(jobs: Jobs, account: str, amount: int = 1_000, **kw: Any) -> Job:
    job = await jobs.create_job(
        **{
            "account_id": account,
            "key_id": "key_1",
            "model": "sora",
            "kind": "video",
            "surface": "openai",
            "request": {"prompt": "a cat", "seconds": 8},
            "amount": amount,
            **kw,
        }
    )
    assert job is not None
    return job


VIDEO = Settlement(cost=600, prompt_tokens=0, completion_tokens=0, units=(("video_ms", 8000),))


# -- creation -----------------------------------------------------------------------------


async def test_a_job_and_its_hold_are_taken_together(db: Db, store: Store) -> None:
    account = await db.account(5_000)
    job = await new_job(jobs_of(store), account)
    assert (job.state, job.amount, job.polls, job.request) == (
        QUEUED,
        1_000,
        0,
        {
            "prompt": "a cat",
            "seconds": 8,
        },
    )
    hold = await db.hold_row(job.hold_id)
    assert (hold["status"], hold["owner"], hold["amount"]) == ("open", "job", 1_000)
    balance, rows = await db.money(account)
    assert balance == 4_000
    assert [(r["kind"], r["hold_id"]) for r in rows][-1] == ("hold", job.hold_id)
    assert await jobs_of(store).get_job(job.id, account) == job


async def test_a_short_balance_creates_nothing(db: Db, store: Store) -> None:
    account = await db.account(999)
    assert (
        await jobs_of(store).create_job(
            account_id=account,
            key_id=None,
            model="m",
            kind="video",
            surface="openai",
            request={},
            amount=1_000,
        )
        is None
    )
    assert (await db.count("jobs"), await db.count("holds")) == (0, 0)
    assert (await db.money(account))[0] == 999


async def test_a_full_spend_window_refuses_with_nothing_held(db: Db, store: Store) -> None:
    account = await db.account(10_000)
    window = SpendWindow("account", account, "D2026-12-02", 500)
    with pytest.raises(SpendLimited):
        await new_job(jobs_of(store), account, spend=(window,))
    assert (await db.count("jobs"), await db.count("holds")) == (0, 0)
    assert (await db.money(account))[0] == 10_000


async def test_a_negative_hold_is_refused(db: Db, store: Store) -> None:
    account = await db.account(10)
    with pytest.raises(ValueError, match="negative"):
        await new_job(jobs_of(store), account, amount=-1)


# -- the reaper ------------------------------------------------------------------------------


async def test_the_reaper_never_releases_a_job_hold(
    db: Db, store: Store, other_store: Store
) -> None:
    account = await db.account(5_000)
    job = await new_job(jobs_of(store), account)
    request_hold = await store.hold(
        account_id=account, key_id=None, amount=100, model="m", request_id="r", ttl_ms=-1
    )
    assert request_hold is not None
    await store.close()  # its process is gone: no instance row, and every expiry is past
    await asyncio.sleep(0.01)
    assert await other_store.reap(stale_ms=0) == 1  # the request's hold only
    assert (await db.hold_row(job.hold_id))["status"] == "open"
    assert (await db.money(account))[0] == 4_000
    jobs = jobs_of(other_store)
    assert await jobs.finish_job(job.id, VIDEO)
    assert (await db.money(account))[0] == 4_400


# -- the terminal transition -------------------------------------------------------------


async def test_finish_settles_the_hold_at_the_units_billed(db: Db, store: Store) -> None:
    account = await db.account(5_000)
    jobs = jobs_of(store)
    job = await new_job(jobs, account)
    assert await jobs.finish_job(job.id, VIDEO, {"url": "video.mp4"})
    assert not await jobs.finish_job(job.id, VIDEO)
    assert not await jobs.fail_job(job.id, "too late")
    done = await jobs.get_job(job.id, account)
    assert done is not None and done.finished
    assert (done.state, done.result, done.error) == (SUCCEEDED, {"url": "video.mp4"}, None)
    assert done.finished_at is not None
    balance, rows = await db.money(account)
    assert balance == 5_000 - 600
    assert (rows[-1]["kind"], rows[-1]["cost"], rows[-1]["units"]) == (
        "settle",
        600,
        '{"video_ms":8000}',
    )
    assert (await db.hold_row(job.hold_id))["status"] == "settled"


async def test_fail_releases_the_hold_in_full(db: Db, store: Store) -> None:
    account = await db.account(5_000)
    jobs = jobs_of(store)
    job = await new_job(jobs, account)
    assert await jobs.fail_job(job.id, "upstream rejected the prompt")
    assert not await jobs.fail_job(job.id, "again")
    assert not await jobs.finish_job(job.id, VIDEO)
    done = await jobs.get_job(job.id, account)
    assert done is not None
    assert (done.state, done.error) == (FAILED, "upstream rejected the prompt")
    balance, rows = await db.money(account)
    assert balance == 5_000
    assert (rows[-1]["kind"], rows[-1]["note"]) == ("release", "upstream rejected the prompt")


async def test_a_cost_above_the_hold_follows_the_overrun_rule(db: Db, store: Store) -> None:
    account = await db.account(1_200)
    jobs = jobs_of(store)
    job = await new_job(jobs, account)
    assert await jobs.finish_job(job.id, Settlement(1_500, 0, 0))
    balance, rows = await db.money(account)
    assert balance == 0
    assert rows[-1]["cost"] == 1_200
    assert "300 could not be collected" in rows[-1]["note"]


async def test_unknown_jobs_and_other_accounts(db: Db, store: Store) -> None:
    account, other = await db.account(5_000), await db.account(5_000)
    jobs = jobs_of(store)
    job = await new_job(jobs, account)
    assert await jobs.get_job(job.id, other) is None
    assert await jobs.get_job("job_nope", account) is None
    assert not await jobs.finish_job("job_nope", VIDEO)
    assert not await jobs.fail_job("job_nope", "x")


# -- polling --------------------------------------------------------------------------------


async def test_leases_progress_and_renewal(db: Db, store: Store) -> None:
    account = await db.account(50_000)
    jobs = jobs_of(store)
    due = [await new_job(jobs, account) for _ in range(3)]
    later = await new_job(jobs, account, next_poll_at=2**40 * 1000)
    ended = await new_job(jobs, account)
    assert await jobs.fail_job(ended.id, "x")

    first = await jobs.lease_due("w1", 2, 60_000)
    assert [j.id for j in first] == [
        j.id for j in sorted(due, key=lambda j: (j.next_poll_at, j.id))
    ][:2]
    assert all(j.lease_owner == "w1" and j.polls == 1 for j in first)
    rest = await jobs.lease_due("w2", 10, 60_000)
    assert {j.id for j in rest} == {j.id for j in due} - {j.id for j in first}
    assert await jobs.lease_due("w3", 10, 60_000) == []  # leased, not due, or over
    assert later.id not in {j.id for j in first + rest}

    a = first[0]
    assert await jobs.renew(a.id, "w1", 60_000)
    assert not await jobs.renew(a.id, "w2", 60_000)
    assert not await jobs.update_progress(a.id, "w2", state=RUNNING, next_poll_at=0)
    assert await jobs.update_progress(
        a.id, "w1", state=RUNNING, next_poll_at=0, upstream_id="vid_1", deployment="d1"
    )
    polled = await jobs.get_job(a.id, account)
    assert polled is not None
    assert (polled.state, polled.upstream_id, polled.deployment, polled.lease_owner) == (
        RUNNING,
        "vid_1",
        "d1",
        None,
    )
    again = await jobs.lease_due("w3", 10, 60_000)  # the lease ended with the progress
    assert [j.id for j in again] == [a.id] and again[0].polls == 2
    assert await jobs.update_progress(a.id, "w3", state=RUNNING, next_poll_at=0)
    polled = await jobs.get_job(a.id, account)
    assert polled is not None and polled.upstream_id == "vid_1"  # kept when not given
    with pytest.raises(ValueError, match="finish_job or fail_job"):
        await jobs.update_progress(a.id, "w3", state=SUCCEEDED, next_poll_at=0)

    b = rest[0]
    assert await jobs.finish_job(b.id, VIDEO)
    assert not await jobs.renew(b.id, "w2", 60_000)
    assert not await jobs.update_progress(b.id, "w2", state=RUNNING, next_poll_at=0)


async def test_an_expired_lease_is_taken_over(db: Db, store: Store) -> None:
    account = await db.account(5_000)
    jobs = jobs_of(store)
    job = await new_job(jobs, account, lease=("creator", -1))
    assert job.lease_owner == "creator"
    taken = await jobs.lease_due("w1", 10, 60_000)
    assert [j.id for j in taken] == [job.id]
    assert not await jobs.renew(job.id, "creator", 60_000)


async def test_a_creator_lease_keeps_the_job_from_pollers(db: Db, store: Store) -> None:
    account = await db.account(5_000)
    jobs = jobs_of(store)
    job = await new_job(jobs, account, lease=("creator", 60_000))
    assert await jobs.lease_due("w1", 10, 60_000) == []
    assert await jobs.update_progress(job.id, "creator", state=RUNNING, next_poll_at=0)
    assert [j.id for j in await jobs.lease_due("w1", 10, 60_000)] == [job.id]


# -- exactly once across processes -----------------------------------------------------------


async def test_one_terminal_transition_whoever_races(
    db: Db, store: Store, other_store: Store
) -> None:
    """Two processes (two stores, two connections) end the same jobs at once, by finish and
    by fail in random order: exactly one call wins each job, and the money adds up."""
    account = await db.account(1_000_000)
    jobs, others = jobs_of(store), jobs_of(other_store)
    rnd = random.Random(5)
    made = [await new_job(jobs, account, amount=1_000) for _ in range(40)]
    settled = 0
    for job in made:
        calls = [
            jobs.finish_job(job.id, VIDEO),
            others.finish_job(job.id, VIDEO),
            jobs.fail_job(job.id, "a"),
            others.fail_job(job.id, "b"),
        ]
        rnd.shuffle(calls)
        outcomes = await asyncio.gather(*calls)
        assert sum(outcomes) == 1, outcomes
        final = await jobs.get_job(job.id, account)
        assert final is not None and final.finished
        settled += final.state == SUCCEEDED
    balance, rows = await db.money(account)
    assert balance == 1_000_000 - 600 * settled
    assert len([r for r in rows if r["kind"] in ("settle", "release")]) == 40


async def test_concurrent_pollers_never_share_a_job(
    db: Db, store: Store, other_store: Store
) -> None:
    account = await db.account(1_000_000)
    jobs, others = jobs_of(store), jobs_of(other_store)
    made = {(await new_job(jobs, account)).id for _ in range(30)}
    got: list[list[Job]] = []
    for _ in range(3):
        got += await asyncio.gather(
            jobs.lease_due("p1", 4, 60_000), others.lease_due("p2", 4, 60_000)
        )
    ids = [j.id for batch in got for j in batch]
    assert len(ids) == len(set(ids)) == 24
    assert set(ids) <= made


_ENDER = """
import asyncio, json, sys
from faregate.app import make_store
from faregate.billing.jobs import Jobs
from faregate.billing.types import Settlement

async def main(url, how, ids):
    store = make_store(url)
    await store.start()
    jobs = Jobs(store)
    try:
        if how == "finish":
            done = Settlement(600, 0, 0, units=(("video_ms", 8000),))
            calls = [jobs.finish_job(i, done) for i in ids]
        else:
            calls = [jobs.fail_job(i, "failed in " + how) for i in ids]
        print(json.dumps(await asyncio.gather(*calls)))
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3].split(",")))
"""


async def test_one_terminal_transition_across_processes(db: Db, store: Store) -> None:
    """Two more processes end the same jobs at once, one by finish and one by fail, while
    this one fails them too: each job is ended by exactly one call."""
    account = await db.account(1_000_000)
    jobs = jobs_of(store)
    made = [(await new_job(jobs, account)).id for _ in range(30)]
    ids = ",".join(made)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _ENDER, db.url, how, ids, stdout=asyncio.subprocess.PIPE
        )
        for how in ("finish", "fail")
    ]
    here = await asyncio.gather(*(jobs.fail_job(i, "failed here") for i in reversed(made)))
    outs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    finished, failed = (json.loads(out) for out, _ in outs)
    for i, job_id in enumerate(made):
        assert finished[i] + failed[i] + here[len(made) - 1 - i] == 1, job_id
    balance, rows = await db.money(account)
    assert balance == 1_000_000 - 600 * sum(finished)
    assert len([r for r in rows if r["kind"] in ("settle", "release")]) == len(made)


# -- jobs in flight, lists and deletion ---------------------------------------------------


async def test_jobs_in_flight_are_capped_per_account_under_concurrency(
    db: Db, store: Store, other_store: Store
) -> None:
    account = await db.account(100_000)
    stores = [store, other_store] * 10
    outcomes = await asyncio.gather(
        *(new_job(jobs_of(s), account, max_active=3) for s in stores), return_exceptions=True
    )
    made = [o for o in outcomes if isinstance(o, Job)]
    refused = [o for o in outcomes if isinstance(o, TooManyJobs)]
    assert (len(made), len(refused)) == (3, 17)
    assert (await db.count("jobs"), await db.count("holds")) == (3, 3)
    assert (await db.money(account))[0] == 97_000
    assert await jobs_of(store).fail_job(made[0].id, "done")  # a slot frees when a job ends
    assert (await new_job(jobs_of(store), account, max_active=3)).state == QUEUED


async def test_lists_page_in_both_orders_and_deleted_jobs_leave_them(db: Db, store: Store) -> None:
    account, other = await db.account(100_000), await db.account(100_000)
    jobs = jobs_of(store)
    made = []
    for _ in range(4):  # a millisecond apart: lists order by creation time, then id
        made.append(await new_job(jobs, account))
        await asyncio.sleep(0.002)
    await new_job(jobs, other)
    newest = await jobs.list_jobs(account_id=account, limit=3)
    assert [j.id for j in newest] == [j.id for j in made[::-1][:3]]
    rest = await jobs.list_jobs(account_id=account, limit=3, after=newest[-1].id)
    assert [j.id for j in rest] == [made[0].id]
    oldest = await jobs.list_jobs(account_id=account, limit=2, newest_first=False)
    assert [j.id for j in oldest] == [j.id for j in made[:2]]
    assert len(await jobs.list_jobs(account_id=None, limit=10)) == 5
    assert not await jobs.delete_job(made[0].id, account)  # active: cancel it first
    assert await jobs.fail_job(made[0].id, "canceled")
    assert not await jobs.delete_job(made[0].id, other)  # not theirs
    assert await jobs.delete_job(made[0].id, account)
    listed = await jobs.list_jobs(account_id=account, limit=10)
    assert made[0].id not in [j.id for j in listed]
    assert [j.id for j in await jobs.list_jobs(account_id=account, limit=10, state=DELETED)] == [
        made[0].id
    ]
    found = await jobs.find_job(made[0].id)
    assert found is not None and found.state == DELETED
    assert (await db.money(account))[0] == 100_000 - 3 * 1_000
