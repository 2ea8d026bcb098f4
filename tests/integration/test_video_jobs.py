"""Video jobs through a running gateway, on each upstream protocol: the official `openai`
SDK's `videos` methods, seed 003's `/llmage/video` and `/llmage/tasks` (JSON and multipart:
text, first and last frame, references), seed 004's chat submit and `/v1/jobs` poll; the
money of each (a success costs exactly its seconds, a failure nothing), another account's
ids, and the operator's view."""

from __future__ import annotations

import base64
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from harness import Gateway, Sim, ledger_consistent, stop
from video_harness import (
    LLMIDS,
    MODELS,
    PER_SECOND,
    PER_SECOND_1080P,
    PNG,
    auth,
    frames,
    start_video_gateway,
    wait_jobs,
    wait_task,
)

CREDITS = 50_000_000


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_video_gateway(sim, tmp_path_factory.mktemp("video"))
    yield g
    stop(g.proc)


@pytest.fixture
def sdk(gw: Gateway) -> Iterator[tuple[openai.OpenAI, str]]:
    account, key = gw.account(CREDITS)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK marks videos deprecated
        yield client, account


def _until_done(client: openai.OpenAI, video_id: str) -> Any:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = client.videos.retrieve(video_id)
        if found.status in ("completed", "failed"):
            return found
        time.sleep(0.05)
    raise AssertionError("the video did not finish")


def _spent(gw: Gateway, account: str) -> int:
    ledger_consistent(gw, account)
    return CREDITS - int(gw.account_state(account)["balance"])


