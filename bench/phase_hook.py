"""bench/phases.py's stamps inside the gateway: installed as the gateway's `sitecustomize`.

Each stamp is `time.perf_counter_ns()` (the clock the load generator reads too) at a moment of
the request being served, kept once per request (the first time). The four base stamps split a
request into phases; with FAREGATE_PHASES_DETAIL set, `STEPS` adds the gateway's own steps
between them (each wrapper costs about a microsecond). The stamps are taken between SIGUSR1
and SIGUSR2; SIGUSR2 writes them as JSON to FAREGATE_PHASES_OUT. Only the gateway installs
them (the simulator, which shares the PYTHONPATH, has no FAREGATE_ADMIN_KEY).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType, ModuleType
from typing import Any

_now = time.perf_counter_ns
_records: list[dict[str, int]] = []
_current: list[dict[str, int] | None] = [None]
_on = [False]

STEPS: tuple[tuple[str, str], ...] = (
    ("in", "request bytes read"),
    ("app", "server: request parsed, its task started"),
    ("auth0", "front door: route, trace"),
    ("auth1", "the key and its restrictions"),
    ("body0", "to the handler"),
    ("body1", "body read, JSON parsed"),
    ("admit", "chat request parsed, limits"),
    ("hold0", "model checks, worst case"),
    ("sql0", "hold: ticket, BEGIN"),
    ("sql1", "hold: the debit's statements"),
    ("hold1", "hold: back to the request"),
    ("up_out", "attempt: deployment, upstream request, pool"),
    ("commit0", "upstream request written, back to the loop"),
    ("commit1", "the hold's COMMIT (overlaps the upstream)"),
    ("up_in", "waiting for the upstream"),
    ("uphead", "upstream head parsed"),
    ("upbody", "upstream's first body bytes"),
    ("att1", "attempt done"),
    ("settle0", "reply parsed (JSON)"),
    ("settle1", "settled (JSON)"),
    ("resp", "response built"),
    ("feed", "response head, relay started (stream)"),
    ("out", "first bytes rendered and written"),
)
"""Every stamp in the order a request meets them, each with what the time since the previous
stamp present in the request is spent on (with `--detail`; the base stamps are in, up_out,
up_in and out)."""

DETAIL_TARGETS: tuple[tuple[str, str], ...] = (
    ("faregate.api.front", "FrontDoor.__call__"),
    ("faregate.api.front", "FrontDoor._identify"),
    ("faregate.api.common", "json_body"),
    ("faregate.pipeline.runner", "admit"),
    ("faregate.pipeline.runner", "run_attempts"),
    ("faregate.pipeline.admission", "take_hold"),
    ("faregate.billing.sqlite", "run_sqlite"),
    ("faregate.billing.sqlite", "SqliteStore.finish_open"),
    ("faregate.billing.charge", "Charge.settle"),
    ("faregate.http.responses", "Response.__call__"),
    ("faregate.http.responses", "StreamResponse.__call__"),
    ("faregate.providers.openai", "_Decoder.feed"),
    ("faregate.upstream.http1", "Connection.on_headers_complete"),
    ("faregate.upstream.http1", "Connection.on_body"),
)
"""What `--detail` wraps (module, attribute): a rename in the gateway must show here."""


def _start(name: str) -> None:
    if _on[0]:
        record = _current[0]
        if record is None or "out" in record:
            record = _current[0] = {}
            _records.append(record)
        record.setdefault(name, _now())


def _record() -> dict[str, int] | None:
    """The request being stamped, or None."""
    return _current[0] if _on[0] else None


def _mark(name: str) -> None:
    record = _record()
    if record is not None:
        record.setdefault(name, _now())


def _mark_early(name: str) -> None:
    """A stamp only before the first bytes went out (a stream settles after them)."""
    record = _record()
    if record is not None and "out" not in record:
        record.setdefault(name, _now())


def _marking(method: Callable[..., Any], stamp: Callable[[str], None], name: str) -> Any:
    """`method`, stamping `name` (with `_start` or `_mark`) first."""

    def marked(*args: Any, **kwargs: Any) -> Any:
        stamp(name)
        return method(*args, **kwargs)

    return marked


def _around(method: Callable[..., Any], first: str, then: str, stamp: Any = _mark) -> Any:
    """A coroutine function `method`, stamping `first` on entry and `then` once it returned."""

    async def marked(*args: Any, **kwargs: Any) -> Any:
        stamp(first)
        result = await method(*args, **kwargs)
        stamp(then)
        return result

    return marked


def _protocol(module: ModuleType) -> None:
    class Marked:
        __slots__ = ("_t",)

        def __init__(self, transport: Any) -> None:
            self._t = transport

        def write(self, data: bytes) -> None:
            _mark("out")
            self._t.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._t, name)

    joined_init = module.JoinedWrites.__init__

    def init(self: Any, transport: Any, loop: Any) -> None:
        joined_init(self, Marked(transport), loop)

    module.JoinedWrites.__init__ = init
    protocol = module.HttpProtocol
    protocol.data_received = _marking(protocol.data_received, _start, "in")


def _upstream(module: ModuleType) -> None:
    conn = module.Connection
    conn.request = _marking(conn.request, _mark, "up_out")
    conn.data_received = _marking(conn.data_received, _mark, "up_in")
    if DETAIL:
        conn.on_headers_complete = _marking(conn.on_headers_complete, _mark, "uphead")
        conn.on_body = _marking(conn.on_body, _mark, "upbody")


def _pool(module: ModuleType) -> None:
    acquire = module.Pool.acquire

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        conn = await acquire(self, *args, **kwargs)
        record = _record()
        if record is not None:
            record["fresh"] = record.get("fresh", 0) + (not conn.reused)
        return conn

    module.Pool.acquire = counted


def _front(module: ModuleType) -> None:
    door = module.FrontDoor
    door.__call__ = _around(door.__call__, "app", "done")
    door._identify = _around(door._identify, "auth0", "auth1")


def _common(module: ModuleType) -> None:
    module.json_body = _around(module.json_body, "body0", "body1")


def _runner(module: ModuleType) -> None:
    module.admit = _around(module.admit, "admit", "admitted")
    module.run_attempts = _around(module.run_attempts, "att0", "att1")


def _admission(module: ModuleType) -> None:
    module.take_hold = _around(module.take_hold, "hold0", "hold1")


def _sqlite(module: ModuleType) -> None:
    run_sqlite = module.run_sqlite

    def timed(conn: Any, plan: Any) -> Any:
        _mark("sql0")
        result = run_sqlite(conn, plan)
        _mark("sql1")
        return result

    module.run_sqlite = timed
    finish_open = module.SqliteStore.finish_open

    def commit(self: Any) -> None:
        if self._open is None:
            finish_open(self)
            return
        _mark("commit0")
        finish_open(self)
        _mark("commit1")

    module.SqliteStore.finish_open = commit


def _charge(module: ModuleType) -> None:
    charge = module.Charge
    charge.settle = _around(charge.settle, "settle0", "settle1", _mark_early)


def _responses(module: ModuleType) -> None:
    for cls in (module.Response, module.StreamResponse):
        cls.__call__ = _marking(cls.__call__, _mark, "resp")


def _openai(module: ModuleType) -> None:
    decoder = module._Decoder
    decoder.feed = _marking(decoder.feed, _mark, "feed")


DETAIL = bool(os.environ.get("FAREGATE_PHASES_DETAIL"))

PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "faregate.http.protocol": _protocol,
    "faregate.upstream.http1": _upstream,
    "faregate.upstream.pool": _pool,
}
if DETAIL:
    PATCHES |= {
        "faregate.api.front": _front,
        "faregate.api.common": _common,
        "faregate.pipeline.runner": _runner,
        "faregate.pipeline.admission": _admission,
        "faregate.billing.sqlite": _sqlite,
        "faregate.billing.charge": _charge,
        "faregate.http.responses": _responses,
        "faregate.providers.openai": _openai,
    }


class _Finder(importlib.abc.MetaPathFinder):
    """Patches each module of PATCHES right after it runs, before anyone imports from it."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in PATCHES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader_exec = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            loader_exec(module)
            PATCHES[fullname](module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _begin(signum: int, frame: FrameType | None) -> None:
    _records.clear()
    _current[0] = None
    _on[0] = True


def _end(signum: int, frame: FrameType | None) -> None:
    _on[0] = False
    path = os.environ["FAREGATE_PHASES_OUT"]
    with open(path + ".part", "w") as out:
        json.dump(_records, out)
    os.replace(path + ".part", path)


if os.environ.get("FAREGATE_PHASES_OUT") and os.environ.get("FAREGATE_ADMIN_KEY"):
    sys.meta_path.insert(0, _Finder())
    signal.signal(signal.SIGUSR1, _begin)
    signal.signal(signal.SIGUSR2, _end)
