"""The access log of a gateway process: one JSON line per request on stdout, with who asked
for what, what it cost and how long it took, and never a key, a prompt or a reply."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from harness import Gateway, Sim, start_gateway, stop

PROMPT = "the-secret-prompt-7f3a9c"


@pytest.fixture(scope="module")
def logged(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path]]:
    tmp = tmp_path_factory.mktemp("access")
    gw = start_gateway(sim.url, tmp)
    yield gw, tmp / "gateway.log"
    stop(gw.proc)


def _lines(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            data = orjson.loads(line)
            if "latency_ms" in data:
                out.append(data)
    return out


def _line_of(log: Path, request_id: str) -> dict[str, Any]:
    """The line of one request: written by a thread once the response has ended."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [line for line in _lines(log) if line["request_id"] == request_id]
        if found:
            assert len(found) == 1
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {request_id}")


def _chat(gw: Gateway, key: str, **extra: Any) -> httpx.Response:
    body = {"model": "sim-small", "messages": [{"role": "user", "content": PROMPT}], **extra}
    return httpx.post(
        gw.url + "/v1/chat/completions?trace=1",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=15,
    )


def test_one_line_per_request_with_usage_and_no_secrets(logged: tuple[Gateway, Path]) -> None:
    gw, log = logged
    account, key = gw.account(1_000_000)
    r = _chat(gw, key)
    assert r.status_code == 200
    reply = r.json()["choices"][0]["message"]["content"]
    line = _line_of(log, r.headers["x-request-id"])
    usage = r.json()["usage"]
    assert line["method"] == "POST" and line["path"] == "/v1/chat/completions"
    assert line["route"] == "chat" and line["status"] == 200
    assert line["account_id"] == account and line["key_id"].startswith("key_")
    assert line["model"] == "sim-small" and line["deployment"]
    assert line["attempts"] == 1 and line["client_ip"] == "127.0.0.1"
    assert line["prompt_tokens"] == usage["prompt_tokens"]
    assert line["completion_tokens"] == usage["completion_tokens"]
    assert line["cost"] == int(r.headers["x-faregate-cost"]) > 0
    assert line["cached"] is False and line["estimated"] is False
    assert isinstance(line["latency_ms"], int) and line["ts"].endswith("Z")

    streamed = _chat(gw, key, stream=True, stream_options={"include_usage": True})
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    line = _line_of(log, streamed.headers["x-request-id"])
    assert line["status"] == 200 and line["completion_tokens"] > 0 and line["cost"] > 0

    refused = _chat(gw, "fg-not-a-key")
    assert refused.status_code == 401
    line = _line_of(log, refused.headers["x-request-id"])
    assert line["status"] == 401 and line["key_id"] is None and line["cost"] == 0

    text = log.read_text(errors="replace")
    assert len(reply) > 10 and reply not in text
    for secret in (PROMPT, key, "fg-not-a-key", "sk-sim", "?trace"):
        assert secret not in text


def test_switched_off(sim: Sim, tmp_path: Path) -> None:
    gw = start_gateway(sim.url, tmp_path, extra_models="\n[log]\naccess = false\n")
    try:
        _, key = gw.account(1_000_000)
        assert _chat(gw, key).status_code == 200
    finally:
        stop(gw.proc)  # a stopped process has written all it ever will
    assert _lines(tmp_path / "gateway.log") == []
