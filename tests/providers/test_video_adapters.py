"""The three video adapters against the simulator: the requests they build are what each
upstream accepts, their polls read each upstream's states, their files are real videos; and
the malformed, failed and filtered answers of each are read as such."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from faregate.errors import FailureClass, UpstreamError
from faregate.providers.ark_video import ArkVideo
from faregate.providers.base import Credentials
from faregate.providers.openai_video import OpenAIVideo
from faregate.providers.veo import VeoVideo
from faregate.providers.video import Asset, InputFile, VideoCall, VideoProtocol, download
from faregate.sim.server import start

PNG = (Path(__file__).resolve().parents[2] / "faregate/sim/media/cover.png").read_bytes()
ADAPTERS: dict[str, tuple[VideoProtocol, str, str]] = {
    "openai": (OpenAIVideo(), "/v1", "sora-2"),
    "veo": (VeoVideo(), "", "veo-3.0-generate-001"),
    "ark": (ArkVideo(), "/api/v3", "doubao-seedance-1-5-pro-251215"),
}


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    runner, port = await start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _call(prompt: str, files: list[InputFile] | None = None) -> VideoCall:
    return VideoCall(
        "public", prompt, 4, "req_1", resolution="720p", ratio="16:9", files=files or []
    )


async def _send(
    session: aiohttp.ClientSession, creds: Credentials, path: str, req: Any, method: str
) -> tuple[int, bytes, str]:
    async with session.request(
        method, creds.base_url + path, headers=req.headers, data=req.body or None
    ) as r:
        return r.status, await r.read(), r.headers.get("content-type", "")


async def _run(sim_url: str, name: str, call: VideoCall) -> tuple[Any, list[Any], str]:
    adapter, suffix, upstream = ADAPTERS[name]
    creds = Credentials(sim_url + suffix, "sk-up")
    async with aiohttp.ClientSession() as session:
        req = adapter.submit_request(call, upstream, creds)
        status, body, _ = await _send(session, creds, req.path, req, "POST")
        assert status == 200, body
        upstream_id = adapter.parse_submit(body)
        seen = []
        for _ in range(50):
            poll = adapter.poll_request(upstream_id, creds)
            status, body, _ = await _send(session, creds, poll.path, poll, "GET")
            assert status == 200, body
            found = adapter.parse_poll(body)
            seen.append(found)
            if found.phase in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.05)
        files = []
        last = seen[-1]
        for asset in (last.video, last.cover):
            if asset is None:
                continue
            where, path = download(asset, creds, adapter.auth_headers(creds))
            async with session.get(where.base_url + path, headers=where.headers) as r:
                assert r.status == 200
                files.append((r.headers["content-type"], await r.read(), where))
        return seen, files, upstream_id


@pytest.mark.parametrize("name", sorted(ADAPTERS))
async def test_a_job_runs_to_a_real_video(sim_url: str, name: str) -> None:
    import av

    seen, files, _ = await _run(sim_url, name, _call("a cat [sim:ms=100]"))
    assert seen[-1].phase == "succeeded"
    assert {s.phase for s in seen[:-1]} <= {"queued", "running"}
    ctype, data, _ = files[0]
    assert ctype == "video/mp4"
    with av.open(io.BytesIO(data)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8
    if name in ("openai", "ark"):  # a cover, on the same footing as the video
        assert files[1][0] == "image/png" and files[1][1].startswith(b"\x89PNG")


async def test_veo_downloads_its_file_with_the_key(sim_url: str) -> None:
    _, veo_files, _ = await _run(sim_url, "veo", _call("x [sim:ms=0]"))
    assert veo_files[0][2].api_key == "sk-up"
    assert "x-goog-api-key" in veo_files[0][2].headers


@pytest.mark.parametrize("name", sorted(ADAPTERS))
async def test_a_failure_upstream_is_read_as_failed(sim_url: str, name: str) -> None:
    seen, _, _ = await _run(sim_url, name, _call("x [sim:fail-after=2]"))
    assert [s.phase for s in seen][-1] == "failed"
    assert len(seen) == 2
    assert seen[-1].error


@pytest.mark.parametrize("name", sorted(ADAPTERS))
async def test_a_malformed_status_is_a_transient_error(sim_url: str, name: str) -> None:
    adapter, suffix, upstream = ADAPTERS[name]
    creds = Credentials(sim_url + suffix, "sk-up")
    async with aiohttp.ClientSession() as session:
        req = adapter.submit_request(_call("x [sim:malformed]"), upstream, creds)
        _, body, _ = await _send(session, creds, req.path, req, "POST")
        poll = adapter.poll_request(adapter.parse_submit(body), creds)
        _, body, _ = await _send(session, creds, poll.path, poll, "GET")
    with pytest.raises(UpstreamError) as err:
        adapter.parse_poll(body)
    assert err.value.failure is FailureClass.TRANSIENT


async def test_first_and_last_frames_and_references_reach_each_upstream(sim_url: str) -> None:
    frames = [InputFile("first_frame", "image/png", PNG), InputFile("last_frame", "image/png", PNG)]
    refs = [InputFile("reference_image", "image/png", PNG)] * 2
    received = {}
    async with aiohttp.ClientSession() as session:
        for name in ADAPTERS:
            for label, files in (("i2v", frames), ("r2v", refs)):
                _, _, upstream_id = await _run(sim_url, name, _call("x [sim:ms=0]", files))
                key = upstream_id.rpartition("/")[2]
                async with session.get(f"{sim_url}/sim/videos/{key}") as r:
                    received[(name, label)] = (await r.json())["inputs"]
    assert received[("veo", "i2v")] == ["image", "lastFrame"]
    assert received[("veo", "r2v")] == ["referenceImage", "referenceImage"]
    assert received[("ark", "i2v")] == ["first_frame", "last_frame"]
    assert received[("ark", "r2v")] == ["reference_image", "reference_image"]
    assert received[("openai", "i2v")] == ["input_reference"]  # one reference image upstream


def test_the_submit_bodies_follow_each_protocol() -> None:
    creds = Credentials("https://up.test/api/v3", "k")
    call = _call("dance", [InputFile("first_frame", "image/png", PNG)])
    call.negative_prompt = "blur"
    veo = orjson.loads(VeoVideo().submit_request(call, "models/veo-3", creds).body)
    assert veo["parameters"] == {
        "durationSeconds": 4,
        "aspectRatio": "16:9",
        "resolution": "720p",
        "negativePrompt": "blur",
    }
    assert veo["instances"][0]["image"]["mimeType"] == "image/png"
    ark_req = ArkVideo().submit_request(call, "seedance", creds)
    ark = orjson.loads(ark_req.body)
    assert ark_req.path == "/contents/generations/tasks"
    assert ark["content"][0] == {"type": "text", "text": "dance"}
    assert ark["content"][1]["role"] == "first_frame"
    assert ark["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert (ark["duration"], ark["resolution"], ark["ratio"]) == (4, "720p", "16:9")
    oa = OpenAIVideo().submit_request(_call("dance"), "sora-2", creds)
    assert orjson.loads(oa.body) == {
        "model": "sora-2",
        "prompt": "dance",
        "seconds": "4",
        "size": "1280x720",
    }


def test_each_protocol_says_which_inputs_it_cannot_carry() -> None:
    image = InputFile("first_frame", "image/png", PNG)
    last = InputFile("last_frame", "image/png", PNG)
    ref = InputFile("reference_image", "image/png", PNG)
    clip = InputFile("reference_video", "video/mp4", b"")
    cases = {
        "one frame": [image],
        "two frames": [image, last],
        "four references": [ref] * 4,
        "a reference video": [clip],
    }
    refused = {
        name: [n for n, files in cases.items() if adapter.unsupported(_call("x", files))]
        for name, (adapter, _, _) in ADAPTERS.items()
    }
    assert refused == {
        "openai": ["two frames", "four references", "a reference video"],
        "veo": ["four references", "a reference video"],
        "ark": [],
    }


def test_a_file_on_another_origin_never_gets_the_key() -> None:
    creds = Credentials("https://api.up.test/v1", "sk-secret", {"x-extra": "1"})
    where, path = download(Asset("https://cdn.other.test/v.mp4?sig=1", True), creds, {})
    assert where.api_key is None and where.headers == {}
    assert (where.base_url, path) == ("https://cdn.other.test", "/v.mp4?sig=1")
    where, _ = download(Asset("https://api.up.test/files/a:download", True), creds, {"k": "v"})
    assert where.api_key == "sk-secret" and where.headers["k"] == "v"
    with pytest.raises(UpstreamError):
        download(Asset("file:///etc/passwd", True), creds, {})


def test_veo_filtered_output_is_a_failure() -> None:
    body = orjson.dumps(
        {
            "name": "op",
            "done": True,
            "response": {"generateVideoResponse": {"raiMediaFilteredReasons": ["unsafe"]}},
        }
    )
    status = VeoVideo().parse_poll(body)
    assert status.phase == "failed" and "unsafe" in (status.error or "")


def test_ark_canceled_and_expired_tasks_are_failures() -> None:
    for state in ("cancelled", "expired"):
        body = orjson.dumps({"id": "cgt-1", "status": state})
        assert ArkVideo().parse_poll(body).phase == "failed"
