"""Hub chat messages and tools as Gemini contents, function declarations and tool config."""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from faregate.errors import BadRequest

AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mp3"}


def unsupported(param: str, what: str) -> BadRequest:
    return BadRequest(
        f"{what} cannot be sent to this model's provider (Gemini protocol).",
        code="unsupported_feature",
        param=param,
    )


def _invalid(param: str, message: str) -> BadRequest:
    return BadRequest(message, code="invalid_value", param=param)


def data_url(url: str, param: str) -> dict[str, str]:
    """`data:MIME;base64,DATA` as an inlineData blob."""
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise _invalid(param, f"Invalid '{param}': expected a base64 data URL.")
    mime = head[5:].removesuffix(";base64") or "application/octet-stream"
    return {"mimeType": mime, "data": data}


def _image_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise _invalid(param, f"Invalid '{param}': an image_url part needs a url.")
    if url.startswith("data:"):
        return {"inlineData": data_url(url, param)}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _file_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str):
        raise unsupported(param, "A file part without inline file_data")
    if not data.startswith("data:"):
        raise _invalid(param, f"Invalid '{param}': file_data must be a base64 data URL.")
    return {"inlineData": data_url(data, param)}


def _audio_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    audio = part.get("input_audio")
    fmt = audio.get("format") if isinstance(audio, dict) else None
    data = audio.get("data") if isinstance(audio, dict) else None
    if fmt not in AUDIO_FORMATS or not isinstance(data, str):
        raise _invalid(param, f"Invalid '{param}': input_audio needs data and format wav or mp3.")
    return {"inlineData": {"mimeType": AUDIO_FORMATS[str(fmt)], "data": data}}


