"""An Anthropic Messages request, validated and translated into the hub chat call.

Errors are 400 invalid_request_error naming the field the way Anthropic does
(`messages.0.content.1.type: ...`), type errors included. `system` becomes a leading system
message; `tool_result` blocks become tool messages placed before the rest of their user turn
(`is_error` is kept on the tool message); `tool_use` blocks become `tool_calls` with JSON-string
arguments; thinking blocks become `thinking_blocks` (and `reasoning_content`); image sources
become `image_url` parts (base64 as a data URL); PDF and plain-text documents become `file`
and text parts; `cache_control` stays on parts and tools. `metadata.user_id` becomes `user`,
`stop_sequences` `stop`, `thinking` `thinking_budget` (enabled: budget_tokens, adaptive: -1,
disabled: 0), `tool_choice` auto/any/tool/none becomes auto/required/function/none with
`disable_parallel_tool_use` as `parallel_tool_calls: false`, and `output_config.format`
(a JSON schema) becomes `response_format: json_schema`.
"""

from __future__ import annotations

from typing import Any

import orjson

from faregate.errors import BadRequest
from faregate.providers.base import ChatCall

_FIELDS = frozenset(
    {
        "model", "max_tokens", "messages", "system", "metadata", "stop_sequences", "stream",
        "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "output_config",
    }
)  # fmt: skip
_COUNT_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"}
)
_UNSUPPORTED = frozenset(
    {
        "container", "mcp_servers", "context_management", "service_tier", "inference_geo",
        "speed", "cache_control", "diagnostics",
    }
)  # fmt: skip
_USER_BLOCKS = ("text", "image", "document", "tool_result")
_ASSISTANT_BLOCKS = ("text", "tool_use", "thinking", "redacted_thinking")


def _bad(where: str, message: str) -> BadRequest:
    return BadRequest(f"{where}: {message}", param=where)


def _unsupported(where: str, what: str) -> BadRequest:
    return BadRequest(
        f"{where}: {what} is not supported by this gateway.",
        code="unsupported_feature",
        param=where,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(where, "Input should be a valid dictionary")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad(where, "Input should be a valid string")
    return value


def to_call(body: dict[str, Any], request_id: str, *, counting: bool = False) -> ChatCall:
    """The hub call for a Messages (or count_tokens) body; BadRequest naming the bad field."""
    allowed = _COUNT_FIELDS if counting else _FIELDS
    for name in body:
        if name in _UNSUPPORTED:
            raise _unsupported(name, f"'{name}'")
        if name not in allowed:
            raise _bad(name, "Extra inputs are not permitted")
    for name in ("model", "messages") if counting else ("model", "max_tokens", "messages"):
        if body.get(name) is None:
            raise _bad(name, "Field required")
    hub: dict[str, Any] = {"model": _str(body["model"], "model")}
    max_tokens = body.get("max_tokens")
    if not counting:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise _bad("max_tokens", "Input should be a valid integer")
        if max_tokens < 1:
            raise _bad("max_tokens", "Input should be greater than or equal to 1")
        hub["max_tokens"] = max_tokens
    hub["messages"] = _system(body.get("system")) + to_messages(body["messages"])
    _sampling(body, hub)
    _metadata(body.get("metadata"), hub)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools", "Input should be a valid list")
        hub["tools"] = [_tool(tool, f"tools.{j}") for j, tool in enumerate(tools)]
    _tool_choice(body.get("tool_choice"), hub)
    _thinking(body.get("thinking"), hub)
    _output_config(body.get("output_config"), hub)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", "Input should be a valid boolean")
    if stream:
        hub["stream"] = True
    return ChatCall(
        model=hub["model"],
        body=hub,
        stream=stream,
        include_usage=stream,
        max_output=hub.get("max_tokens"),
        request_id=request_id,
    )


def _sampling(body: dict[str, Any], hub: dict[str, Any]) -> None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if not _is_number(value):
            raise _bad(name, "Input should be a valid number")
        if not 0 <= value <= 1:
            raise _bad(name, "Input should be between 0 and 1")
        hub[name] = value
    top_k = body.get("top_k")
    if top_k is not None:
        if not _is_int(top_k) or top_k < 0:
            raise _bad("top_k", "Input should be a non-negative integer")
        hub["top_k"] = top_k
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list):
            raise _bad("stop_sequences", "Input should be a valid list")
        hub["stop"] = [_str(s, f"stop_sequences.{j}") for j, s in enumerate(stops)]


