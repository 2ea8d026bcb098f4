"""Hub replies rendered as Responses API objects: output items, usage and the `response`.

Output order is reasoning (when the upstream exposed its reasoning text), the message (its
text as one `output_text` part), then one `function_call` item per tool call. A finish by
length makes the response `incomplete` with `incomplete_details.reason` `max_output_tokens`
(content_filter: `content_filter`). Usage comes from the settled usage: input, cached, output
and reasoning tokens. The cost is in the response headers, as on every route.
"""

from __future__ import annotations

import time
from typing import Any

from faregate.billing.types import Usage
from faregate.providers.base import content_text

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id(request_id: str) -> str:
    return "resp_" + request_id.removeprefix("req_")


def item_ids(request_id: str) -> tuple[str, str, str]:
    """The ids of a response's reasoning, message and (as a prefix) function-call items."""
    hex_id = request_id.removeprefix("req_")
    return f"rs_{hex_id}", f"msg_{hex_id}", f"fc_{hex_id}"


def usage_object(usage: Usage, hub: Any = None) -> dict[str, Any]:
    details = hub.get("prompt_tokens_details") if isinstance(hub, dict) else None
    writes = details.get("cache_write_tokens") if isinstance(details, dict) else 0
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": min(usage.cached_tokens, usage.prompt_tokens),
            "cache_write_tokens": writes if isinstance(writes, int) else 0,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}] if text else []
    return {"type": "reasoning", "id": item_id, "summary": [], "content": content, "status": status}


def message_item(item_id: str, text: str | None, status: str = "completed") -> dict[str, Any]:
    content = [] if text is None else [text_part(text)]
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_items(reply: dict[str, Any], request_id: str) -> tuple[list[dict[str, Any]], Any]:
    """The output items of a hub chat completion, and its finish reason."""
    choices = reply.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    finish = choice.get("finish_reason")
    rs_id, msg_id, fc_prefix = item_ids(request_id)
    items: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        items.append(reasoning_item(rs_id, reasoning))
    text = content_text(message.get("content"))
    status = "incomplete" if finish in INCOMPLETE else "completed"
    if text or not message.get("tool_calls"):
        items.append(message_item(msg_id, text, status))
    for i, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") or {}
        arguments = fn.get("arguments")
        items.append(
            function_call_item(
                f"{fc_prefix}_{i}",
                str(call.get("id") or f"call_{request_id.removeprefix('req_')}_{i}"),
                str(fn.get("name") or ""),
                arguments if isinstance(arguments, str) else "{}",
            )
        )
    return items, finish


def response_object(
    echo: dict[str, Any],
    *,
    request_id: str,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    previous_response_id: str | None,
    store: bool,
    created_at: int | None = None,
    incomplete_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `response` object: the request's echoed settings, its status, output and usage."""
    created = created_at if created_at is not None else int(time.time())
    done = status in ("completed", "incomplete", "failed")
    out = {
        "id": response_id(request_id),
        "object": "response",
        "created_at": created,
        "status": status,
        "completed_at": int(time.time()) if done else None,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": previous_response_id,
        "reasoning": echo.get("reasoning") or {"effort": None, "summary": None},
        "store": store,
        "temperature": echo.get("temperature", 1.0),
        "text": echo.get("text") or {"format": {"type": "text"}},
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools") or [],
        "top_p": echo.get("top_p", 1.0),
        "truncation": "disabled",
        "metadata": echo.get("metadata") or {},
    }
    if usage is not None:
        out["usage"] = usage
    if isinstance(echo.get("user"), str):
        out["user"] = echo["user"]
    return out


def from_hub(
    reply: dict[str, Any],
    usage: Usage,
    echo: dict[str, Any],
    *,
    request_id: str,
    model: str,
    previous_response_id: str | None,
    store: bool,
) -> dict[str, Any]:
    """The `response` of a whole hub chat completion."""
    output, finish = output_items(reply, request_id)
    reason = INCOMPLETE.get(finish) if isinstance(finish, str) else None
    return response_object(
        echo,
        request_id=request_id,
        model=model,
        status="incomplete" if reason else "completed",
        output=output,
        usage=usage_object(usage, reply.get("usage")),
        previous_response_id=previous_response_id,
        store=store,
        incomplete_reason=reason,
    )


def from_native(
    upstream: dict[str, Any],
    usage: Usage,
    echo: dict[str, Any],
    *,
    request_id: str,
    model: str,
    previous_response_id: str | None,
    store: bool,
) -> dict[str, Any]:
    """The `response` of an upstream that answered in the Responses API: its output items and
    status as they came, under the gateway's id, model, settings and settled usage."""
    status = upstream.get("status")
    details = upstream.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    output = upstream.get("output")
    return response_object(
        echo,
        request_id=request_id,
        model=model,
        status=status if isinstance(status, str) else "completed",
        output=output if isinstance(output, list) else [],
        usage=usage_object(usage),
        previous_response_id=previous_response_id,
        store=store,
        created_at=upstream.get("created_at")
        if isinstance(upstream.get("created_at"), int)
        else None,
        incomplete_reason=reason if isinstance(reason, str) else None,
    )
