"""The OpenAI Videos API's replies validate against the official OpenAI OpenAPI schemas
(`VideoResource`, `VideoListResource`, `DeletedVideoResource`), finished and failed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import Gateway, Sim, stop
from openai_spec import load_components, requires_spec
from openai_spec import validate as _validate
from video_harness import auth, start_video_gateway

pytestmark = requires_spec


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    return load_components()


@pytest.fixture(scope="module")
def gw(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_video_gateway(sim, tmp_path_factory.mktemp("vshapes"))
    yield g
    stop(g.proc)


def _done(gw: Gateway, key: str, video_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = httpx.get(f"{gw.url}/v1/videos/{video_id}", headers=auth(key)).json()
        if found["status"] in ("completed", "failed"):
            return dict(found)
        time.sleep(0.05)
    raise AssertionError("the video did not finish")


@pytest.mark.parametrize("size", [None, "1280x720"])
def test_video_objects_and_lists_match_the_spec(
    gw: Gateway, components: dict[str, Any], size: str | None
) -> None:
    _, key = gw.account(50_000_000)
    body = {"model": "video-openai", "prompt": "ok [sim:ms=0]", "seconds": "4"}
    if size:
        body["size"] = size
    created = httpx.post(f"{gw.url}/v1/videos", json=body, headers=auth(key)).json()
    _validate(components, "VideoResource", created)
    failed = httpx.post(
        f"{gw.url}/v1/videos", json={**body, "prompt": "[sim:fail-after=1]"}, headers=auth(key)
    ).json()
    _validate(components, "VideoResource", _done(gw, key, created["id"]))
    finished_failed = _done(gw, key, failed["id"])
    assert finished_failed["status"] == "failed" and finished_failed["error"]["message"]
    _validate(components, "VideoResource", finished_failed)
    listed = httpx.get(f"{gw.url}/v1/videos", headers=auth(key)).json()
    _validate(components, "VideoListResource", listed)
    deleted = httpx.delete(f"{gw.url}/v1/videos/{created['id']}", headers=auth(key)).json()
    _validate(components, "DeletedVideoResource", deleted)
