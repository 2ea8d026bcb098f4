"""Hub (OpenAI) chat messages as Anthropic `system` blocks and alternating turns (pure)."""

from __future__ import annotations

from typing import Any

import orjson

from faregate.providers.anthropic_wire import invalid, unsupported

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


# -- messages --------------------------------------------------------------------------


def convert_messages(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating turns): system and developer messages go to `system`, tool
    results become `tool_result` blocks of a user turn, same-role neighbours are merged."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages[{i}]", f"messages[{i}] must be an object.")
        role = message.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), f"{where}.content"))
            continue
        if role == "user":
            blocks = content_blocks(message.get("content"), f"{where}.content")
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, where)]
        elif role == "function":
            raise unsupported(f"{where}.role", "The legacy 'function' role (use tools)")
        else:
            raise invalid(f"{where}.role", f"Unknown role {role!r} in {where}.")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def cache_control(part: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    """Carry a prompt-caching breakpoint (`cache_control`) over to the block."""
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    blocks = content_blocks(content, where)
    for j, block in enumerate(blocks):
        if block["type"] != "text":
            raise unsupported(f"{where}[{j}]", "Non-text content in a system message")
    return blocks


def content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """OpenAI content (a string or parts) as Anthropic blocks; empty texts are left out."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise invalid(where, f"{where} must be a string or an array of content parts.")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict):
            raise invalid(at, f"{at} must be an object.")
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise invalid(f"{at}.{kind}", f"{at}.{kind} must be a string.")
            if text:
                blocks.append(cache_control(part, {"type": "text", "text": text}))
        elif kind == "image_url":
            blocks.append(cache_control(part, _image(part.get("image_url"), at)))
        elif kind == "file":
            blocks.append(cache_control(part, _document(part.get("file"), at)))
        elif kind == "input_audio":
            raise unsupported(at, "Audio input")
        else:
            raise unsupported(f"{at}.type", f"Content parts of type {kind!r}")
    return blocks


def _image(spec: Any, where: str) -> dict[str, Any]:
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str) or not url:
        raise invalid(f"{where}.image_url", f"{where}.image_url needs a url.")
    if url.startswith("data:"):
        media, data = _data_url(url, f"{where}.image_url")
        if media not in IMAGE_TYPES:
            raise unsupported(f"{where}.image_url", f"Images of type {media!r}")
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise invalid(f"{where}.image_url", "An image URL must be an http(s) or a data: URL.")


def _document(spec: Any, where: str) -> dict[str, Any]:
    data_url = spec.get("file_data") if isinstance(spec, dict) else None
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise unsupported(where, "Files other than inline PDF data (file_data)")
    media, data = _data_url(data_url, f"{where}.file.file_data")
    if media != "application/pdf":
        raise unsupported(f"{where}.file.file_data", f"Files of type {media!r}")
    return {"type": "document", "source": {"type": "base64", "media_type": media, "data": data}}


def _data_url(url: str, where: str) -> tuple[str, str]:
    header, sep, data = url[5:].partition(",")
    media, _, encoding = header.partition(";")
    if not sep or encoding.lower() != "base64" or not media:
        raise invalid(where, f"{where} must be a base64 data URL (data:TYPE;base64,...).")
    return media.lower(), data


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """Thinking blocks first (Anthropic requires it), then text, then tool calls."""
    blocks: list[dict[str, Any]] = []
    thinking = message.get("thinking_blocks")
    if thinking is not None and not isinstance(thinking, list):
        raise invalid(f"{where}.thinking_blocks", "thinking_blocks must be an array.")
    for j, block in enumerate(thinking or ()):
        blocks.append(_thinking_block(block, f"{where}.thinking_blocks[{j}]"))
    blocks.extend(content_blocks(message.get("content"), f"{where}.content"))
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise invalid(f"{where}.tool_calls", "tool_calls must be an array.")
    for j, call in enumerate(calls or ()):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{j}]"))
    return blocks


def _thinking_block(block: Any, where: str) -> dict[str, Any]:
    block = block if isinstance(block, dict) else {}
    kind, text, signature = block.get("type"), block.get("thinking"), block.get("signature")
    if kind == "thinking" and isinstance(text, str) and isinstance(signature, str):
        return {"type": "thinking", "thinking": text, "signature": signature}
    if kind == "redacted_thinking" and isinstance(block.get("data"), str):
        return {"type": "redacted_thinking", "data": block["data"]}
    raise invalid(
        where,
        f"{where} must be {{type: thinking, thinking, signature}} or "
        "{type: redacted_thinking, data}.",
    )


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(call, dict) or not isinstance(fn, dict):
        raise invalid(where, f"{where} must be a function tool call.")
    if not isinstance(call.get("id"), str) or not isinstance(fn.get("name"), str):
        raise invalid(where, f"{where} needs an id and a function name.")
    arguments = fn.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise invalid(
            f"{where}.function.arguments", f"{where}.function.arguments must be a JSON object."
        )
    return {"type": "tool_use", "id": call["id"], "name": fn["name"], "input": parsed}


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid(f"{where}.tool_call_id", f"{where} (a tool result) needs a tool_call_id.")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        result["content"] = content
    elif content is not None:
        result["content"] = content_blocks(content, f"{where}.content")
    if message.get("is_error") is True:
        result["is_error"] = True
    return result
