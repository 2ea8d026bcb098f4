"""Fault scripts: parse per-request directives and play them out on the wire.

A script is a semicolon-separated list of directives, each `name` or
`name=value` (whitespace around either is ignored, empty directives are
skipped, a repeated directive keeps its last value):

    status=CODE         answer with this HTTP error status (400-599)
    error_type=TYPE     answer with this error type (default status from the
                        type: insufficient_quota/rate_limit_exceeded 429,
                        invalid_request_error/context_length_exceeded 400,
                        invalid_api_key 401 (gemini: its 400 API_KEY_INVALID),
                        model_not_allowed 403 (this request's model is not
                        allowed: a refusal that says nothing of the key),
                        not_found_error 404, else 500)
    retry_after=SECONDS Retry-After on the error (429 defaults to 1 second)
    hang                never send headers; wait until the client goes away
    latency_ms=MS       wait before sending headers
    stall_after=N       send N content chunks, then go silent (connection open)
    cut_after=N         send N content chunks, then abort the TCP connection
    no_usage            leave out the usage (streams: the usage chunk or field)
    chunk_delay_ms=MS   wait between streamed chunks
    tokens=N            make the reply exactly N completion tokens
    reply=TEXT          make the reply's text exactly TEXT (OpenAI chat; no `;` in it)
    cached_tokens=N     report exactly N cached prompt tokens
    reasoning_tokens=N  report exactly N reasoning tokens
    fail_times=K        apply the failure directives only to the first K
    key=ID              requests carrying this key (default: the script text);
                        with no failure directive, fail with status 500
    bad_image           images come back malformed (a PNG signature, then garbage)
    images=N            answer at most N images (a partial success)

Failure directives are status, error_type, retry_after, hang, latency_ms,
stall_after, cut_after, no_usage, bad_image and images; the others shape every response.
For a non-streaming response, stall_after and cut_after send the headers and
the first half of the body before stalling or aborting.

A request carries its script in the `x-sim-fault` header, in the body's
`metadata.sim_fault`, or in a `user` field starting with `sim:`. When several
are present they are joined in that reverse order (user, metadata, header), so
the header wins on a repeated directive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from faregate.sim.state import SimState

FAULT_HEADER = "x-sim-fault"
USER_PREFIX = "sim:"

_ERROR_TYPE_STATUS = {
    "insufficient_quota": 429,
    "rate_limit_exceeded": 429,
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "invalid_api_key": 401,
    "model_not_allowed": 403,
    "not_found_error": 404,
    "server_error": 500,
}

_INT_FIELDS = {
    "status",
    "stall_after",
    "cut_after",
    "tokens",
    "cached_tokens",
    "reasoning_tokens",
    "fail_times",
    "images",
}
_FLOAT_FIELDS = {"retry_after", "latency_ms", "chunk_delay_ms"}
_FLAG_FIELDS = {"hang", "no_usage", "bad_image"}
_TEXT_FIELDS = {"error_type", "key", "reply"}
_FAILURE_FIELDS = (
    "status",
    "error_type",
    "retry_after",
    "hang",
    "latency_ms",
    "stall_after",
    "cut_after",
    "no_usage",
    "bad_image",
    "images",
)

_POLL_SECONDS = 0.05


class FaultScriptError(ValueError):
    """A fault script that does not parse; `directive` names the culprit."""

    def __init__(self, directive: str, reason: str) -> None:
        super().__init__(f"Invalid sim fault directive '{directive}': {reason}.")
        self.directive = directive


@dataclass(frozen=True, slots=True)
class FaultScript:
    """The parsed directives of one request; unset directives are None/False."""

    status: int | None = None
    error_type: str | None = None
    retry_after: float | None = None
    hang: bool = False
    latency_ms: float | None = None
    stall_after: int | None = None
    cut_after: int | None = None
    no_usage: bool = False
    chunk_delay_ms: float | None = None
    tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    fail_times: int | None = None
    key: str | None = None
    reply: str | None = None
    bad_image: bool = False
    images: int | None = None
    text: str = ""

    @property
    def error_status(self) -> int | None:
        """The HTTP status to fail with, if the script asks for an error."""
        if self.status is not None:
            return self.status
        if self.error_type is not None:
            return _ERROR_TYPE_STATUS.get(self.error_type, 500)
        return None

    @property
    def retry_after_seconds(self) -> float | None:
        """Seconds for Retry-After: explicit, or 1 for a plain 429 rate limit."""
        if self.retry_after is not None:
            return self.retry_after
        if self.error_status == 429 and self.error_type != "insufficient_quota":
            return 1.0
        return None

    def _has_failure(self) -> bool:
        return (
            self.error_status is not None
            or self.hang
            or self.stall_after is not None
            or self.cut_after is not None
            or self.bad_image
            or self.images is not None
        )


NO_FAULTS = FaultScript()


def select_script(header: str | None, body: Mapping[str, Any] | None) -> str:
    """The script text a request carries in its header, metadata or user field."""
    parts: list[str] = []
    if body is not None:
        user = body.get("user")
        if isinstance(user, str) and user.startswith(USER_PREFIX):
            parts.append(user[len(USER_PREFIX) :])
        metadata = body.get("metadata")
        if isinstance(metadata, Mapping):
            value = metadata.get("sim_fault")
            if isinstance(value, str):
                parts.append(value)
    if header:
        parts.append(header)
    return ";".join(part for part in parts if part.strip())


def parse_script(text: str) -> FaultScript:
    """Parse a script; raise `FaultScriptError` naming a bad or unknown directive."""
    values: dict[str, Any] = {}
    for raw in text.split(";"):
        directive = raw.strip()
        if not directive:
            continue
        name, sep, value = directive.partition("=")
        name, value = name.strip().lower(), value.strip()
        if name in _FLAG_FIELDS:
            if sep and value.lower() not in ("1", "true", "yes"):
                raise FaultScriptError(directive, "a flag takes no value")
            values[name] = True
        elif not sep or not value:
            if name in _INT_FIELDS | _FLOAT_FIELDS | _TEXT_FIELDS:
                raise FaultScriptError(directive, "a value is required")
            raise FaultScriptError(directive, "unknown directive")
        elif name in _INT_FIELDS:
            values[name] = _parse_int(directive, value)
        elif name in _FLOAT_FIELDS:
            values[name] = _parse_float(directive, value)
        elif name in _TEXT_FIELDS:
            values[name] = value
        else:
            raise FaultScriptError(directive, "unknown directive")
    status = values.get("status")
    if status is not None and not 400 <= status <= 599:
        raise FaultScriptError(f"status={status}", "expected an error status 400-599")
    script = FaultScript(**values, text=text)
    if script.fail_times is not None and not script._has_failure():
        script = dataclasses.replace(script, status=500)
    return script


def resolve_script(script: FaultScript, state: SimState) -> FaultScript:
    """Apply `fail_times`: past the first K requests, drop the failure directives."""
    if script.fail_times is None:
        return script
    key = script.key if script.key is not None else script.text
    if state.take_failure(key, script.fail_times):
        return script
    cleared: dict[str, Any] = {name: None for name in _FAILURE_FIELDS}
    cleared["hang"] = cleared["no_usage"] = cleared["bad_image"] = False
    return dataclasses.replace(script, **cleared)


def _parse_int(directive: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise FaultScriptError(directive, "expected an integer") from None
    if number < 0:
        raise FaultScriptError(directive, "expected a non-negative integer")
    return number


def _parse_float(directive: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise FaultScriptError(directive, "expected a number") from None
    if not math.isfinite(number) or number < 0:
        raise FaultScriptError(directive, "expected a non-negative number")
    return number


def retry_headers(seconds: float | None) -> dict[str, str]:
    """Retry-After (whole seconds, rounded up) and retry-after-ms headers."""
    if seconds is None:
        return {}
    return {
        "Retry-After": str(math.ceil(seconds)),
        "retry-after-ms": str(round(seconds * 1000)),
    }


def client_gone(request: web.BaseRequest) -> bool:
    """Whether the client closed the connection of this request."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def wait_for_disconnect(request: web.BaseRequest) -> None:
    """Sleep until the client closes the connection (or the handler is cancelled)."""
    # aiohttp exposes no public disconnect event, so poll the transport.
    while not client_gone(request):  # noqa: ASYNC110
        await asyncio.sleep(_POLL_SECONDS)


