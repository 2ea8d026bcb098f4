"""The money of video jobs under load and failure: 200 concurrent submits against a balance
for 20, a job expired by its model's time limit, a gateway SIGKILLed mid-job and restarted
(the job finishes and settles once), and two gateways on one PostgreSQL polling the same 100
jobs (each ends once, upstream polls bounded)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Gateway, Sim, ledger_consistent, stop
from video_harness import (
    LLMIDS,
    PER_SECOND,
    auth,
    frames,
    start_video_gateway,
    wait_jobs,
    wait_task,
)


@pytest.fixture
def gw(sim: Sim, tmp_path: Path) -> Iterator[Gateway]:
    g = start_video_gateway(sim, tmp_path, ark_timeout=1.0)
    yield g
    stop(g.proc)


def _body(model: str, prompt: str, seconds: int = 1) -> dict[str, Any]:
    return {"llmid": LLMIDS[model], "prompt": prompt, "duration": seconds}


def _settles(gw: Gateway, account: str) -> dict[str, list[str]]:
    holds: dict[str, list[str]] = {}
    for row in gw.ledger(account):
        if row["hold_id"]:
            holds.setdefault(row["hold_id"], []).append(row["kind"])
    return holds


def test_200_concurrent_submits_against_a_balance_for_20_admit_20(gw: Gateway) -> None:
    account, key = gw.account(20 * PER_SECOND)

    async def submit_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{gw.url}/llmage/video",
                        json=_body("video-openai", f"n{i} [sim:ms=50]"),
                        headers=auth(key),
                    )
                    for i in range(200)
                )
            )

    replies = asyncio.run(submit_all())
    admitted = [r.json()["taskid"] for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code != 200]
    assert len(admitted) == 20
    assert {r.status_code for r in refused} == {429}
    assert {r.json()["error"] for r in refused} == {"Insufficient balance"}
    rows = wait_jobs(gw, admitted, timeout=60)
    assert {r["state"] for r in rows} == {"succeeded"}
    ledger_consistent(gw, account)
    assert gw.account_state(account)["balance"] == 0
    assert sorted(map(sorted, _settles(gw, account).values())) == [["hold", "settle"]] * 20


def test_a_job_past_its_models_time_limit_expires_and_costs_nothing(gw: Gateway) -> None:
    account, key = gw.account(10 * PER_SECOND)
    r = httpx.post(
        f"{gw.url}/llmage/video", json=_body("video-ark", "[sim:never]"), headers=auth(key)
    )
    task = wait_task(gw, key, r.json()["taskid"])
    assert task["status"] == "FAILED" and "expired" in task["error"]
    ledger_consistent(gw, account)
    assert gw.account_state(account)["balance"] == 10 * PER_SECOND


def test_a_gateway_killed_mid_job_finishes_it_once_after_restart(sim: Sim, tmp_path: Path) -> None:
    first = start_video_gateway(sim, tmp_path, lease_seconds=1)
    account, key = first.account(10 * PER_SECOND)
    ids = []
    for model in ("video-openai", "video-veo", "video-ark"):
        r = httpx.post(
            f"{first.url}/llmage/video", json=_body(model, "[sim:ms=1500]", 2), headers=auth(key)
        )
        assert r.status_code == 200, r.text
        ids.append(r.json()["taskid"])
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    second = start_video_gateway(sim, tmp_path, lease_seconds=1)
    try:
        rows = wait_jobs(second, ids, timeout=30)
        assert {r["state"] for r in rows} == {"succeeded"}
        ledger_consistent(second, account)
        assert second.account_state(account)["balance"] == 10 * PER_SECOND - 3 * 2 * PER_SECOND
        assert sorted(map(sorted, _settles(second, account).values())) == [["hold", "settle"]] * 3
        task = wait_task(second, key, ids[0])
        assert frames(httpx.get(task["video"]).content) == 8
    finally:
        stop(second.proc)


@pytest.mark.postgres
def test_two_gateways_on_one_postgres_end_100_jobs_once(
    sim: Sim, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAREGATE_TEST_MEDIA_SECRET", "shared-media-secret-for-the-test")
    shared = tmp_path / "media"
    gws = [
        start_video_gateway(sim, tmp_path / name, database_url=pg_url, media_directory=str(shared))
        for name in ("a", "b")
    ]
    try:
        account, key = gws[0].account(100 * PER_SECOND)
        before = sim.stats()["by_route"]
        models = ("video-openai", "video-veo", "video-ark")

        async def submit_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            f"{gws[i % 2].url}/llmage/video",
                            json=_body(models[i % 3], f"j{i} [sim:ms=300]"),
                            headers=auth(key),
                        )
                        for i in range(100)
                    )
                )

        replies = asyncio.run(submit_all())
        assert [r.status_code for r in replies] == [200] * 100
        ids = [r.json()["taskid"] for r in replies]
        rows = wait_jobs(gws[1], ids, timeout=90)
        assert {r["state"] for r in rows} == {"succeeded"}
        for gw in gws:
            ledger_consistent(gw, account)
        assert gws[0].account_state(account)["balance"] == 0
        settles = _settles(gws[0], account)
        assert sorted(map(sorted, settles.values())) == [["hold", "settle"]] * 100
        after = sim.stats()["by_route"]
        polls = sum(
            after.get(f"video.poll.{p}", 0) - before.get(f"video.poll.{p}", 0)
            for p in ("openai", "veo", "ark")
        )
        assert 100 <= polls <= 100 * 8  # each job polled until done, a few times, not a storm
        assert sum(r["polls"] for r in rows) == polls
        downloads = after.get("video.download", 0) - before.get("video.download", 0)
        assert downloads <= 100 + 100 * 2  # each finished file fetched by one poller (+ covers)
        # each gateway serves the URLs the other signed (one media directory, one secret)
        task = wait_task(gws[0], key, ids[1])
        assert httpx.get(task["video"]).status_code == 200
    finally:
        for gw in gws:
            stop(gw.proc)