@pytest.mark.parametrize("model", sorted(MODELS))
def test_the_openai_sdk_creates_polls_downloads_lists_and_deletes(
    gw: Gateway, sdk: tuple[openai.OpenAI, str], model: str
) -> None:
    client, account = sdk
    created = client.videos.create(model=model, prompt="a fox [sim:ms=150]", seconds="4")
    assert created.status == "queued" and created.object == "video"
    done = _until_done(client, created.id)
    assert done.status == "completed" and done.seconds == "4" and done.progress == 100
    assert _spent(gw, account) == 4 * PER_SECOND
    content = client.videos.download_content(created.id)
    assert frames(content.read()) == 8
    if model != "video-veo":  # Veo returns no cover
        thumb = client.videos.download_content(created.id, variant="thumbnail")
        assert thumb.read().startswith(b"\x89PNG")
    listed = client.videos.list(limit=10)
    assert created.id in [v.id for v in listed.data]
    deleted = client.videos.delete(created.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(created.id)
    assert _spent(gw, account) == 4 * PER_SECOND  # deleting a finished video refunds nothing


@pytest.mark.parametrize("model", sorted(MODELS))
def test_the_openai_sdk_uploads_an_input_reference(
    gw: Gateway, sdk: tuple[openai.OpenAI, str], model: str, sim: Sim
) -> None:
    client, account = sdk
    created = client.videos.create(
        model=model,
        prompt="from this frame [sim:ms=50]",
        seconds="2",
        input_reference=("frame.png", PNG, "image/png"),
    )
    assert _until_done(client, created.id).status == "completed"
    row = gw.admin("GET", f"/jobs/{created.id}")
    received = httpx.get(f"{sim.url}/sim/videos/{row['upstream_id'].rpartition('/')[2]}").json()
    assert len(received["inputs"]) == 1
    assert _spent(gw, account) == 2 * PER_SECOND


def test_the_openai_sdk_pages_the_list(gw: Gateway, sdk: tuple[openai.OpenAI, str]) -> None:
    client, _ = sdk
    ids = [
        client.videos.create(model="video-openai", prompt=f"p{i} [sim:ms=0]", seconds="1").id
        for i in range(3)
    ]
    first = client.videos.list(limit=2)
    assert [v.id for v in first.data] == ids[::-1][:2] and first.has_more
    rest = client.videos.list(limit=2, after=first.data[-1].id)
    assert [v.id for v in rest.data] == [ids[0]] and not rest.has_more
    oldest = client.videos.list(limit=1, order="asc")
    assert oldest.data[0].id == ids[0]
    wait_jobs(gw, ids)


def test_a_job_in_flight_deleted_is_canceled_and_costs_nothing(
    gw: Gateway, sdk: tuple[openai.OpenAI, str]
) -> None:
    client, account = sdk
    created = client.videos.create(model="video-ark", prompt="slow [sim:never]", seconds="4")
    assert client.videos.delete(created.id).deleted
    assert _spent(gw, account) == 0
    row = gw.admin("GET", f"/jobs/{created.id}")
    assert row["state"] == "deleted" and "canceled" in row["error"]
    deadline = time.monotonic() + 10
    statuses: list[int] = []
    while 499 not in statuses and time.monotonic() < deadline:
        rows = gw.admin("GET", f"/usage/requests?account_id={account}")["data"]
        statuses = [r["status"] for r in rows if r["request_id"] == created.id]
        time.sleep(0.1)
    assert statuses == [499]  # the cancellation, in the usage log


@pytest.mark.parametrize("model", sorted(MODELS))
def test_seed_003_json_text_to_video_and_the_task_query(gw: Gateway, model: str) -> None:
    account, key = gw.account(CREDITS)
    body = {
        "llmid": LLMIDS[model],
        "prompt": "小猫在抓老鼠 [sim:ms=100]",
        "duration": 5,
        "ratio": "16:9",
        "resolution": "1080p",
    }
    r = httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CREATED"
    taskid = r.json()["taskid"]
    task = wait_task(gw, key, taskid)
    assert task["status"] == "SUCCEEDED" and task["taskid"] == taskid
    assert task["usage"]["action"] == "t2v" and task["usage"]["type"] == "text2video"
    assert task["usage"]["credits"] == 5 * PER_SECOND_1080P and task["usage"]["duration"] == 5
    video = httpx.get(task["video"])
    assert video.status_code == 200 and frames(video.content) == 8
    assert task["video"].startswith(gw.url + "/v1/media/")
    assert "sim" not in task["video"] and "sk-" not in task["video"]
    if model != "video-veo":
        assert httpx.get(task["image"]).content.startswith(b"\x89PNG")
    # the seed's own example queries with POST and the id in the query string
    posted = httpx.post(f"{gw.url}/llmage/tasks?taskid={taskid}", headers=auth(key))
    assert posted.json()["status"] == "SUCCEEDED"
    assert _spent(gw, account) == 5 * PER_SECOND_1080P


@pytest.mark.parametrize("model", ["video-veo", "video-ark"])
def test_seed_003_multipart_first_and_last_frame(gw: Gateway, model: str, sim: Sim) -> None:
    account, key = gw.account(CREDITS)
    files = [
        ("image1_file", ("1.png", PNG, "image/png")),
        ("image1_file", ("2.png", PNG, "image/png")),
    ]
    data = {
        "llmid": LLMIDS[model],
        "prompt": "从图片1到图片2丝滑转换 [sim:ms=50]",
        "duration": "3",
        "ratio": "16:9",
        "resolution": "480p",
    }
    r = httpx.post(f"{gw.url}/llmage/video", data=data, files=files, headers=auth(key))
    assert r.status_code == 200, r.text
    task = wait_task(gw, key, r.json()["taskid"])
    assert task["status"] == "SUCCEEDED" and task["usage"]["action"] == "i2v"
    row = gw.admin("GET", f"/jobs/{r.json()['taskid']}")
    received = httpx.get(f"{sim.url}/sim/videos/{row['upstream_id'].rpartition('/')[2]}").json()
    expected = {
        "video-veo": ["image", "lastFrame"],
        "video-ark": ["first_frame", "last_frame"],
    }
    assert received["inputs"] == expected[model]
    assert _spent(gw, account) == 3 * PER_SECOND


def test_seed_003_json_frames_by_url_and_data_url(gw: Gateway, sim: Sim) -> None:
    account, key = gw.account(CREDITS)
    body = {
        "llmid": LLMIDS["video-ark"],
        "prompt": "frames [sim:ms=0]",
        "duration": 2,
        "image_file1": f"{sim.url}/sim/media/cover.png",
        "image_file2": "data:image/png;base64," + base64.b64encode(PNG).decode(),
    }
    r = httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key))
    assert r.status_code == 200, r.text
    assert wait_task(gw, key, r.json()["taskid"])["usage"]["action"] == "i2v"
    row = gw.admin("GET", f"/jobs/{r.json()['taskid']}")
    received = httpx.get(f"{sim.url}/sim/videos/{row['upstream_id']}").json()
    assert received["inputs"] == ["first_frame", "last_frame"]
    assert _spent(gw, account) == 2 * PER_SECOND