def _metadata(value: Any, hub: dict[str, Any]) -> None:
    if value is None:
        return
    for key, item in _dict(value, "metadata").items():
        if key != "user_id":
            raise _bad(f"metadata.{key}", "Extra inputs are not permitted")
        if item is not None:
            hub["user"] = _str(item, "metadata.user_id")


def _system(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "system", "content": value}] if value else []
    if not isinstance(value, list):
        raise _bad("system", "Input should be a valid string or list of text blocks")
    parts = [_text_part(_dict(b, f"system.{j}"), f"system.{j}") for j, b in enumerate(value)]
    return [{"role": "system", "content": parts}] if parts else []


def _cache(block: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    if block.get("cache_control") is not None:
        part["cache_control"] = _dict(block["cache_control"], "cache_control")
    return part


def _text_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    if block.get("type") != "text":
        raise _bad(f"{where}.type", "Input should be 'text'")
    return _cache(block, {"type": "text", "text": _str(block.get("text"), f"{where}.text")})


def to_messages(value: Any) -> list[dict[str, Any]]:
    """Anthropic turns as hub (OpenAI) messages."""
    if not isinstance(value, list):
        raise _bad("messages", "Input should be a valid list")
    if not value:
        raise _bad("messages", "at least one message is required")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(value):
        where = f"messages.{i}"
        message = _dict(message, where)
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _bad(f"{where}.role", "Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise _bad(f"{where}.content", "Input should be a valid string or list")
        blocks = [_dict(b, f"{where}.content.{j}") for j, b in enumerate(content)]
        allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
        for j, block in enumerate(blocks):
            if block.get("type") not in allowed:
                raise _bad(
                    f"{where}.content.{j}.type",
                    f"Input tag {block.get('type')!r} found using 'type' does not match any of "
                    f"the expected tags: {', '.join(allowed)}",
                )
        if role == "user":
            out.extend(_user_turn(blocks, f"{where}.content"))
        else:
            out.append(_assistant_turn(blocks, f"{where}.content"))
    return out


def _user_turn(blocks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Tool results first (as tool messages), then one user message with the other blocks."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.{j}"
        if block["type"] == "tool_result":
            results.append(_tool_result(block, at))
        else:
            parts.append(_part(block, at))
    if parts or not results:
        results.append({"role": "user", "content": parts})
    return results


def _part(block: dict[str, Any], where: str) -> dict[str, Any]:
    kind = block["type"]
    if kind == "text":
        return _text_part(block, where)
    source = _dict(block.get("source"), f"{where}.source")
    stype = source.get("type")
    if kind == "image" and stype == "base64":
        media = _str(source.get("media_type"), f"{where}.source.media_type")
        data = _str(source.get("data"), f"{where}.source.data")
        url = f"data:{media};base64,{data}"
    elif kind == "image" and stype == "url":
        url = _str(source.get("url"), f"{where}.source.url")
    elif kind == "document" and stype == "base64":
        if source.get("media_type") != "application/pdf":
            raise _bad(f"{where}.source.media_type", "Input should be 'application/pdf'")
        data = _str(source.get("data"), f"{where}.source.data")
        file = {"filename": "document.pdf", "file_data": f"data:application/pdf;base64,{data}"}
        return _cache(block, {"type": "file", "file": file})
    elif kind == "document" and stype == "text":
        text = _str(source.get("data"), f"{where}.source.data")
        return _cache(block, {"type": "text", "text": text})
    else:
        raise _unsupported(f"{where}.source.type", f"A {kind} source of type {stype!r}")
    return _cache(block, {"type": "image_url", "image_url": {"url": url}})


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "tool",
        "tool_call_id": _str(block.get("tool_use_id"), f"{where}.tool_use_id"),
    }
    content = block.get("content")
    if content is None or isinstance(content, str):
        message["content"] = content or ""
    elif isinstance(content, list):
        parts = [_dict(p, f"{where}.content.{k}") for k, p in enumerate(content)]
        for k, part in enumerate(parts):
            if part.get("type") not in ("text", "image", "document"):
                raise _bad(f"{where}.content.{k}.type", "Input should be 'text' or 'image'")
        message["content"] = [_part(p, f"{where}.content.{k}") for k, p in enumerate(parts)]
    else:
        raise _bad(f"{where}.content", "Input should be a valid string or list")
    if block.get("is_error") is True:
        message["is_error"] = True
    return message


def _assistant_turn(blocks: list[dict[str, Any]], where: str) -> dict[str, Any]:
    texts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.{j}"
        kind = block["type"]
        if kind == "text":
            texts.append(_text_part(block, at))
        elif kind == "tool_use":
            arguments = _dict(block.get("input"), f"{at}.input")
            call_id = _str(block.get("id"), f"{at}.id")
            name = _str(block.get("name"), f"{at}.name")
            function = {"name": name, "arguments": orjson.dumps(arguments).decode()}
            calls.append({"id": call_id, "type": "function", "function": function})
        elif kind == "thinking":
            text = _str(block.get("thinking"), f"{at}.thinking")
            signature = _str(block.get("signature"), f"{at}.signature")
            thinking.append({"type": "thinking", "thinking": text, "signature": signature})
        else:
            data = _str(block.get("data"), f"{at}.data")
            thinking.append({"type": "redacted_thinking", "data": data})
    message: dict[str, Any] = {"role": "assistant"}
    if any("cache_control" in part for part in texts):
        message["content"] = texts
    else:
        message["content"] = "".join(part["text"] for part in texts) if texts else None
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["thinking_blocks"] = thinking
        reasoning = [b["thinking"] for b in thinking if b["type"] == "thinking"]
        if reasoning:
            message["reasoning_content"] = "\n\n".join(reasoning)
    return message


def _tool(tool: Any, where: str) -> dict[str, Any]:
    tool = _dict(tool, where)
    if tool.get("type") not in (None, "custom"):
        raise _unsupported(f"{where}.type", f"The server tool {tool.get('type')!r}")
    function: dict[str, Any] = {"name": _str(tool.get("name"), f"{where}.name")}
    if tool.get("description") is not None:
        function["description"] = _str(tool["description"], f"{where}.description")
    function["parameters"] = _dict(tool.get("input_schema"), f"{where}.input_schema")
    if tool.get("strict") is True:
        function["strict"] = True
    return _cache(tool, {"type": "function", "function": function})


def _tool_choice(value: Any, hub: dict[str, Any]) -> None:
    if value is None:
        return
    choice = _dict(value, "tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        hub["tool_choice"] = "auto"
    elif kind == "any":
        hub["tool_choice"] = "required"
    elif kind == "none":
        hub["tool_choice"] = "none"
    elif kind == "tool":
        name = _str(choice.get("name"), "tool_choice.name")
        hub["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise _bad("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise _bad("tool_choice.disable_parallel_tool_use", "Input should be a valid boolean")
    if disable and kind != "none":
        hub["parallel_tool_calls"] = False


def _thinking(value: Any, hub: dict[str, Any]) -> None:
    if value is None:
        return
    kind = _dict(value, "thinking").get("type")
    if kind == "enabled":
        budget = value.get("budget_tokens")
        if not _is_int(budget):
            raise _bad("thinking.budget_tokens", "Input should be a valid integer")
        if budget < 1024:
            raise _bad("thinking.budget_tokens", "Input should be greater than or equal to 1024")
        if _is_int(hub.get("max_tokens")) and budget >= hub["max_tokens"]:
            raise _bad("max_tokens", "must be greater than thinking.budget_tokens")
        hub["thinking_budget"] = budget
    elif kind == "adaptive":
        hub["thinking_budget"] = -1
    elif kind == "disabled":
        hub["thinking_budget"] = 0
    else:
        raise _bad("thinking.type", "Input should be 'enabled', 'adaptive' or 'disabled'")


def _output_config(value: Any, hub: dict[str, Any]) -> None:
    if value is None:
        return
    for key, item in _dict(value, "output_config").items():
        if key != "format":
            raise _unsupported(f"output_config.{key}", f"'output_config.{key}'")
        if item is None:
            continue
        fmt = _dict(item, "output_config.format")
        if fmt.get("type") != "json_schema":
            raise _bad("output_config.format.type", "Input should be 'json_schema'")
        schema = _dict(fmt.get("schema"), "output_config.format.schema")
        spec = {"name": "output", "schema": schema}
        hub["response_format"] = {"type": "json_schema", "json_schema": spec}
