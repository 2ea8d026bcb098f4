"""Errors rendered once per client protocol, in the envelope each protocol documents."""

from __future__ import annotations

from collections.abc import Callable

from faregate.errors import FaregateError, InsufficientBalance
from faregate.http.responses import Response


def _retry_headers(err: FaregateError) -> dict[str, str]:
    """`Retry-After` when the error has one, and any headers the pipeline attached."""
    if err.retry_after is None:
        return err.headers
    return {**err.headers, "retry-after": str(err.retry_after)}


def openai_body(err: FaregateError) -> dict[str, object]:
    return {
        "error": {
            "message": err.message,
            "type": err.type,
            "code": err.code,
            "param": err.param,
        }
    }


def openai_error(err: FaregateError) -> Response:
    """`{"error": {"message", "type", "code", "param"}}` with the error's status."""
    return Response.json(openai_body(err), err.status, _retry_headers(err))


def llmage_body(err: FaregateError) -> dict[str, object]:
    message = "Insufficient balance" if isinstance(err, InsufficientBalance) else err.message
    return {"error": message}


def llmage_error(err: FaregateError) -> Response:
    """`{"error": "message"}`; that API reports an empty balance as 429."""
    status = 429 if isinstance(err, InsufficientBalance) else err.status
    return Response.json(llmage_body(err), status, _retry_headers(err))


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "overloaded_error",
}


def anthropic_body(err: FaregateError) -> dict[str, object]:
    return {
        "type": "error",
        "error": {"type": _ANTHROPIC_TYPES.get(err.status, "api_error"), "message": err.message},
    }


def anthropic_error(err: FaregateError) -> Response:
    """`{"type": "error", "error": {"type", "message"}}`, as the Messages API answers."""
    return Response.json(anthropic_body(err), err.status, _retry_headers(err))


_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}


def gemini_body(err: FaregateError) -> dict[str, object]:
    return {
        "error": {
            "code": err.status,
            "message": err.message,
            "status": _GOOGLE_STATUS.get(err.status, "UNKNOWN"),
        }
    }


def gemini_error(err: FaregateError) -> Response:
    """`{"error": {"code", "message", "status"}}`, the Google API error shape."""
    return Response.json(gemini_body(err), err.status, _retry_headers(err))


RENDERERS: dict[str, Callable[[FaregateError], Response]] = {
    "openai": openai_error,
    "admin": openai_error,
    "llmage": llmage_error,
    "anthropic": anthropic_error,
    "gemini": gemini_error,
}


def render_error(protocol: str, err: FaregateError) -> Response:
    return RENDERERS.get(protocol, openai_error)(err)
