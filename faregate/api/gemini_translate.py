"""Gemini-native GenerateContentRequests as internal chat bodies (both field spellings).

Translation notes:

* contents: role `model` -> assistant, `user`/`function` -> user; functionResponse parts become
  tool messages (before the turn's other parts) answering the earlier functionCall with the
  same id, else the oldest unanswered call of that name. Calls without an id get one.
  Thought parts of earlier model turns are not sent back; thought signatures are, on their
  tool calls (`extra_content.google.thought_signature`).
* OpenAPI-style schemas (`parameters`, `responseSchema`: capital types, `nullable`) become JSON
  schema; `parametersJsonSchema` / `responseJsonSchema` pass as they are.
* thinkingConfig: thinkingLevel -> thinking_level, thinkingBudget -> thinking_budget;
  includeThoughts alone asks for dynamic thinking (budget -1, Gemini's default) and decides
  whether the reply shows thoughts.
* `labels` travel as `metadata` (simulator fault scripts use `labels.sim_fault`).
* Built-in tools, cachedContent, logprobs and the audio/video/image-config options cannot be
  expressed in the internal call: 400 `unsupported_feature` naming the field.
"""

from __future__ import annotations

from typing import Any

import orjson

from faregate.api.gemini_config import (
    camel,
    fields,
    generation,
    invalid,
    json_schema,
    safety,
    unsupported,
)

TOP_FIELDS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
    "labels",
    "model",
}
UNSUPPORTED_TOP = ("cachedContent",)
MODES = {"AUTO": "auto", "MODE_UNSPECIFIED": "auto", "ANY": "required", "NONE": "none"}


class _Calls:
    """Function calls of earlier model turns, answered by later functionResponse parts: by
    id, else the oldest open call of that name (calls that carried no id first)."""

    def __init__(self) -> None:
        self.open: list[tuple[str, str, bool]] = []
        self.count = 0

    def add(self, call_id: Any, name: str) -> str:
        self.count += 1
        given = isinstance(call_id, str) and bool(call_id)
        ident = str(call_id) if given else f"call_{self.count}"
        self.open.append((ident, name, given))
        return ident

    def answer(self, call_id: Any, name: Any, where: str) -> str:
        if call_id:
            found = [i for i, (ident, _, _) in enumerate(self.open) if ident == call_id]
        else:
            named = [i for i, (_, called, _) in enumerate(self.open) if called == name]
            found = sorted(named, key=lambda i: self.open[i][2])
        if not found:
            raise invalid(where, f"'{where}' answers no earlier functionCall named {name!r}.")
        return self.open.pop(found[0])[0]


def _blob_part(blob: dict[str, Any], where: str, model: bool) -> dict[str, Any]:
    mime = str(blob.get("mimeType") or "")
    data = blob.get("data")
    if not mime or not isinstance(data, str):
        raise invalid(where, f"'{where}' needs mimeType and data.")
    url = f"data:{mime};base64,{data}"
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": url}}
    if model:
        raise unsupported(where, f"Inline {mime} data in a model turn")
    if mime in ("audio/wav", "audio/x-wav", "audio/mp3", "audio/mpeg"):
        fmt = "wav" if "wav" in mime else "mp3"
        return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}
    return {"type": "file", "file": {"file_data": url}}


def _file_part(ref: dict[str, Any], where: str) -> dict[str, Any]:
    uri = ref.get("fileUri")
    mime = str(ref.get("mimeType") or "")
    if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
        raise unsupported(where, "fileData that is not a public http(s) URL")
    if "generativelanguage.googleapis.com" in uri or (mime and not mime.startswith("image/")):
        raise unsupported(where, "fileData other than a public image URL (the Files API)")
    return {"type": "image_url", "image_url": {"url": uri}}


def _content_message(
    content: dict[str, Any], i: int, calls: _Calls, out: list[dict[str, Any]]
) -> None:
    role = content.get("role") or "user"
    if role not in ("user", "model", "function"):
        raise invalid(f"contents[{i}].role", "Please use a valid role: user, model.")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise invalid(f"contents[{i}].parts", f"contents[{i}].parts must not be empty.")
    model = role == "model"
    items: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for j, raw in enumerate(parts):
        where = f"contents[{i}].parts[{j}]"
        part = fields(raw, where)
        if isinstance(part.get("text"), str):
            if not (model and part.get("thought")):
                items.append({"type": "text", "text": part["text"]})
        elif "inlineData" in part:
            items.append(_blob_part(fields(part["inlineData"], where), where, model))
        elif "fileData" in part:
            items.append(_file_part(fields(part["fileData"], where), where))
        elif "functionCall" in part and model:
            call = fields(part["functionCall"], f"{where}.functionCall")
            name = call.get("name")
            if not isinstance(name, str) or not name:
                raise invalid(f"{where}.functionCall.name", f"'{where}' needs a function name.")
            entry: dict[str, Any] = {
                "id": calls.add(call.get("id"), name),
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": orjson.dumps(call.get("args") or {}).decode(),
                },
            }
            signature = part.get("thoughtSignature")
            if isinstance(signature, str) and signature:
                entry["extra_content"] = {"google": {"thought_signature": signature}}
            tool_calls.append(entry)
        elif "functionResponse" in part and not model:
            result = fields(part["functionResponse"], f"{where}.functionResponse")
            ident = calls.answer(result.get("id"), result.get("name"), where)
            payload = orjson.dumps(result.get("response") or {}).decode()
            out.append({"role": "tool", "tool_call_id": ident, "content": payload})
        else:
            kind = next(iter(part), "empty")
            raise unsupported(where, f"A part of kind '{kind}' here")
    if model:
        if items or tool_calls:
            message: dict[str, Any] = {"role": "assistant", "content": _content(items)}
            if tool_calls:
                message["tool_calls"] = tool_calls
            out.append(message)
    elif items:
        out.append({"role": "user", "content": _content(items)})


