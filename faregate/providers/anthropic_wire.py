"""Anthropic Messages wire facts shared by the adapter, its stream decoder and the client routes.

Usage arithmetic (Anthropic counts cache reads and cache writes apart from `input_tokens`;
the hub's OpenAI usage counts every prompt token in `prompt_tokens`):

    prompt_tokens     = input_tokens + cache_read_input_tokens + cache_creation_input_tokens
    cached_tokens     = cache_read_input_tokens
    completion_tokens = output_tokens          (thinking included, as Anthropic bills it)
    reasoning_tokens  = output_tokens_details.thinking_tokens when reported, else 0

The cache writes also go to `prompt_tokens_details.cache_write_tokens` (the OpenAI SDK's
name for them), so that an Anthropic client can be given its own three numbers back.
"""

from __future__ import annotations

from typing import Any

from faregate.errors import BadRequest, FailureClass, UpstreamError

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""`max_tokens` when the caller set none (Anthropic requires it)."""

JSON_TOOL = "json_response"
"""The tool that carries a `json_schema` answer (see `faregate.providers.anthropic`)."""

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Anthropic error type -> (what the gateway does about it, the status Anthropic sends with it).
ERROR_TYPES: dict[str, tuple[FailureClass, int]] = {
    "invalid_request_error": (FailureClass.CALLER, 400),
    "authentication_error": (FailureClass.CREDENTIAL, 401),
    "billing_error": (FailureClass.QUOTA, 402),
    "permission_error": (FailureClass.REFUSED, 403),  # this request, not the key
    "not_found_error": (FailureClass.TRANSIENT, 404),
    "request_too_large": (FailureClass.CALLER, 413),
    "rate_limit_error": (FailureClass.RATE_LIMIT, 429),
    "api_error": (FailureClass.TRANSIENT, 500),
    "timeout_error": (FailureClass.TIMEOUT, 504),
    "overloaded_error": (FailureClass.TRANSIENT, 529),
}

_STATUS_FAILURES = {
    400: FailureClass.CALLER,
    401: FailureClass.CREDENTIAL,
    402: FailureClass.QUOTA,
    403: FailureClass.REFUSED,
    408: FailureClass.TIMEOUT,
    413: FailureClass.CALLER,
    422: FailureClass.CALLER,
    429: FailureClass.RATE_LIMIT,
    504: FailureClass.TIMEOUT,
}

_CREDIT_HINTS = ("credit balance", "billing", "spend limit")


def count(value: Any) -> int:
    """A token count from the wire: a non-negative integer, anything else is 0."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


def hub_usage(usage: Any) -> dict[str, Any] | None:
    """OpenAI usage from an Anthropic `usage` object (None when it lacks the two counts)."""
    if not isinstance(usage, dict):
        return None
    if not isinstance(usage.get("input_tokens"), int) or not isinstance(
        usage.get("output_tokens"), int
    ):
        return None
    read = count(usage.get("cache_read_input_tokens"))
    write = count(usage.get("cache_creation_input_tokens"))
    prompt = count(usage["input_tokens"]) + read + write
    completion = count(usage["output_tokens"])
    details = usage.get("output_tokens_details")
    thinking = count(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
        "completion_tokens_details": {"reasoning_tokens": min(thinking, completion)},
    }


def failure_of(kind: str, status: int, message: str) -> FailureClass:
    """How the gateway treats an Anthropic error of this type and status."""
    if kind == "invalid_request_error" and any(h in message.lower() for h in _CREDIT_HINTS):
        return FailureClass.QUOTA  # "Your credit balance is too low to access the API"
    if kind in ERROR_TYPES:
        return ERROR_TYPES[kind][0]
    return _STATUS_FAILURES.get(status, FailureClass.TRANSIENT)


def stream_error(payload: Any) -> UpstreamError:
    """The failure an `event: error` in the middle of a stream stands for."""
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    kind = str(error.get("type") or "api_error")
    message = str(error.get("message") or kind)
    status = ERROR_TYPES.get(kind, (FailureClass.TRANSIENT, 500))[1]
    failure = failure_of(kind, status, message)
    if failure in (FailureClass.CALLER, FailureClass.CREDENTIAL):
        failure = FailureClass.TRANSIENT  # the request was accepted; the break is not its fault
    return UpstreamError(failure, message, status=status)


def unsupported(param: str, what: str) -> BadRequest:
    return BadRequest(
        f"{what} is not supported by Anthropic models.", code="unsupported_feature", param=param
    )


def invalid(param: str, message: str) -> BadRequest:
    return BadRequest(message, code="invalid_value", param=param)