def content_parts(content: Any, param: str, *, media: bool = True) -> list[dict[str, Any]]:
    """Gemini parts of an OpenAI message content (a string or a list of content parts)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise _invalid(param, f"Invalid '{param}': expected a string or a list of parts.")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal") and isinstance(part, dict):
            text = part.get(kind)
            if not isinstance(text, str):
                raise _invalid(where, f"Invalid '{where}': a {kind} part needs {kind}.")
            parts.append({"text": text})
        elif not media or not isinstance(part, dict):
            raise unsupported(where, f"A content part of type {kind!r} here")
        elif kind == "image_url":
            parts.append(_image_part(part, where))
        elif kind == "input_audio":
            parts.append(_audio_part(part, where))
        elif kind == "file":
            parts.append(_file_part(part, where))
        else:
            raise unsupported(where, f"A content part of type {kind!r}")
    return parts


def _arguments(raw: Any, param: str) -> Any:
    if isinstance(raw, dict):
        return raw
    if raw in (None, ""):
        return {}
    try:
        args = orjson.loads(raw) if isinstance(raw, str | bytes) else None
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise _invalid(param, f"Invalid '{param}': the arguments must be a JSON object.")
    return args


def _signature(call: dict[str, Any]) -> str | None:
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    sig = google.get("thought_signature") if isinstance(google, dict) else None
    return sig if isinstance(sig, str) and sig else None


def _model_parts(message: dict[str, Any], i: int, names: dict[str, str]) -> list[dict[str, Any]]:
    parts = content_parts(message.get("content"), f"messages[{i}].content")
    parts = [p for p in parts if p.get("text") != ""]  # Gemini refuses empty text parts
    calls = message.get("tool_calls") or []
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls = [*calls, {"id": "", "function": legacy}]
    for j, call in enumerate(calls):
        where = f"messages[{i}].tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(fn, dict) or not fn.get("name"):
            raise _invalid(where, f"Invalid '{where}': a tool call needs a function name.")
        name = str(fn["name"])
        if isinstance(call.get("id"), str):
            names[call["id"]] = name
        part: dict[str, Any] = {
            "functionCall": {
                "name": name,
                "args": _arguments(fn.get("arguments"), f"{where}.function.arguments"),
            }
        }
        signature = _signature(call)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _tool_result(content: Any, param: str) -> dict[str, Any]:
    if isinstance(content, list):
        content = "".join(p["text"] for p in content_parts(content, param, media=False))
    if not isinstance(content, str):
        content = "" if content is None else orjson.dumps(content).decode()
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"output": content}


def _add_result(contents: list[dict[str, Any]], part: dict[str, Any]) -> None:
    """Consecutive tool results travel together in one user turn."""
    last = contents[-1] if contents else None
    if last and last["role"] == "user" and all("functionResponse" in p for p in last["parts"]):
        last["parts"].append(part)
    else:
        contents.append({"role": "user", "parts": [part]})


def contents_of(messages: list[Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(systemInstruction, contents) for OpenAI chat messages."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"messages[{i}]", f"Invalid 'messages[{i}]': expected an object.")
        role = message.get("role")
        param = f"messages[{i}].content"
        if role in ("system", "developer"):
            system += content_parts(message.get("content"), param, media=False)
        elif role == "user":
            parts = content_parts(message.get("content"), param)
            contents.append({"role": "user", "parts": parts or [{"text": ""}]})
        elif role == "assistant":
            parts = _model_parts(message, i, names)
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif role in ("tool", "function"):
            key = message.get("tool_call_id") if role == "tool" else None
            name = names.get(key) if isinstance(key, str) else message.get("name")
            if not isinstance(name, str) or not name:
                where = f"messages[{i}].tool_call_id"
                raise _invalid(where, f"'{where}' does not match an earlier tool call.")
            response = _tool_result(message.get("content"), param)
            _add_result(contents, {"functionResponse": {"name": name, "response": response}})
        else:
            raise _invalid(f"messages[{i}].role", f"Invalid role {role!r} in messages[{i}].")
    return ({"parts": system} if system else None), contents


def _function_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools") or []
    legacy = body.get("functions") or []
    out: list[dict[str, Any]] = []
    for j, tool in enumerate([*tools, *({"type": "function", "function": f} for f in legacy)]):
        kind = tool.get("type", "function") if isinstance(tool, dict) else None
        if kind != "function":
            raise unsupported(f"tools[{j}]", f"A tool of type {kind!r}")
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _invalid(f"tools[{j}].function.name", f"'tools[{j}]' needs a function name.")
        out.append(fn)
    return out


def _allowed(choice: Any) -> tuple[str, list[str]] | None:
    """(mode, names) of an `allowed_tools` tool choice."""
    if not isinstance(choice, dict) or choice.get("type") != "allowed_tools":
        return None
    spec = choice.get("allowed_tools")
    spec = spec if isinstance(spec, dict) else {}
    names = [
        str((t.get("function") or {}).get("name") or t.get("name"))
        for t in spec.get("tools") or ()
        if isinstance(t, dict)
    ]
    return str(spec.get("mode") or "auto"), names


def tools_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`tools` as one Gemini tool of function declarations (JSON-schema parameters)."""
    allowed = _allowed(body.get("tool_choice"))
    declarations = []
    for fn in _function_tools(body):
        if allowed and allowed[0] == "auto" and fn["name"] not in allowed[1]:
            continue
        decl: dict[str, Any] = {"name": fn["name"]}
        if isinstance(fn.get("description"), str):
            decl["description"] = fn["description"]
        if isinstance(fn.get("parameters"), dict):
            decl["parametersJsonSchema"] = fn["parameters"]
        declarations.append(decl)
    return [{"functionDeclarations": declarations}] if declarations else []


def tool_config(body: dict[str, Any]) -> dict[str, Any] | None:
    """`tool_choice` as a functionCallingConfig: auto AUTO, required ANY, none NONE, a named
    function ANY restricted to it."""
    choice = body.get("tool_choice")
    if choice is None and body.get("function_call") is not None:
        legacy = body["function_call"]
        choice = {"type": "function", "function": legacy} if isinstance(legacy, dict) else legacy
    if choice is None:
        return None
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
    config: dict[str, Any]
    if isinstance(choice, str) and choice in modes:
        config = {"mode": modes[choice]}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            raise _invalid("tool_choice", "'tool_choice' names no function.")
        config = {"mode": "ANY", "allowedFunctionNames": [name]}
    elif (allowed := _allowed(choice)) is not None:
        mode, names = allowed
        if mode == "required":
            config = {"mode": "ANY", "allowedFunctionNames": names}
        else:
            config = {"mode": "AUTO"}
    else:
        raise unsupported("tool_choice", f"The tool_choice {choice!r}")
    return {"functionCallingConfig": config}
