"""The Anthropic Messages protocol of the simulator: `POST /v1/messages` and `count_tokens`.

Requests need a key in `x-api-key` or `Authorization: Bearer` (401 without one;
`sk-sim-invalid` is always refused) and an `anthropic-version` header (400 without it);
bodies are validated as the real API does (`anthropic_request.py`) and every error has
Anthropic's shape, `{"type": "error", "error": {"type", "message"}, "request_id"}`.

Replies are deterministic (`anthropic_reply.py`) and usage is exact:

* the prompt count P = `faregate.tokens.count_messages(flat, tools)`, where `flat` is the
  system text as a system message, then every message with its text blocks, tool_use blocks
  (name and JSON input), tool_result contents and thinking texts as text and each image or
  document as an image, and `tools` is the request's raw `tools` array;
  `count_tokens` answers `{"input_tokens": P}`;
* input_tokens = P - cache_read_input_tokens; cache_read_input_tokens = the `cached_tokens=N`
  directive (capped at P), else 0; cache_creation_input_tokens = 0;
* output_tokens = the thinking tokens (16 by default when thinking is enabled, the
  `reasoning_tokens=N` directive overrides, capped at the budget; reported again as
  `output_tokens_details.thinking_tokens`) + `count_text` of the text, or of each tool
  call's name and JSON input. `tokens=N` fixes the text before stop sequences and max_tokens
  cut it; a reply cut by max_tokens stops with "max_tokens".

Faults are the OpenAI simulator's scripts (`faults.py`), carried in the `x-sim-fault` header
or in `metadata.user_id` starting with `sim:`. Error types map to Anthropic's statuses:
invalid_request_error 400, authentication_error/invalid_api_key 401, billing_error 402,
permission_error 403, not_found_error 404, request_too_large 413, rate_limit_error/
rate_limit_exceeded 429 (Retry-After 1 unless given), api_error/server_error 500,
timeout_error 504, overloaded/overloaded_error 529; insufficient_quota is Anthropic's
400 "credit balance is too low". `no_usage` leaves the usage out of a message, and out of
a stream's `message_delta`; for
stall_after/cut_after, the text, thinking, signature and tool-input deltas count.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web

from faregate.sim.anthropic_reply import generate, message_payload, stream_events, usage_of
from faregate.sim.anthropic_request import Invalid, parse_messages_request
from faregate.sim.delivery import play_stream, send_json
from faregate.sim.faults import USER_PREFIX, FaultScript, retry_headers
from faregate.sim.openai_common import INVALID_KEY
from faregate.sim.prologue import Dialect, prologue

ROUTE = "/v1/messages"
COUNT_ROUTE = "/v1/messages/count_tokens"

_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "billing_error": 402,
    "permission_error": 403,
    "model_not_allowed": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "api_error": 500,
    "server_error": 500,
    "timeout_error": 504,
    "overloaded": 529,
    "overloaded_error": 529,
    "insufficient_quota": 400,
    "context_length_exceeded": 400,
}
_STATUS_ERRORS = {
    400: ("invalid_request_error", "Invalid request (simulated by faregate sim)."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your account has a billing problem."),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "model: not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
_SPECIAL_MESSAGES = {
    "insufficient_quota": "Your credit balance is too low to access the Anthropic API. Please "
    "go to Plans & Billing to upgrade or purchase credits.",
    "context_length_exceeded": "prompt is too long: 250000 tokens > 200000 maximum",
}


def add_routes(app: web.Application) -> None:
    """Register the Anthropic routes."""
    app.router.add_post(ROUTE, messages)
    app.router.add_post(COUNT_ROUTE, count_tokens)


def _headers(**extra: str) -> dict[str, str]:
    return {
        "request-id": "req_" + uuid.uuid4().hex[:24],
        "anthropic-ratelimit-requests-limit": "4000",
        "anthropic-ratelimit-requests-remaining": "3999",
        "anthropic-ratelimit-tokens-limit": "400000",
        "anthropic-ratelimit-tokens-remaining": "400000",
        **extra,
    }


def error_response(
    status: int, message: str, kind: str = "invalid_request_error", **headers: str
) -> web.Response:
    """An error in Anthropic's envelope."""
    head = _headers(**headers)
    body = {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": head["request-id"],
    }
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=head
    )


def _check_headers(request: web.BaseRequest) -> web.Response | None:
    key = request.headers.get("x-api-key", "").strip()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not key and scheme.lower() == "bearer":
        key = token.strip()
    if not key:
        return error_response(401, "x-api-key header is required", "authentication_error")
    if key == INVALID_KEY:
        return error_response(401, "invalid x-api-key", "authentication_error")
    if not request.headers.get("anthropic-version"):
        return error_response(400, "anthropic-version: header is required")
    return None


def fault_error(script: FaultScript) -> web.Response | None:
    """The scripted error in Anthropic's shape, or None."""
    status = script.status
    if status is None and script.error_type is not None:
        status = _TYPE_STATUS.get(script.error_type, 500)
    if status is None:
        return None
    default = "api_error" if status >= 500 else "invalid_request_error"
    kind, message = _STATUS_ERRORS.get(status, (default, "Simulated error."))
    if script.error_type in _SPECIAL_MESSAGES:
        message = _SPECIAL_MESSAGES[script.error_type]
    elif script.error_type is not None and script.error_type not in _TYPE_STATUS:
        kind = script.error_type
    retry = script.retry_after
    if status == 429 and retry is None:
        retry = 1.0
    headers = retry_headers(retry)
    if status == 429:
        headers["anthropic-ratelimit-requests-remaining"] = "0"
    return error_response(status, message, kind, **headers)


def _script_carrier(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """A fault script rides in `metadata.user_id` when that starts with `sim:`."""
    metadata = body.get("metadata") if body is not None else None
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    return {"user": user} if isinstance(user, str) and user.startswith(USER_PREFIX) else None


DIALECT = Dialect(
    check_auth=_check_headers,
    script_carrier=_script_carrier,
    bad_script=lambda message: error_response(400, message),
    fault_error=lambda script, _model: fault_error(script),
    bad_json=lambda: error_response(400, "The request body is not valid JSON."),
)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """`POST /v1/messages/count_tokens`: the simulator's exact prompt count."""
    admitted = await prologue(request, COUNT_ROUTE, DIALECT)
    if isinstance(admitted, web.Response):
        return admitted
    try:
        req = parse_messages_request(admitted.body, counting=True)
    except Invalid as exc:
        return error_response(400, str(exc))
    return web.Response(
        body=orjson.dumps({"input_tokens": req.input_tokens}),
        content_type="application/json",
        headers=_headers(),
    )


async def messages(request: web.Request) -> web.StreamResponse:
    """`POST /v1/messages`, faults included."""
    admitted = await prologue(request, ROUTE, DIALECT)
    if isinstance(admitted, web.Response):
        return admitted
    script = admitted.script
    try:
        req = parse_messages_request(admitted.body)
    except Invalid as exc:
        return error_response(400, str(exc))
    reply = generate(req, script)
    usage = usage_of(req, reply, script)
    message_id = "msg_" + uuid.uuid4().hex[:24]
    if req.stream:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **_headers()}
        events = stream_events(message_id, req, reply, usage, not script.no_usage)
        return await play_stream(request, script, headers, events)
    body = message_payload(message_id, req, reply, usage)
    if script.no_usage:
        del body["usage"]
    payload = orjson.dumps(body)
    return await send_json(request, script, payload, _headers())
