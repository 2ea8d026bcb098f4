"""Errors rendered once per client protocol, in the envelope each protocol documents."""

from __future__ import annotations

from collections.abc import Callable

from faregate.errors import FaregateError, InsufficientBalance
from faregate.http.responses import Response


def _retry_headers(err: FaregateError) -> dict[str, str]:
    return {"retry-after": str(err.retry_after)} if err.retry_after is not None else {}


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


def llmage_error(err: FaregateError) -> Response:
    """`{"error": "message"}`; that API reports an empty balance as 429."""
    status = 429 if isinstance(err, InsufficientBalance) else err.status
    message = "Insufficient balance" if isinstance(err, InsufficientBalance) else err.message
    return Response.json({"error": message}, status, _retry_headers(err))


RENDERERS: dict[str, Callable[[FaregateError], Response]] = {
    "openai": openai_error,
    "llmage": llmage_error,
}


def render_error(protocol: str, err: FaregateError) -> Response:
    return RENDERERS.get(protocol, openai_error)(err)
