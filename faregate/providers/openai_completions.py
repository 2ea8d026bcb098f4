"""The legacy OpenAI Completions protocol (`POST /completions`), sent as the client wrote it
to an OpenAI-compatible upstream that serves it (a provider with `completions = true`)."""

from __future__ import annotations

from typing import Any

import orjson

from faregate.providers.base import ChatResult, Credentials, UpstreamRequest
from faregate.providers.openai import usage_from


def build_request(
    body: dict[str, Any], upstream_model: str, creds: Credentials, cap: int, stream: bool
) -> UpstreamRequest:
    """The client's request under the upstream's model name, its output capped at `cap`, a
    stream asked to end with its usage."""
    out = {**body, "model": upstream_model}
    max_tokens = out.get("max_tokens")
    out["max_tokens"] = min(max_tokens, cap) if isinstance(max_tokens, int) else cap
    if stream:
        options = out.get("stream_options")
        out["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    headers = {"content-type": "application/json", **creds.headers}
    if creds.api_key:
        headers["authorization"] = f"Bearer {creds.api_key}"
    return UpstreamRequest("/completions", headers, orjson.dumps(out))


def is_completion(data: Any) -> bool:
    """Whether a reply or chunk is a text completion (not a chat completion)."""
    if not isinstance(data, dict):
        return False
    if data.get("object") == "text_completion":
        return True
    choices = data.get("choices")
    return (
        isinstance(choices, list)
        and bool(choices)
        and isinstance(choices[0], dict)
        and ("text" in choices[0])
    )


def parse(body: bytes) -> ChatResult | None:
    """A text-completion reply (its own bytes kept), or None when the body is not one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not is_completion(data):
        return None
    return ChatResult(data, usage_from(data.get("usage")), body)
