"""Gemini GenerateContentRequests in the simulator: validated as the API does, prompt counted.

promptTokenCount = REPLY_PRIMING + for the systemInstruction and each content MESSAGE_OVERHEAD +
its parts (text: count_text; inlineData/fileData: IMAGE_TOKENS; functionCall: count_text(name) +
count_text(JSON args); functionResponse: count_text(name) + count_text(JSON response)) +
count_text(JSON of `tools`) when tools are given. countTokens answers the same number.

Both spellings of a field name are accepted (camelCase and snake_case), unknown fields are
refused like the real API does (and unknown safety categories or thresholds), `labels` (a
Vertex AI field) carries simulator fault scripts.
A thought signature sent back must be one the simulator made, and models named `gemini-3*`
require one on the first function call of every model turn.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from faregate.sim.faults import FaultScript
from faregate.sim.images import ASPECTS, SIDES
from faregate.tokens import IMAGE_TOKENS, MESSAGE_OVERHEAD, REPLY_PRIMING, count_text

THINKING_LEVELS = {"MINIMAL": 0, "LOW": 8, "MEDIUM": 16, "HIGH": 32}
DYNAMIC_THINKING = 16
MAX_THINKING = 64
MAX_CANDIDATES = 8
MAX_STOPS = 5
SIGNATURE_PREFIX = b"sim-sig:"

REQUEST_FIELDS = {
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
HARM_CATEGORIES = {
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
}
THRESHOLDS = {
    "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
    "BLOCK_NONE",
    "OFF",
}
CONFIG_FIELDS = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "mediaResolution",
    "enableEnhancedCivicAnswers",
    "imageConfig",
}


class Invalid(Exception):
    """A request the real API would refuse with 400 INVALID_ARGUMENT."""


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def camel_keys(obj: Any) -> dict[str, Any]:
    """Top-level keys in camelCase: the API accepts both spellings of a field."""
    return {camel(k): v for k, v in obj.items()} if isinstance(obj, dict) else {}


def as_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _part_tokens(part: dict[str, Any]) -> int:
    if isinstance(part.get("text"), str):
        return count_text(part["text"])
    if "inlineData" in part or "fileData" in part or "inline_data" in part:
        return IMAGE_TOKENS
    for key in ("functionCall", "functionResponse"):
        item = part.get(key)
        if isinstance(item, dict):
            payload = item.get("args" if key == "functionCall" else "response")
            return count_text(str(item.get("name", ""))) + count_text(as_json(payload or {}))
    return 0


def prompt_tokens(contents: list[Any], system: Any, tools: Any) -> int:
    """The exact promptTokenCount of a request (see the module docstring)."""
    total = REPLY_PRIMING
    for content in [system, *contents] if system else contents:
        if isinstance(content, dict):
            total += MESSAGE_OVERHEAD
            parts = content.get("parts") or ()
            total += sum(_part_tokens(camel_keys(p)) for p in parts if isinstance(p, dict))
    if tools:
        total += count_text(as_json(tools))
    return total


@dataclass(slots=True)
class Generate:
    """The validated parts of a GenerateContentRequest the simulator uses."""

    model: str
    contents: list[dict[str, Any]]
    prompt_tokens: int
    declarations: list[dict[str, Any]]
    mode: str
    allowed: list[str]
    n: int
    cap: int | None
    stops: list[str]
    seed: Any
    json_mode: bool
    schema: Any
    thinking: int
    include_thoughts: bool
    image: bool
    cached: bool
    aspect_ratio: str | None = None
    image_size: str | None = None


def _image_config(value: Any) -> dict[str, Any]:
    """`imageConfig`: an aspect ratio and an image size the image models know."""
    config = camel_keys(value)
    ratio, size = config.get("aspectRatio"), config.get("imageSize")
    if ratio is not None and ratio not in ASPECTS:
        raise Invalid(
            "* GenerateContentRequest.generation_config.image_config.aspect_ratio: "
            f"unsupported aspect ratio {ratio!r}."
        )
    if size is not None and size not in SIDES:
        raise Invalid(
            "* GenerateContentRequest.generation_config.image_config.image_size: "
            f"unsupported image size {size!r}."
        )
    return config


def _int(value: Any, name: str, low: int, high: int | None = None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise Invalid(f"* GenerateContentRequest.generation_config.{name}: must be >= {low}.")
    if high is not None and value > high:
        raise Invalid(f"* GenerateContentRequest.generation_config.{name}: must be <= {high}.")
    return value


def _thinking(config: dict[str, Any]) -> tuple[int, bool]:
    thinking = camel_keys(config.get("thinkingConfig"))
    level, budget = thinking.get("thinkingLevel"), thinking.get("thinkingBudget")
    if level is not None and budget is not None:
        raise Invalid("You can only set one of thinking budget and thinking level.")
    include = thinking.get("includeThoughts") is True
    if level is not None:
        if not isinstance(level, str) or level.upper() not in THINKING_LEVELS:
            raise Invalid("Invalid value at 'generation_config.thinking_config.thinking_level'.")
        return THINKING_LEVELS[level.upper()], include
    if budget is not None:
        if not isinstance(budget, int) or budget < -1:
            raise Invalid("* GenerateContentRequest.generation_config.thinking_config: bad budget.")
        return (DYNAMIC_THINKING if budget == -1 else min(budget, MAX_THINKING)), include
    return 0, include


def lower_types(schema: Any) -> Any:
    """An OpenAPI-style schema (types in capitals, `nullable`) as JSON schema."""
    if isinstance(schema, list):
        return [lower_types(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: lower_types(v) for k, v in value.items()}
        else:
            out[key] = lower_types(value) if key in ("items", "anyOf", "oneOf") else value
    return out


def _check_contents(contents: Any, model: str) -> list[dict[str, Any]]:
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    checked: list[dict[str, Any]] = []
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            raise Invalid(f"Invalid value at 'contents[{i}]': expected an object.")
        role = content.get("role", "user")
        if role not in ("user", "model", "function"):
            raise Invalid("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise Invalid(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        parts = [camel_keys(p) for p in parts]
        if role == "model":
            _check_signatures(parts, model)
        checked.append({"role": role, "parts": parts})
    return checked


def _check_signatures(parts: list[dict[str, Any]], model: str) -> None:
    calls = [p for p in parts if isinstance(p.get("functionCall"), dict)]
    for part in calls:
        sig = part.get("thoughtSignature")
        if sig is None:
            continue
        try:
            valid = base64.b64decode(str(sig), validate=True).startswith(SIGNATURE_PREFIX)
        except ValueError:
            valid = False
        if not valid:
            raise Invalid("Thought signature is not valid.")
    if calls and model.startswith("gemini-3") and not calls[0].get("thoughtSignature"):
        raise Invalid(
            "Function call is missing a thought_signature in functionCall parts. This is "
            "required for tools to work correctly."
        )


def _declarations(tools: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else ():
        for decl in camel_keys(tool).get("functionDeclarations") or ():
            decl = camel_keys(decl)
            if not isinstance(decl.get("name"), str):
                raise Invalid(
                    "* GenerateContentRequest.tools[0].function_declarations[0].name: "
                    "Name cannot be empty."
                )
            out.append(decl)
    return out


def _check_safety(settings: Any) -> None:
    for i, setting in enumerate(settings if isinstance(settings, list) else ()):
        setting = camel_keys(setting)
        for name, allowed in (("category", HARM_CATEGORIES), ("threshold", THRESHOLDS)):
            value = setting.get(name)
            if value not in allowed:
                raise Invalid(f"Invalid value at 'safety_settings[{i}].{name}', {value!r}")


def parse_generate(model: str, raw: dict[str, Any], script: FaultScript) -> Generate:
    """Validate a GenerateContentRequest the way the API does; `Invalid` on failure."""
    body = camel_keys(raw)
    for name in body:
        if name not in REQUEST_FIELDS:
            raise Invalid(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
            )
    config = camel_keys(body.get("generationConfig"))
    for name in config:
        if name not in CONFIG_FIELDS:
            raise Invalid(
                f'Invalid JSON payload received. Unknown name "{name}" at '
                "'generation_config': Cannot find field."
            )
    contents = _check_contents(body.get("contents"), model)
    _check_safety(body.get("safetySettings"))
    system = body.get("systemInstruction")
    n = _int(config.get("candidateCount"), "candidate_count", 1, MAX_CANDIDATES) or 1
    cap = _int(config.get("maxOutputTokens"), "max_output_tokens", 1)
    stops = config.get("stopSequences") or []
    if not isinstance(stops, list) or len(stops) > MAX_STOPS:
        raise Invalid(
            f"* GenerateContentRequest.generation_config.stop_sequences: at most "
            f"{MAX_STOPS} stop sequences."
        )
    mime = config.get("responseMimeType") or "text/plain"
    if mime not in ("text/plain", "application/json", "text/x.enum"):
        raise Invalid(
            "* GenerateContentRequest.generation_config.response_mime_type: "
            "allowed mimetypes are `text/plain`, `application/json`, and `text/x.enum`."
        )
    schema = config.get("responseJsonSchema") or lower_types(config.get("responseSchema"))
    thinking, include = _thinking(config)
    if script.reasoning_tokens is not None:
        thinking = script.reasoning_tokens
    modalities = [str(m).upper() for m in config.get("responseModalities") or ()]
    imaging = _image_config(config.get("imageConfig"))
    calling = camel_keys(camel_keys(body.get("toolConfig")).get("functionCallingConfig"))
    tools = body.get("tools")
    return Generate(
        model=model,
        contents=contents,
        prompt_tokens=prompt_tokens(contents, system, tools),
        declarations=_declarations(tools),
        mode=str(calling.get("mode") or "AUTO").upper(),
        allowed=[str(a) for a in calling.get("allowedFunctionNames") or ()],
        n=n,
        cap=cap,
        stops=[str(s) for s in stops],
        seed=config.get("seed"),
        json_mode=mime == "application/json",
        schema=schema,
        thinking=thinking,
        include_thoughts=include,
        image="IMAGE" in modalities,
        cached=bool(body.get("cachedContent")),
        aspect_ratio=imaging.get("aspectRatio"),
        image_size=imaging.get("imageSize"),
    )
