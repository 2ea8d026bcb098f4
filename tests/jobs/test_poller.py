"""The poller, one tick at a time, in process against the simulator: backoff, the states it
records, the failures that end a job (an upstream 404, a lost deployment, a missing submit,
the time limit), transient answers that do not, and two pollers racing for one finished job
(one settlement, the loser's files deleted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faregate.app import App, Environment
from faregate.billing.jobs import FAILED, QUEUED, RUNNING, SUCCEEDED, Job, Jobs
from faregate.billing.store import now_ms
from faregate.config import Config
from faregate.jobs.poller import Poller, next_interval
from faregate.pipeline.services import Services
from faregate.routing.catalog import build_catalog
from faregate.sim.server import start

ADMIN = "fga-poller-test-admin-key-32-characters"
PRICE = 1_000  # per second


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    runner, port = await start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def app(tmp_path: Path, sim_url: str) -> AsyncIterator[App]:
    config = Config.model_validate(
        {
            "providers": {"sim": {"base_url": f"{sim_url}/v1", "api_key": "sk-sim"}},
            "models": {
                "vid": {"kind": "video", "provider": "sim", "price": {"video_second": PRICE}},
            },
            "video": {
                "tick_seconds": 3600,  # the app's own loop stays asleep: the test ticks
                "first_poll_seconds": 1,
                "backoff": 2,
                "max_poll_interval_seconds": 5,
                "lease_seconds": 30,
            },
        }
    )
    env = Environment(f"sqlite:///{tmp_path / 'faregate.db'}", tmp_path, "poller-secret", ADMIN)
    gateway = App(config, env)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


@pytest.fixture
def svc(app: App) -> Services:
    assert app.services is not None
    return app.services


async def _submit(app: App, prompt: str, credits: int = 100_000) -> tuple[str, str, str]:
    """(account, key, job id) of a job submitted through the OpenAI surface."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        admin = {"authorization": f"Bearer {ADMIN}"}
        acct = (
            await client.post(
                "/admin/v1/accounts", json={"name": "p", "credits": credits}, headers=admin
            )
        ).json()
        key = (
            await client.post(f"/admin/v1/accounts/{acct['id']}/keys", json={}, headers=admin)
        ).json()["key"]
        r = await client.post(
            "/v1/videos",
            json={"model": "vid", "prompt": prompt, "seconds": "3"},
            headers={"authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200, r.text
        return acct["id"], key, r.json()["id"]


async def _due_now(svc: Services, job_id: str) -> None:
    """Make the job due (the test's clock does not wait for backoff)."""

    def plan() -> Any:
        from faregate.billing.steps import n

        yield n("UPDATE jobs SET next_poll_at = 0 WHERE id = ?", job_id)

    await svc.store.write(plan())


async def _job(svc: Services, job_id: str) -> Job:
    found = await Jobs(svc.store).find_job(job_id)
    assert found is not None
    return found


async def _balance(svc: Services, account: str) -> int:
    return (await svc.store.balance(account)).balance


def test_backoff_grows_and_is_capped(svc: Services) -> None:
    assert [next_interval(svc, p) for p in range(1, 6)] == [1, 2, 4, 5, 5]


async def test_a_job_runs_queued_running_then_settles_its_seconds(app: App, svc: Services) -> None:
    account, _, job_id = await _submit(app, "ok [sim:ms=300]")
    assert await _balance(svc, account) == 100_000 - 3 * PRICE
    poller = Poller(svc)
    assert await poller.tick() == 0  # not due yet: the first poll waits first_poll_seconds
    await _due_now(svc, job_id)
    assert await poller.tick() == 1
    job = await _job(svc, job_id)
    assert job.state == QUEUED and job.polls == 1 and job.lease_owner is None
    assert job.next_poll_at >= now_ms() + 500  # backed off
    await asyncio.sleep(0.35)
    await _due_now(svc, job_id)
    await poller.tick()
    job = await _job(svc, job_id)
    assert job.state == SUCCEEDED and job.result["seconds"] == 3.0
    assert job.result["cost"] == 3 * PRICE
    assert await _balance(svc, account) == 100_000 - 3 * PRICE
    assert svc.media is not None
    opened = await svc.media.open(job.result["video"]["id"])
    assert opened is not None and opened[0].content_type == "video/mp4"
    assert b"".join([chunk async for chunk in opened[1]]).startswith(b"\x00\x00\x00")
    await _due_now(svc, job_id)
    assert await poller.tick() == 0  # a finished job is never polled again


async def test_a_running_job_is_recorded_as_running(app: App, svc: Services) -> None:
    _, _, job_id = await _submit(app, "slow [sim:never]")
    poller = Poller(svc)
    for _ in range(2):
        await _due_now(svc, job_id)
        await poller.tick()
    assert (await _job(svc, job_id)).state == RUNNING


async def test_a_malformed_status_is_polled_again_until_the_time_limit(
    app: App, svc: Services
) -> None:
    account, _, job_id = await _submit(app, "bad [sim:malformed]")
    poller = Poller(svc)
    for _ in range(3):
        await _due_now(svc, job_id)
        await poller.tick()
    job = await _job(svc, job_id)
    assert job.state == QUEUED and job.polls == 3
    svc.config = svc.config.model_copy(
        update={"video": svc.config.video.model_copy(update={"timeout_seconds": 0.001})}
    )
    await _due_now(svc, job_id)
    await poller.tick()
    job = await _job(svc, job_id)
    assert job.state == FAILED and job.error is not None and job.error.startswith("expired")
    assert await _balance(svc, account) == 100_000


async def test_an_upstream_that_forgot_the_job_fails_it(
    app: App, svc: Services, sim_url: str
) -> None:
    account, _, job_id = await _submit(app, "lost [sim:never]")

    def plan() -> Any:
        from faregate.billing.steps import n

        yield n("UPDATE jobs SET upstream_id = 'gone', next_poll_at = 0 WHERE id = ?", job_id)

    await svc.store.write(plan())
    await Poller(svc).tick()
    job = await _job(svc, job_id)
    assert job.state == FAILED and "no longer knows" in (job.error or "")
    assert await _balance(svc, account) == 100_000


async def test_a_job_whose_deployment_left_the_catalog_fails(app: App, svc: Services) -> None:
    account, _, job_id = await _submit(app, "x [sim:never]")

    def plan() -> Any:
        from faregate.billing.steps import n

        yield n(
            'UPDATE jobs SET deployment = \'{"model": "vid", "deployment": "other"}\','
            " next_poll_at = 0 WHERE id = ?",
            job_id,
        )

    await svc.store.write(plan())
    await Poller(svc).tick()
    assert "no longer served" in ((await _job(svc, job_id)).error or "")
    assert await _balance(svc, account) == 100_000


async def test_two_pollers_finishing_one_job_settle_it_once(
    app: App, svc: Services, tmp_path: Path
) -> None:
    account, _, job_id = await _submit(app, "race [sim:ms=0]")
    job = await _job(svc, job_id)
    first, second = Poller(svc), Poller(svc)
    await asyncio.gather(first.poll(job), second.poll(job))  # both hold the same job's row
    job = await _job(svc, job_id)
    assert job.state == SUCCEEDED
    assert await _balance(svc, account) == 100_000 - 3 * PRICE
    stored = [p for p in (tmp_path / "media").rglob("*") if p.is_file() and p.suffix != ".json"]
    kept = {job.result["video"]["id"], job.result["cover"]["id"]}
    assert {p.name for p in stored if p.name in kept} == kept
    assert len([p for p in stored if not p.name.endswith(".secret")]) == 2  # the loser's gone


async def test_an_unreachable_upstream_is_polled_again_later(app: App, svc: Services) -> None:
    account, _, job_id = await _submit(app, "x [sim:ms=0]")
    dead = svc.config.providers["sim"].model_copy(update={"base_url": "http://127.0.0.1:9/v1"})
    svc.catalog = build_catalog(
        svc.config.model_copy(update={"providers": {**svc.config.providers, "sim": dead}})
    )
    await _due_now(svc, job_id)
    await Poller(svc).tick()
    job = await _job(svc, job_id)
    assert job.state == QUEUED and job.polls == 1 and job.next_poll_at > now_ms()
    assert await _balance(svc, account) == 100_000 - 3 * PRICE  # still held, not settled


async def test_finished_files_are_kept_for_the_video_retention(app: App, svc: Services) -> None:
    svc.config = svc.config.model_copy(
        update={"video": svc.config.video.model_copy(update={"retention_seconds": 7 * 86400})}
    )
    _, _, job_id = await _submit(app, "kept [sim:ms=0]")
    await _due_now(svc, job_id)
    await Poller(svc).tick()
    item = (await _job(svc, job_id)).result["video"]
    assert item["expires"] - item["created"] == pytest.approx(7 * 86400, abs=5)
