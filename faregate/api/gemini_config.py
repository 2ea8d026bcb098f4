"""Gemini-native request pieces: field names in both spellings, schemas, generationConfig.

generationConfig maps to the internal fields one to one (maxOutputTokens -> max_tokens,
candidateCount -> n, stopSequences -> stop, responseMimeType/responseSchema ->
response_format, responseModalities -> response_modalities); thinkingLevel -> thinking_level,
thinkingBudget -> thinking_budget, and includeThoughts alone asks for dynamic thinking
(budget -1, Gemini's default). Options that cannot be expressed are refused by name.
"""

from __future__ import annotations

from typing import Any

from faregate.errors import BadRequest

CONFIG_FIELDS = {
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "maxOutputTokens": "max_tokens",
    "candidateCount": "n",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
}
OTHER_CONFIG = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "thinkingConfig",
}
UNSUPPORTED_CONFIG = {
    "responseLogprobs",
    "logprobs",
    "mediaResolution",
    "speechConfig",
    "audioTimestamp",
    "enableAffectiveDialog",
    "routingConfig",
    "modelSelectionConfig",
    "imageConfig",
    "enableEnhancedCivicAnswers",
}
LEVELS = ("minimal", "low", "medium", "high")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def fields(obj: Any, where: str) -> dict[str, Any]:
    """An object's fields under their camelCase names (REST accepts snake_case too)."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise invalid(where, f"Invalid value at '{where}': expected an object.")
    return {camel(k): v for k, v in obj.items()}


def invalid(param: str, message: str) -> BadRequest:
    return BadRequest(message, code="invalid_argument", param=param)


def unsupported(param: str, what: str) -> BadRequest:
    return BadRequest(
        f"{what} is not supported by this gateway.", code="unsupported_feature", param=param
    )


def json_schema(schema: Any) -> Any:
    """An OpenAPI-style Gemini schema as JSON schema (types in lower case, nullable unions)."""
    if isinstance(schema, list):
        return [json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    nullable = False
    for key, value in schema.items():
        name = camel(key) if not key.startswith("$") else key
        if name == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif name == "nullable":
            nullable = value is True
        elif name == "propertyOrdering":
            continue
        elif name in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[name] = {k: json_schema(v) for k, v in value.items()}
        elif name in ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties"):
            out[name] = json_schema(value)
        else:
            out[name] = value
    if nullable and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _number(value: Any, where: str, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool):
        kind = "an integer" if integer else "a number"
        raise invalid(where, f"Invalid value at '{where}': expected {kind}.")
    return value


def _response_format(config: dict[str, Any]) -> dict[str, Any] | None:
    mime = config.get("responseMimeType")
    schema = config.get("responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = json_schema(config["responseSchema"])
    if mime in (None, "text/plain") and schema is None:
        return None
    if mime == "text/x.enum":
        raise unsupported("generationConfig.responseMimeType", "The text/x.enum response type")
    if mime not in (None, "application/json"):
        raise invalid(
            "generationConfig.responseMimeType",
            "generationConfig.responseMimeType: allowed mimetypes are `text/plain`, "
            "`application/json`, and `text/x.enum`.",
        )
    if schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


def _thinking(value: Any, hub: dict[str, Any]) -> bool:
    """Put the thinking config into `hub`; whether the client asked to see thoughts."""
    where = "generationConfig.thinkingConfig"
    config = fields(value, where)
    level, budget = config.get("thinkingLevel"), config.get("thinkingBudget")
    include = config.get("includeThoughts") is True
    if level is not None and str(level).upper() != "THINKING_LEVEL_UNSPECIFIED":
        if not isinstance(level, str) or level.lower() not in LEVELS:
            raise invalid(
                f"{where}.thinkingLevel",
                f"Invalid value at '{where}.thinkingLevel': use MINIMAL, LOW, MEDIUM or HIGH.",
            )
        hub["thinking_level"] = level.lower()
    if budget is not None:
        hub["thinking_budget"] = _number(budget, f"{where}.thinkingBudget", integer=True)
    if "thinking_level" in hub and "thinking_budget" in hub:
        raise invalid(where, "You can only set one of thinking budget and thinking level.")
    if include and "thinking_level" not in hub and "thinking_budget" not in hub:
        hub["thinking_budget"] = -1
    return include


def generation(value: Any, hub: dict[str, Any]) -> bool:
    config = fields(value, "generationConfig")
    for key in config:
        where = f"generationConfig.{key}"
        if key in UNSUPPORTED_CONFIG:
            raise unsupported(where, f"'{where}'")
        if key not in CONFIG_FIELDS and key not in OTHER_CONFIG:
            raise invalid(
                where,
                f'Invalid JSON payload received. Unknown name "{key}" at '
                "'generation_config': Cannot find field.",
            )
    for key, name in CONFIG_FIELDS.items():
        if config.get(key) is not None:
            integer = key in ("topK", "maxOutputTokens", "candidateCount", "seed")
            hub[name] = _number(config[key], f"generationConfig.{key}", integer)
    stops = config.get("stopSequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid("generationConfig.stopSequences", "stopSequences must be strings.")
        if stops:
            hub["stop"] = stops
    fmt = _response_format(config)
    if fmt is not None:
        hub["response_format"] = fmt
    modalities = config.get("responseModalities")
    if modalities is not None:
        if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
            raise invalid("generationConfig.responseModalities", "Expected a list of modalities.")
        hub["response_modalities"] = [m.upper() for m in modalities]
    return _thinking(config.get("thinkingConfig"), hub)


def safety(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise invalid("safetySettings", "Invalid value at 'safetySettings': expected a list.")
    out = []
    for i, raw in enumerate(value):
        item = fields(raw, f"safetySettings[{i}]")
        if not isinstance(item.get("category"), str) or not isinstance(item.get("threshold"), str):
            raise invalid(f"safetySettings[{i}]", "A safety setting needs category and threshold.")
        out.append({"category": item["category"], "threshold": item["threshold"]})
    return out
