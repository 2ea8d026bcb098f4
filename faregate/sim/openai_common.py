"""OpenAI protocol pieces shared by its endpoints: errors, auth, headers, models."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from faregate.sim.faults import FaultScript, retry_headers
from faregate.sim.prologue import Dialect

INVALID_KEY = "sk-sim-invalid"
"""An API key the simulator always rejects, to simulate credential failures."""

MODELS = ("sim-small", "sim-large", "sim-reasoning")
MODEL_CREATED = 1_700_000_000
OWNER = "faregate-sim"

RATE_LIMIT_REQUESTS = 10_000
RATE_LIMIT_TOKENS = 10_000_000

_STATUS_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (simulated by faregate sim)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", "permission_denied", "You are not allowed to use this model."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("server_error", "timeout", "Request timed out."),
    409: ("invalid_request_error", "conflict", "Conflicting request."),
    413: ("invalid_request_error", "request_too_large", "Request too large."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: ("rate_limit_exceeded", "rate_limit_exceeded", ""),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "The server timed out while processing your request."),
}


def error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The OpenAI error envelope."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def json_response(
    payload: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """An `application/json` response serialised with orjson."""
    return web.Response(
        body=orjson.dumps(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(
    status: int,
    message: str,
    error_type: str = "invalid_request_error",
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An OpenAI error envelope with its status."""
    base = request_headers()
    base.update(headers or {})
    return json_response(
        error_body(message, error_type, param=param, code=code), status=status, headers=base
    )


def invalid_param(message: str, param: str | None, code: str | None = None) -> web.Response:
    """A 400 `invalid_request_error` naming the offending parameter."""
    return error_response(400, message, param=param, code=code)


def check_auth(request: web.BaseRequest) -> web.Response | None:
    """A 401 response unless the request carries an acceptable Bearer key."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return error_response(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code="invalid_api_key",
        )
    if key == INVALID_KEY:
        return error_response(
            401,
            f"Incorrect API key provided: {key[:3]}***{key[-4:]}.",
            code="invalid_api_key",
        )
    return None


def request_headers(*, remaining_requests: int = RATE_LIMIT_REQUESTS - 1) -> dict[str, str]:
    """Per-response headers: a request id and the `x-ratelimit-*` family."""
    return {
        "x-request-id": "req_" + uuid.uuid4().hex,
        "openai-processing-ms": "1",
        "x-ratelimit-limit-requests": str(RATE_LIMIT_REQUESTS),
        "x-ratelimit-remaining-requests": str(remaining_requests),
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-limit-tokens": str(RATE_LIMIT_TOKENS),
        "x-ratelimit-remaining-tokens": str(RATE_LIMIT_TOKENS if remaining_requests else 0),
        "x-ratelimit-reset-tokens": "0s",
    }


def fault_error_response(script: FaultScript, model: str) -> web.Response | None:
    """The scripted error response, or None when the script asks for no error."""
    status = script.error_status
    if status is None:
        return None
    error_type, code, message = _STATUS_ERRORS.get(
        status,
        ("server_error" if status >= 500 else "invalid_request_error", None, "Simulated error."),
    )
    param: str | None = None
    retry = script.retry_after_seconds
    if script.error_type == "insufficient_quota":
        error_type = code = "insufficient_quota"
        message = (
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors."
        )
    elif script.error_type == "context_length_exceeded":
        error_type, code, param = "invalid_request_error", "context_length_exceeded", "messages"
        message = (
            f"This model's maximum context length is 128000 tokens. However, your messages "
            f"resulted in more tokens. Please reduce the length of the messages. ({model})"
        )
    elif script.error_type == "model_not_allowed":
        error_type, code = "invalid_request_error", "model_not_found"
        message = f"Project `proj_sim` does not have access to model `{model}`."
    elif script.error_type == "invalid_api_key":
        error_type, code = "invalid_request_error", "invalid_api_key"
        message = "Incorrect API key provided: sk-sim***. You can find your API key in the portal."
    elif script.error_type is not None:
        error_type = code = script.error_type
    if status == 429 and not message:
        wait = f"{retry:g}s" if retry is not None else "1s"
        message = (
            f"Rate limit reached for {model} in organization org-sim on requests per min "
            f"(RPM): Limit {RATE_LIMIT_REQUESTS}, Used {RATE_LIMIT_REQUESTS}, Requested 1. "
            f"Please try again in {wait}."
        )
    headers = retry_headers(retry)
    if status == 429:
        headers.update(request_headers(remaining_requests=0))
    return error_response(status, message, error_type, param=param, code=code, headers=headers)


def openai_dialect(bad_json_message: str) -> Dialect:
    """The prologue of an OpenAI endpoint: Bearer auth, the fault script anywhere in the body,
    OpenAI errors, and `bad_json_message` for a body that is not a JSON object."""
    return Dialect(
        check_auth=check_auth,
        script_carrier=lambda body: body,
        bad_script=lambda message: invalid_param(message, None, "invalid_sim_fault"),
        fault_error=fault_error_response,
        bad_json=lambda: invalid_param(bad_json_message, None),
    )


def model_object(model: str) -> dict[str, Any]:
    """One entry of the model list."""
    return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": OWNER}


async def list_models(request: web.Request) -> web.Response:
    """`GET /v1/models`: the simulator's models in the OpenAI list shape."""
    if (denied := check_auth(request)) is not None:
        return denied
    data = [model_object(model) for model in MODELS]
    return json_response({"object": "list", "data": data}, headers=request_headers())


async def retrieve_model(request: web.Request) -> web.Response:
    """`GET /v1/models/{model}`: any model name exists in the simulator."""
    if (denied := check_auth(request)) is not None:
        return denied
    return json_response(model_object(request.match_info["model"]), headers=request_headers())


def now() -> int:
    """The current Unix time in whole seconds."""
    return int(time.time())
