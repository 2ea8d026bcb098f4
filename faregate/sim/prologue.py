"""The start every protocol handler shares: count, authenticate, read the body, play faults."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from faregate.sim.faults import (
    FAULT_HEADER,
    FaultScript,
    FaultScriptError,
    parse_script,
    pause,
    resolve_script,
    select_script,
    wait_for_disconnect,
)
from faregate.sim.state import STATE

CLIENT_CLOSED = 499
"""The status logged for a `hang` request once its client has gone away."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """What the prologue of one protocol differs in: its auth, errors and fault carrier."""

    check_auth: Callable[[web.BaseRequest], web.Response | None]
    """The refusal of a request without acceptable credentials (or required headers), or None."""
    script_carrier: Callable[[dict[str, Any] | None], Mapping[str, Any] | None]
    """The mapping `select_script` reads a fault script from (its `user` field or
    `metadata.sim_fault`), given the body (None when it is not a JSON object)."""
    bad_script: Callable[[str], web.Response]
    """The 400 for a fault script that does not parse, given the parser's message."""
    fault_error: Callable[[FaultScript, str], web.Response | None]
    """The scripted error for the named model ("unknown" when none), or None."""
    bad_json: Callable[[], web.Response]
    """The 400 for a body that is not a JSON object."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request past the prologue: its JSON object body and its resolved fault script."""

    body: dict[str, Any]
    script: FaultScript


BodyReader = Callable[[web.Request], Awaitable[dict[str, Any] | None]]
"""Reads a body that is not JSON (a multipart form) into an object, None when it is not one."""


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        decoded = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        decoded = None
    return decoded if isinstance(decoded, dict) else None


async def prologue(
    request: web.Request,
    route: str,
    dialect: Dialect,
    *,
    url_model: str | None = None,
    read_body: BodyReader = _json_object,
) -> Admitted | web.Response:
    """Count the request under `route`, check auth, read the JSON body and count its model,
    select, parse and resolve the fault script, pause for latency, play `hang` and the
    scripted error, and refuse a body that is not a JSON object; else admit the request.

    `read_body` reads the body (default: a JSON object). Without `url_model` the model is
    the body's `model` field, counted as soon as the body is read. A model named by the URL
    (Gemini) is counted only once the request is past the fault script, the latency and
    `hang`.
    """
    state = request.app[STATE]
    state.count_request(route)
    if (refused := dialect.check_auth(request)) is not None:
        return refused
    body = await read_body(request)
    model = body.get("model") if body is not None and url_model is None else None
    if isinstance(model, str):
        state.count_model(model)
    carrier = dialect.script_carrier(body)
    try:
        script = parse_script(select_script(request.headers.get(FAULT_HEADER), carrier))
    except FaultScriptError as exc:
        return dialect.bad_script(str(exc))
    script = resolve_script(script, state)
    await pause(script.latency_ms if script.latency_ms is not None else state.latency_ms)
    if script.hang:
        await wait_for_disconnect(request)
        return web.Response(status=CLIENT_CLOSED)
    if url_model is not None:
        state.count_model(url_model)
        model = url_model
    failure = dialect.fault_error(script, model if isinstance(model, str) else "unknown")
    if failure is not None:
        return failure
    if body is None:
        return dialect.bad_json()
    return Admitted(body, script)