def _content(items: list[dict[str, Any]]) -> Any:
    if not items:
        return None
    if all(item["type"] == "text" for item in items):
        return "".join(item["text"] for item in items)
    return items


def messages_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid("contents", "* GenerateContentRequest.contents: contents is not specified")
    out: list[dict[str, Any]] = []
    system = body.get("systemInstruction")
    if system is not None:
        texts: list[Any] = [system]
        if not isinstance(system, str):
            parts = fields(system, "systemInstruction").get("parts") or []
            texts = [fields(p, "systemInstruction.parts").get("text") for p in parts]
        if not all(isinstance(t, str) for t in texts):
            raise unsupported("systemInstruction", "A non-text systemInstruction part")
        out.append({"role": "system", "content": "\n".join(str(t) for t in texts)})
    calls = _Calls()
    for i, content in enumerate(contents):
        _content_message(fields(content, f"contents[{i}]"), i, calls, out)
    return out


def tools_of(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("tools", "Invalid value at 'tools': expected a list.")
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(value):
        tool = fields(raw, f"tools[{i}]")
        for key in tool:
            if key != "functionDeclarations":
                raise unsupported(f"tools[{i}].{key}", f"The built-in tool '{key}'")
        for j, raw_decl in enumerate(tool.get("functionDeclarations") or ()):
            where = f"tools[{i}].functionDeclarations[{j}]"
            decl = fields(raw_decl, where)
            if not isinstance(decl.get("name"), str) or not decl["name"]:
                raise invalid(f"{where}.name", f"'{where}.name' cannot be empty.")
            fn: dict[str, Any] = {"name": decl["name"]}
            if isinstance(decl.get("description"), str):
                fn["description"] = decl["description"]
            if decl.get("parametersJsonSchema") is not None:
                fn["parameters"] = decl["parametersJsonSchema"]
            elif decl.get("parameters") is not None:
                fn["parameters"] = json_schema(decl["parameters"])
            out.append({"type": "function", "function": fn})
    return out


def tool_choice_of(value: Any) -> Any:
    config = fields(fields(value, "toolConfig").get("functionCallingConfig"), "toolConfig")
    if not config:
        return None
    mode = str(config.get("mode") or "AUTO").upper()
    if mode not in MODES:
        raise unsupported("toolConfig.functionCallingConfig.mode", f"The mode {mode!r}")
    names = config.get("allowedFunctionNames") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise invalid("toolConfig", "allowedFunctionNames must be a list of names.")
    if mode != "ANY" or not names:
        return MODES[mode]
    if len(names) == 1:
        return {"type": "function", "function": {"name": names[0]}}
    tools = [{"type": "function", "function": {"name": n}} for n in names]
    return {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": tools}}


def to_hub(model: str, raw: dict[str, Any], stream: bool) -> tuple[dict[str, Any], bool]:
    """(the internal chat body, whether the client asked to see thoughts)."""
    body = {camel(k): v for k, v in raw.items()}
    for key in body:
        if key in UNSUPPORTED_TOP:
            raise unsupported(key, f"'{key}'")
        if key not in TOP_FIELDS:
            raise invalid(
                key, f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
    hub: dict[str, Any] = {"model": model, "messages": messages_of(body)}
    if stream:
        hub["stream"] = True
        hub["stream_options"] = {"include_usage": True}
    tools = tools_of(body.get("tools"))
    if tools:
        hub["tools"] = tools
    choice = tool_choice_of(body.get("toolConfig"))
    if choice is not None:
        hub["tool_choice"] = choice
    include = generation(body.get("generationConfig"), hub)
    if body.get("safetySettings") is not None:
        hub["safety_settings"] = safety(body["safetySettings"])
    labels = body.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise invalid("labels", "labels must map names to strings.")
        hub["metadata"] = dict(labels)
    return hub, include