@pytest.mark.parametrize("model", ["video-veo", "video-ark"])
def test_seed_003_multipart_reference_to_video_with_several_files(
    gw: Gateway, model: str, sim: Sim
) -> None:
    account, key = gw.account(CREDITS)
    files = [("image_files", (f"{i}.png", PNG, "image/png")) for i in range(3)]
    data = {
        "llmid": LLMIDS[model],
        "prompt": "平滑过度 [sim:ms=50]",
        "duration": "4",
        "ratio": "4:3",
    }
    r = httpx.post(f"{gw.url}/llmage/video", data=data, files=files, headers=auth(key))
    assert r.status_code == 200, r.text
    task = wait_task(gw, key, r.json()["taskid"])
    assert task["usage"]["action"] == "r2v" and task["usage"]["type"] == "reference2video"
    row = gw.admin("GET", f"/jobs/{r.json()['taskid']}")
    received = httpx.get(f"{sim.url}/sim/videos/{row['upstream_id'].rpartition('/')[2]}").json()
    assert len(received["inputs"]) == 3
    assert _spent(gw, account) == 4 * PER_SECOND


@pytest.mark.parametrize(
    ("field", "count"), [("image1_file", 2), ("image_files", 3), ("video_files", 1)]
)
def test_inputs_an_upstream_protocol_cannot_carry_are_refused_before_the_hold(
    gw: Gateway, field: str, count: int
) -> None:
    account, key = gw.account(CREDITS)
    clip = (Path(__file__).resolve().parents[2] / "faregate/sim/media/clip.mp4").read_bytes()
    data = clip if field == "video_files" else PNG
    files = [(field, (f"{i}.bin", data, "application/octet-stream")) for i in range(count)]
    body = {"llmid": LLMIDS["video-openai"], "prompt": "x", "duration": "2"}
    r = httpx.post(f"{gw.url}/llmage/video", data=body, files=files, headers=auth(key))
    assert r.status_code == 400, r.text
    assert "cannot take these inputs" in r.json()["error"]
    assert [row["kind"] for row in gw.ledger(account)] == ["grant"]
    if field == "video_files":  # Veo takes no reference video either; Ark does
        body["llmid"] = LLMIDS["video-veo"]
        r = httpx.post(f"{gw.url}/llmage/video", data=body, files=files, headers=auth(key))
        assert r.status_code == 400
        body["llmid"] = LLMIDS["video-ark"]
        r = httpx.post(f"{gw.url}/llmage/video", data=body, files=files, headers=auth(key))
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("model", sorted(MODELS))
def test_seed_004_submit_through_chat_and_poll_the_job(gw: Gateway, model: str) -> None:
    account, key = gw.account(CREDITS)
    body = {
        "model": model,
        "prompt": "A golden retriever on a sunny beach [sim:ms=100]",
        "duration": 5,
        "resolution": "720p",
        "aspect_ratio": "16:9",
    }
    r = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth(key))
    assert r.status_code == 200, r.text
    data = r.json()
    job_id = data["data"]["id"]
    assert data["data"] == {"id": job_id, "status": "pending", "polling_url": f"/v1/jobs/{job_id}"}
    assert data["_balancer"] == {"job_id": job_id, "model_used": model}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        polled = httpx.get(gw.url + data["data"]["polling_url"], headers=auth(key)).json()
        assert polled["data"]["status"] in ("pending", "processing", "completed")
        if polled["data"]["status"] == "completed":
            break
        time.sleep(0.05)
    assert polled["_balancer"]["credits_used"] == 5 * PER_SECOND
    assert polled["_balancer"]["cost_usd"] == 0.5
    assert polled["_balancer"]["duration_seconds"] == 5
    assert frames(httpx.get(polled["data"]["video_url"]).content) == 8
    assert _spent(gw, account) == 5 * PER_SECOND


