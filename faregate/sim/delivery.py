"""Sending a reply, whole or streamed, with the scripted stall, cut and chunk delay."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from faregate.sim.faults import ChunkWriter, FaultScript, StreamStopped, send_partial_body
from faregate.sim.state import STATE

JSON = "application/json"


async def send_json(
    request: web.Request,
    script: FaultScript,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    partial_type: str = JSON,
) -> web.StreamResponse:
    """A JSON reply; with stall_after or cut_after, its headers (Content-Type `partial_type`)
    and first half, then a stall or cut (`send_partial_body`)."""
    if script.cut_after is not None or script.stall_after is not None:
        response = web.StreamResponse(headers={"Content-Type": partial_type, **(headers or {})})
        return await send_partial_body(request, response, body, script)
    return web.Response(body=body, content_type=JSON, headers=headers)


async def play_stream(
    request: web.Request,
    script: FaultScript,
    headers: dict[str, str],
    chunks: Iterable[tuple[bytes, bool]],
) -> web.StreamResponse:
    """Stream `chunks` (data, whether it counts as a content chunk) as they are produced,
    the script's chunk delay (else the simulator's) between them, until a stall or cut."""
    delay = script.chunk_delay_ms
    if delay is None:
        delay = request.app[STATE].chunk_delay_ms
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    writer = ChunkWriter(request, response, script, delay)
    try:
        for data, content in chunks:
            await writer.send(data, content=content)
    except StreamStopped:
        return response
    await response.write_eof()
    return response
