"""The simulator's video APIs: keys, the submit directives, file access, the counters."""

from __future__ import annotations

import aiohttp

OPENAI = {"authorization": "Bearer sk-test"}


async def test_submits_need_a_key_and_follow_the_directives(
    sim_url: str, http: aiohttp.ClientSession
) -> None:
    body = {"model": "sora-2", "prompt": "x"}
    async with http.post(f"{sim_url}/v1/videos", json=body) as r:
        assert r.status == 401
    for directive, status in (("[sim:reject]", 400), ("[sim:error]", 500), ("", 200)):
        payload = {**body, "prompt": f"x {directive}"}
        async with http.post(f"{sim_url}/v1/videos", json=payload, headers=OPENAI) as r:
            assert r.status == status
    veo = {"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 4}}
    async with http.post(f"{sim_url}/v1beta/models/veo-3:predictLongRunning", json=veo) as r:
        assert r.status == 401
    ark = {"model": "seedance", "content": [{"type": "text", "text": "x [sim:reject]"}]}
    async with http.post(
        f"{sim_url}/api/v3/contents/generations/tasks", json=ark, headers=OPENAI
    ) as r:
        assert r.status == 400
    async with http.get(f"{sim_url}/sim/stats") as r:
        routes = (await r.json())["by_route"]
    assert routes["video.submit.openai"] == 4 and routes["video.submit.veo"] == 1


async def test_finished_files_need_the_key_or_the_signed_url(
    sim_url: str, http: aiohttp.ClientSession
) -> None:
    veo = {"instances": [{"prompt": "x [sim:ms=0]"}], "parameters": {}}
    headers = {"x-goog-api-key": "k"}
    async with http.post(
        f"{sim_url}/v1beta/models/veo-3:predictLongRunning", json=veo, headers=headers
    ) as r:
        name = (await r.json())["name"]
    async with http.get(f"{sim_url}/v1beta/{name}", headers=headers) as r:
        uri = (await r.json())["response"]["generateVideoResponse"]["generatedSamples"][0]
    async with http.get(uri["video"]["uri"]) as r:
        assert r.status == 403  # the file needs the key
    async with http.get(uri["video"]["uri"], headers=headers) as r:
        assert r.status == 200 and r.content_type == "video/mp4"
    ark = {"model": "s", "content": [{"type": "text", "text": "x [sim:ms=0]"}]}
    async with http.post(
        f"{sim_url}/api/v3/contents/generations/tasks", json=ark, headers=OPENAI
    ) as r:
        task = (await r.json())["id"]
    async with http.get(f"{sim_url}/api/v3/contents/generations/tasks/{task}", headers=OPENAI) as r:
        url = (await r.json())["content"]["video_url"]
    async with http.get(url.split("?")[0]) as r:
        assert r.status == 403  # without its token
    async with http.get(url) as r:
        assert r.status == 200 and (await r.read())[4:8] == b"ftyp"