@pytest.mark.parametrize("model", sorted(MODELS))
def test_a_job_that_fails_upstream_costs_nothing(gw: Gateway, model: str) -> None:
    account, key = gw.account(CREDITS)
    body = {"llmid": LLMIDS[model], "prompt": "doomed [sim:fail-after=2]", "duration": 4}
    r = httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key))
    task = wait_task(gw, key, r.json()["taskid"])
    assert task["status"] == "FAILED" and "usage" not in task
    assert _spent(gw, account) == 0
    kinds = sorted(row["kind"] for row in gw.ledger(account))
    assert kinds == ["grant", "hold", "release"]


def test_a_refused_submit_releases_at_once(gw: Gateway) -> None:
    account, key = gw.account(CREDITS)
    body = {"llmid": LLMIDS["video-ark"], "prompt": "no [sim:reject]", "duration": 4}
    r = httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key))
    assert r.status_code == 400 and isinstance(r.json()["error"], str)
    assert _spent(gw, account) == 0
    assert gw.admin("GET", f"/jobs?account_id={account}")["data"][0]["state"] == "failed"


def test_another_accounts_job_is_not_found_on_every_surface(gw: Gateway) -> None:
    _, key = gw.account(CREDITS)
    _, other = gw.account(CREDITS)
    body = {"llmid": LLMIDS["video-openai"], "prompt": "mine [sim:ms=0]", "duration": 1}
    job_id = httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key)).json()["taskid"]
    for path, params in (
        ("/llmage/tasks", {"taskid": job_id}),
        (f"/v1/jobs/{job_id}", {}),
        (f"/v1/videos/{job_id}", {}),
        (f"/v1/videos/{job_id}/content", {}),
    ):
        r = httpx.get(gw.url + path, params=params, headers=auth(other))
        assert r.status_code == 404, (path, r.text)
    assert httpx.delete(f"{gw.url}/v1/videos/{job_id}", headers=auth(other)).status_code == 404
    listed = httpx.get(f"{gw.url}/v1/videos", headers=auth(other)).json()
    assert job_id not in [v["id"] for v in listed["data"]]
    wait_jobs(gw, [job_id])


def test_the_operator_sees_jobs_and_their_usage_rows(gw: Gateway) -> None:
    account, key = gw.account(CREDITS)
    body = {"llmid": LLMIDS["video-veo"], "prompt": "seen [sim:ms=0]", "duration": 2}
    job_id = httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key)).json()["taskid"]
    (row,) = wait_jobs(gw, [job_id])
    assert row["state"] == "succeeded" and row["surface"] == "llmage"
    assert row["model"] == "video-veo" and row["held"] == 2 * PER_SECOND
    assert row["upstream_id"] and row["result"]["cost"] == 2 * PER_SECOND
    listed = gw.admin("GET", f"/jobs?account_id={account}")
    assert [j["id"] for j in listed["data"]] == [job_id]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = gw.admin("GET", f"/usage/requests?account_id={account}")["data"]
        if len(rows) >= 2:
            break
        time.sleep(0.2)
    costs = sorted(r.get("cost", 0) for r in rows)
    assert costs == [0, 2 * PER_SECOND]  # the submit, then the job's end


def test_each_upstream_is_reached_with_its_own_protocol(gw: Gateway, sim: Sim) -> None:
    before = sim.stats()["by_route"]
    _, key = gw.account(CREDITS)
    ids = []
    for model in MODELS:
        body = {"llmid": LLMIDS[model], "prompt": "route [sim:ms=0]", "duration": 1}
        ids.append(
            httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key)).json()["taskid"]
        )
    wait_jobs(gw, ids)
    after = sim.stats()["by_route"]
    for route in ("video.submit.openai", "video.submit.veo", "video.submit.ark"):
        assert after.get(route, 0) - before.get(route, 0) == 1


