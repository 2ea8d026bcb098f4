"""The access-log line: its fields, and nothing said in the request or the reply."""

from __future__ import annotations

import io
import logging
import time

import orjson
import pytest

from faregate.api import access_log
from faregate.trace import Trace


def test_a_metered_request_has_every_field() -> None:
    trace = Trace("chat", key_id="key_1", account_id="acc_1", model="m", deployment="d")
    trace.attempts, trace.prompt_tokens, trace.completion_tokens = 2, 11, 7
    trace.cost, trace.cached, trace.estimated = 1234, False, True
    fields = access_log.entry(
        method="POST",
        path="/v1/chat/completions",
        status=200,
        trace=trace,
        started=trace.started,
        client_ip="10.0.0.1",
    )
    assert fields["ts"].endswith("Z") and fields["latency_ms"] >= 0
    del fields["ts"], fields["latency_ms"]
    assert fields == {
        "request_id": trace.request_id,
        "method": "POST",
        "path": "/v1/chat/completions",
        "route": "chat",
        "status": 200,
        "client_ip": "10.0.0.1",
        "key_id": "key_1",
        "account_id": "acc_1",
        "model": "m",
        "deployment": "d",
        "attempts": 2,
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "cost": 1234,
        "cached": False,
        "estimated": True,
    }


def test_an_unmetered_request_has_the_http_fields() -> None:
    fields = access_log.entry(
        method="GET",
        path="/health",
        status=200,
        trace=None,
        started=time.monotonic(),
        client_ip=None,
    )
    assert set(fields) == {
        "ts",
        "request_id",
        "method",
        "path",
        "route",
        "status",
        "latency_ms",
        "client_ip",
    }
    assert fields["request_id"] is None and fields["route"] is None


def test_configured_lines_go_to_the_stream_only_and_off_means_off() -> None:
    out = io.StringIO()
    access_log.configure(True, out)
    assert access_log.enabled() and not access_log.LOGGER.propagate
    try:
        access_log.write({"status": 200, "path": "/x"})
    finally:
        access_log.configure(False)  # stops the writer once it has written what is queued
    assert [orjson.loads(line) for line in out.getvalue().splitlines()] == [
        {"status": 200, "path": "/x"}
    ]
    assert not access_log.enabled()
    access_log.write({"status": 500})  # off: dropped
    assert len(out.getvalue().splitlines()) == 1
    logging.getLogger("faregate.access").setLevel(logging.NOTSET)


@pytest.mark.parametrize("ms", [0, 999, 1_000, 1_764_786_000_123, 4_102_444_799_999])
def test_the_timestamp_is_utc_iso_8601_with_milliseconds(ms: int) -> None:
    from datetime import UTC, datetime

    want = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    assert access_log.timestamp(ms) == want.replace("+00:00", "Z")
