"""Video jobs in tests: the config of three video models (one per upstream protocol) on the
simulator, their prices, the llmid aliases, and helpers that wait for jobs to end."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
from harness import Gateway, Sim, start_gateway

PER_SECOND = 100_000  # micro-credits per second of video (flat price)
PER_SECOND_1080P = 250_000  # the 1080p variant
PNG = (Path(__file__).resolve().parent.parent / "faregate/sim/media/cover.png").read_bytes()
MODELS = {  # public name -> (provider, upstream model)
    "video-openai": ("sim", "sora-2"),
    "video-veo": ("sim-gemini", "veo-3.0-generate-001"),
    "video-ark": ("sim-ark", "doubao-seedance-1-5-pro-251215"),
}
LLMIDS = {  # the seed's opaque ids, one per upstream
    "video-openai": "o5vfXYD5BURJWRTWpopE5",
    "video-veo": "u9HZyfDoqU6uKI6M1BTks",
    "video-ark": "CrEMkFQfRCmbmopZsCqLj",
}


def video_config(
    sim_url: str,
    *,
    timeout_seconds: float = 30,
    lease_seconds: float = 3,
    ark_timeout: float | None = None,
    media_directory: str | None = None,
) -> str:
    """Extra config: the Ark provider, the three models, the `[video]` section (the Ark
    model's own time limit when given), and the media directory when shared."""
    lines = [
        "[providers.sim-ark]",
        'protocol = "ark"',
        f'base_url = "{sim_url}/api/v3"',
        'api_key = "sk-ark-sim"',
    ]
    for name, (provider, upstream) in MODELS.items():
        lines += [
            f'[models."{name}"]',
            'kind = "video"',
            f'provider = "{provider}"',
            f'upstream = "{upstream}"',
            f"price = {{ video_second = {PER_SECOND},"
            f' video_seconds = {{ "1080p" = {PER_SECOND_1080P} }} }}',
        ]
    lines += [
        "[images]",
        "allow_private_addresses = true  # the simulator's image URLs are on loopback",
        "[video]",
        "tick_seconds = 0.05",
        "first_poll_seconds = 0.1",
        "max_poll_interval_seconds = 0.4",
        f"lease_seconds = {lease_seconds}",
        f"timeout_seconds = {timeout_seconds}",
        "[video.aliases]",
        *(f'"{llmid}" = "{name}"' for name, llmid in LLMIDS.items()),
    ]
    for name in MODELS:
        lines += [
            f'[video.models."{name}"]',
            "min_seconds = 1",
            "max_seconds = 12",
            "default_seconds = 4",
        ]
        if name == "video-ark" and ark_timeout is not None:
            lines.append(f"timeout_seconds = {ark_timeout}")
    if media_directory is not None:
        lines += [
            "[media]",
            f'directory = "{media_directory}"',
            'secret_env = "FAREGATE_TEST_MEDIA_SECRET"',
        ]
    return "\n" + "\n".join(lines) + "\n"


def start_video_gateway(sim: Sim, tmp: Path, **kw: Any) -> Gateway:
    own = ("timeout_seconds", "lease_seconds", "ark_timeout", "media_directory")
    sections = video_config(sim.url, **{k: kw.pop(k) for k in own if k in kw})
    return start_gateway(sim.url, tmp, sections=sections, **kw)


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def wait_task(gw: Gateway, key: str, taskid: str, timeout: float = 20.0) -> dict[str, Any]:
    """Poll `/llmage/tasks` until the task ends (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{gw.url}/llmage/tasks", params={"taskid": taskid}, headers=auth(key))
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("SUCCEEDED", "FAILED"):
            return dict(r.json())
        time.sleep(0.05)
    raise AssertionError(f"task {taskid} did not end in {timeout} s")


def wait_jobs(gw: Gateway, ids: list[str], timeout: float = 30.0) -> list[dict[str, Any]]:
    """Wait, through the admin API, until every job has ended; their rows."""
    deadline = time.monotonic() + timeout
    pending = set(ids)
    rows: dict[str, dict[str, Any]] = {}
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            row = gw.admin("GET", f"/jobs/{job_id}")
            if row["state"] not in ("queued", "running"):
                rows[job_id] = row
                pending.discard(job_id)
        if pending:
            time.sleep(0.1)
    assert not pending, f"{len(pending)} jobs did not end in {timeout} s"
    return [rows[i] for i in ids]


def frames(data: bytes) -> int:
    """Decoded video frames of an MP4 (0 for anything else)."""
    import av

    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))
