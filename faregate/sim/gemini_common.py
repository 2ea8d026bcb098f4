"""Gemini API pieces of the simulator shared by its routes: errors, keys, faults, models.

Errors come in Google's shape `{"error": {"code", "message", "status", "details"}}`. The key
comes in `x-goog-api-key` or `?key=`; none is a 403, `sim-gemini-invalid` (or `sk-sim-invalid`)
a 400 API_KEY_INVALID, as Google answers. A scripted 429 carries Retry-After and a RetryInfo
detail; `error_type=insufficient_quota` makes it a daily QuotaFailure with limit 0.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from aiohttp import web

from faregate.sim.faults import FaultScript, retry_headers
from faregate.sim.openai_common import INVALID_KEY
from faregate.sim.prologue import Dialect

PREFIX = "/v1beta/models"
GEMINI_INVALID_KEY = "sim-gemini-invalid"
EMBED_DIMENSIONS = 8
CHAT_MODELS = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-3-pro-preview")
EMBED_MODELS = ("gemini-embedding-001",)

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    408: "The request timed out. Please try again.",
    429: "You exceeded your current quota, please check your plan and billing details. For "
    "more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}
_TYPE = "type.googleapis.com/google.rpc."
JSON_TYPE = "application/json; charset=UTF-8"


def google_error(
    status: int,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An error in the Google API shape."""
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return web.Response(
        body=orjson.dumps({"error": error}),
        status=status,
        content_type="application/json",
        charset="UTF-8",
        headers=headers,
    )


def invalid(message: str) -> web.Response:
    return google_error(400, message)


def _key_invalid() -> web.Response:
    info = {
        "@type": _TYPE + "ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    return google_error(400, "API key not valid. Please pass a valid API key.", details=[info])


def check_key(request: web.BaseRequest) -> web.Response | None:
    """403 without a key, 400 API_KEY_INVALID for the always-invalid keys."""
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        return google_error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    if key in (GEMINI_INVALID_KEY, INVALID_KEY):
        return _key_invalid()
    return None


def fault_error(script: FaultScript, model: str) -> web.Response | None:
    """The scripted error in Google's shape, or None."""
    status = script.error_status
    if status is None:
        return None
    if script.error_type == "invalid_api_key" and script.status is None:
        return _key_invalid()  # Google answers a bad key with a 400
    message = MESSAGES.get(status, "Simulated error.")
    details: list[dict[str, Any]] = []
    headers = retry_headers(script.retry_after_seconds)
    if status == 404:
        message = (
            f"models/{model} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods."
        )
    elif script.error_type == "model_not_allowed":
        message = f"You do not have permission to access model models/{model}."
    elif script.error_type == "context_length_exceeded":
        message = "The input token count exceeds the maximum number of tokens allowed (1048576)."
    elif status == 429:
        daily = script.error_type == "insufficient_quota"
        quota = "GenerateRequestsPerDayPerProjectPerModel" if daily else "GenerateRequestsPerMinute"
        violation = {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
            "quotaId": f"{quota}PerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": model},
            "quotaValue": "0" if daily else "10",
        }
        details.append({"@type": _TYPE + "QuotaFailure", "violations": [violation]})
        if script.retry_after_seconds is not None:
            delay = f"{math.ceil(script.retry_after_seconds)}s"
            details.append({"@type": _TYPE + "RetryInfo", "retryDelay": delay})
        if daily:
            message += " Quota exceeded for metric: generate_content_requests per day, limit: 0"
    return google_error(status, message, details=details or None, headers=headers)


DIALECT = Dialect(
    check_auth=check_key,
    script_carrier=lambda body: {"metadata": body.get("labels") if body is not None else None},
    bad_script=invalid,
    fault_error=fault_error,
    bad_json=lambda: invalid("Invalid JSON payload received. Expected an object."),
)
"""The prologue of a Gemini route: the key, Google errors, a fault script in `labels`."""


def model_card(name: str) -> dict[str, Any]:
    """One entry of the model list, in the Gemini API shape."""
    embed = name in EMBED_MODELS or "embedding" in name
    methods = ["embedContent", "batchEmbedContents", "countTokens"] if embed else [
        "generateContent", "countTokens", "createCachedContent", "batchGenerateContent"
    ]  # fmt: skip
    card: dict[str, Any] = {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name.replace("-", " ").title(),
        "description": f"{name} (faregate simulator)",
        "inputTokenLimit": 2048 if embed else 1_048_576,
        "outputTokenLimit": 1 if embed else 65_536,
        "supportedGenerationMethods": methods,
    }
    if not embed:
        card |= {"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True}
    return card


async def list_models(request: web.Request) -> web.Response:
    """`GET /v1beta/models`."""
    if (denied := check_key(request)) is not None:
        return denied
    models = [model_card(m) for m in (*CHAT_MODELS, *EMBED_MODELS)]
    return web.Response(body=orjson.dumps({"models": models}), content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    """`GET /v1beta/models/{model}`: any model name exists in the simulator."""
    if (denied := check_key(request)) is not None:
        return denied
    card = model_card(request.match_info["tail"])
    return web.Response(body=orjson.dumps(card), content_type="application/json")
