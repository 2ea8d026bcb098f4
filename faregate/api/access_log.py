"""After the response has ended: the request's access-log line, one JSON object on stdout.

The line says who asked for what and what it cost, never what was said: no prompt, reply,
key or header value. The event loop only queues the line; a thread writes it.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import sys
import threading
import time
from typing import Any, TextIO

import orjson

from faregate.trace import Trace

LOGGER = logging.getLogger("faregate.access")
"""Its level says whether lines are written; the lines themselves bypass `logging` (a
record, its copy and a thread wake-up per line cost more than the rest of the line)."""


FLUSH_SECONDS = 0.05
"""How long lines gather on the event loop before the writer thread gets them, in one batch
(one thread wake-up and one write per batch, whatever the request rate)."""


class _Writer:
    """Lines gathered on the event loop and handed to a thread every `FLUSH_SECONDS`, which
    writes each batch with one call: the loop never waits on the stream."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: list[bytes] = []
        self._armed = False
        self._batches: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def add(self, line: bytes) -> None:
        self._lines.append(line)
        if self._armed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: hand it over now
            self.flush()
            return
        self._armed = True
        loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        self._armed = False
        if self._lines:
            lines, self._lines = self._lines, []
            self._batches.put(b"\n".join(lines) + b"\n")

    def stop(self) -> None:
        """Write what is gathered and queued, then end the thread."""
        self.flush()
        self._batches.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (batch := self._batches.get()) is not None:
            try:
                self._stream.write(batch.decode())
                self._stream.flush()
            except (OSError, ValueError):  # a closed stream: the lines are lost, not the loop
                pass


_writers: list[_Writer] = []


def _stop() -> None:
    """Write the lines still queued and stop the writer thread."""
    while _writers:
        _writers.pop().stop()


atexit.register(_stop)


def configure(enabled: bool, stream: TextIO | None = None) -> None:
    """Write the access lines to `stream` (stdout) through a writer thread, or switch them
    off; either way they never reach the other loggers' handlers."""
    _stop()
    for handler in list(LOGGER.handlers):
        LOGGER.removeHandler(handler)
    LOGGER.propagate = False
    if not enabled:
        LOGGER.setLevel(logging.CRITICAL + 1)
        return
    LOGGER.setLevel(logging.INFO)
    _writers.append(_Writer(stream or sys.stdout))


def enabled() -> bool:
    """Whether to build access-log lines at all (nothing is formatted when off)."""
    return bool(_writers) and LOGGER.isEnabledFor(logging.INFO)


_second: list[tuple[int, str]] = [(-1, "")]  # the last whole second formatted, and its text


def timestamp(ms: int) -> str:
    """UTC ISO 8601 with milliseconds (`2026-12-03T18:20:00.123Z`); the seconds part is
    formatted once per second."""
    second, milli = divmod(ms, 1000)
    cached = _second[0]
    if cached[0] != second:
        cached = _second[0] = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{milli:03d}Z"


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
        "ts": timestamp(time.time_ns() // 1_000_000),
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
    if _writers and LOGGER.isEnabledFor(logging.INFO):
        _writers[-1].add(orjson.dumps(fields))