async def pause(milliseconds: float | None) -> None:
    """Sleep for a number of milliseconds; no-op for None or zero."""
    if milliseconds:
        await asyncio.sleep(milliseconds / 1000)


def abort_connection(request: web.BaseRequest) -> None:
    """Drop the TCP connection at once, without finishing the HTTP message."""
    transport = request.transport
    if transport is not None:
        transport.abort()


class StreamStopped(Exception):
    """Raised by `ChunkWriter` once a stall or cut has ended the stream."""


class ChunkWriter:
    """Write a prepared streaming response chunk by chunk, playing stall/cut faults.

    The first chunk is always written; afterwards, once `limit` content chunks
    are out, the next write stalls or cuts instead and raises `StreamStopped`.
    """

    def __init__(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        script: FaultScript,
        chunk_delay_ms: float,
    ) -> None:
        self._request = request
        self._response = response
        self._delay = chunk_delay_ms
        self._cut = script.cut_after is not None
        limit = script.cut_after if self._cut else script.stall_after
        self._limit = limit
        self._content_sent = 0
        self._writes = 0

    async def send(self, data: bytes, *, content: bool) -> None:
        """Write one chunk; `content` marks chunks that carry generated output."""
        if self._writes and self._limit is not None and self._content_sent >= self._limit:
            await self.stop()
        if self._writes:
            await pause(self._delay)
        await self._response.write(data)
        self._writes += 1
        if content:
            self._content_sent += 1

    async def stop(self) -> None:
        """Cut or stall now, then raise `StreamStopped`."""
        if self._cut:
            abort_connection(self._request)
        else:
            await wait_for_disconnect(self._request)
        raise StreamStopped


async def send_partial_body(
    request: web.BaseRequest, response: web.StreamResponse, body: bytes, script: FaultScript
) -> web.StreamResponse:
    """Non-streaming stall/cut: send headers and half the body, then stall or cut."""
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    if script.cut_after is not None:
        abort_connection(request)
    else:
        await wait_for_disconnect(request)
    return response