def test_a_poll_by_the_client_never_reaches_the_upstream(gw: Gateway, sim: Sim) -> None:
    _, key = gw.account(CREDITS)
    body = {"llmid": LLMIDS["video-ark"], "prompt": "long [sim:never]", "duration": 1}
    job_id = httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key)).json()["taskid"]
    for _ in range(100):
        httpx.get(f"{gw.url}/llmage/tasks", params={"taskid": job_id}, headers=auth(key))
    row = gw.admin("GET", f"/jobs/{job_id}")
    polls = httpx.get(f"{sim.url}/sim/videos/{row['upstream_id']}").json()["polls"]
    assert row["polls"] - 1 <= polls <= row["polls"] + 1  # the poller's (one may be in flight)
    assert polls < 100
    httpx.delete(f"{gw.url}/v1/videos/{job_id}", headers=auth(key))


def test_jobs_in_flight_are_limited_by_the_accounts_video_concurrency(gw: Gateway) -> None:
    account, key = gw.account(CREDITS)
    gw.admin("PATCH", f"/accounts/{account}", json={"limits": {"video": {"concurrency": 2}}})
    body = {"llmid": LLMIDS["video-ark"], "prompt": "slow [sim:never]", "duration": 1}
    ids = []
    for _ in range(2):
        r = httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key))
        assert r.status_code == 200, r.text
        ids.append(r.json()["taskid"])
    r = httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key))
    assert r.status_code == 429 and "in flight" in r.json()["error"]
    httpx.delete(f"{gw.url}/v1/videos/{ids[0]}", headers=auth(key))  # cancel one: a slot frees
    r = httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key))
    assert r.status_code == 200, r.text
    for job_id in (ids[1], r.json()["taskid"]):
        httpx.delete(f"{gw.url}/v1/videos/{job_id}", headers=auth(key))
    assert _spent(gw, account) == 0


def test_a_key_limited_to_other_models_is_refused_before_any_hold(gw: Gateway) -> None:
    account, key = gw.account(CREDITS, models=["video-openai"])
    body = {"llmid": LLMIDS["video-ark"], "prompt": "x", "duration": 1}
    r = httpx.post(f"{gw.url}/llmage/video", json=body, headers=auth(key))
    assert r.status_code == 403 and isinstance(r.json()["error"], str)
    assert [row["kind"] for row in gw.ledger(account)] == ["grant"]


def test_an_idempotent_submit_makes_one_job(gw: Gateway) -> None:
    account, key = gw.account(CREDITS)
    body = {"llmid": LLMIDS["video-ark"], "prompt": "once [sim:ms=0]", "duration": 2}
    headers = {**auth(key), "idempotency-key": "video-once-1"}
    first = httpx.post(f"{gw.url}/llmage/video", json=body, headers=headers)
    again = httpx.post(f"{gw.url}/llmage/video", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["taskid"] == again.json()["taskid"]
    assert again.headers.get("idempotent-replayed") == "true"
    wait_jobs(gw, [first.json()["taskid"]])
    assert len(gw.admin("GET", f"/jobs?account_id={account}")["data"]) == 1
    assert _spent(gw, account) == 2 * PER_SECOND


def test_the_json_body_takes_a_reference_image_by_data_url(gw: Gateway, sim: Sim) -> None:
    account, key = gw.account(CREDITS)
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    body = {
        "model": "video-veo",
        "prompt": "from a data URL [sim:ms=0]",
        "seconds": 1,
        "input_reference": {"image_url": url},
    }
    created = httpx.post(f"{gw.url}/v1/videos", json=body, headers=auth(key))
    assert created.status_code == 200, created.text
    (row,) = wait_jobs(gw, [created.json()["id"]])
    assert row["state"] == "succeeded"
    received = httpx.get(f"{sim.url}/sim/videos/{row['upstream_id'].rpartition('/')[2]}").json()
    assert received["inputs"] == ["image"]
    assert _spent(gw, account) == PER_SECOND
