"""After the response has ended: the request's access-log line, one JSON object on stdout.

The line says who asked for what and what it cost, never what was said: no prompt, reply,
key or header value. The event loop only queues the line; a thread writes it.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import time
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

import orjson

from faregate.trace import Trace

LOGGER = logging.getLogger("faregate.access")
_writers: list[QueueListener] = []


def _stop() -> None:
    """Write the lines still queued and stop the writer thread."""
    while _writers:
        _writers.pop().stop()


atexit.register(_stop)


def configure(enabled: bool, stream: TextIO | None = None) -> None:
    """Route the access logger to `stream` (stdout) through a writer thread, or switch it
    off; either way its lines never reach the other loggers' handlers."""
    _stop()
    for handler in list(LOGGER.handlers):
        LOGGER.removeHandler(handler)
    LOGGER.propagate = False
    if not enabled:
        LOGGER.setLevel(logging.CRITICAL + 1)
        return
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = logging.StreamHandler(stream or sys.stdout)
    writer.setFormatter(logging.Formatter("%(message)s"))
    listener = QueueListener(lines, writer)
    LOGGER.addHandler(QueueHandler(lines))
    LOGGER.setLevel(logging.INFO)
    listener.start()
    _writers.append(listener)


def enabled() -> bool:
    """Whether to build access-log lines at all (nothing is formatted when off)."""
    return LOGGER.isEnabledFor(logging.INFO)


def entry(
    *,
    method: str,
    path: str,
    status: int,
    trace: Trace | None,
    started: float,
    client_ip: str | None,
) -> dict[str, Any]:
    """The fields of one line (docs/operations.md#access-log); `started` is monotonic."""
    out: dict[str, Any] = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": None,
        "method": method,
        "path": path,
        "route": None,
        "status": status,
        "latency_ms": int((time.monotonic() - started) * 1000),
        "client_ip": client_ip or None,
    }
    if trace is not None:
        out.update(
            request_id=trace.request_id,
            route=trace.route,
            key_id=trace.key_id,
            account_id=trace.account_id,
            model=trace.model,
            deployment=trace.deployment,
            attempts=trace.attempts,
            prompt_tokens=trace.prompt_tokens,
            completion_tokens=trace.completion_tokens,
            cost=trace.cost,
            cached=trace.cached,
            estimated=trace.estimated,
        )
        if trace.units:
            out["units"] = dict(trace.units)
    return out


def write(fields: dict[str, Any]) -> None:
    LOGGER.info(orjson.dumps(fields).decode())
