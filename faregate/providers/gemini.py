"""The Gemini upstream protocol: the internal chat call to generateContent, replies back.

Translation notes (hub = an OpenAI chat request plus extension fields):

* system/developer messages (wherever they are) become `systemInstruction`; assistant
  messages become role `model`; tool results become `functionResponse` parts whose name is
  looked up from the earlier tool call. Reasoning text of earlier assistant turns is not sent
  back (Gemini ignores it); thought signatures are, on their functionCall parts. Tool call ids
  are not sent: Gemini matches results to calls by name and order.
* reasoning: `thinking_level` -> thinkingLevel, `thinking_budget` -> thinkingBudget (not both),
  else `reasoning_effort` -> the nearest level: none/minimal -> MINIMAL, low -> LOW,
  medium -> MEDIUM, high/xhigh -> HIGH. Thoughts are asked for (includeThoughts) whenever
  thinking is configured and not switched off (budget 0, effort none), and come back as
  reasoning_content.
* A `user` of the form `sim:SCRIPT` (simulator fault scripts) or `metadata.sim_fault` travel as
  `labels.sim_fault`; other metadata and `user` have no Gemini counterpart and are not sent.
* Anything else that cannot be expressed (logprobs, logit_bias, audio output, non-function
  tools, ...) is refused with 400 `unsupported_feature` naming the field.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from faregate.billing.types import Usage
from faregate.errors import BadRequest, FailureClass, UpstreamError
from faregate.providers.base import (
    ChatCall,
    ChatResult,
    Credentials,
    EmbedCall,
    EmbedResult,
    UpstreamRequest,
)
from faregate.providers.gemini_stream import (
    GeminiStreamDecoder,
    failure_of,
    parse_generate_response,
)
from faregate.providers.gemini_wire import contents_of, tool_config, tools_of, unsupported

EFFORT_TO_LEVEL = {
    "none": "MINIMAL",
    "minimal": "MINIMAL",
    "low": "LOW",
    "medium": "MEDIUM",
    "high": "HIGH",
    "xhigh": "HIGH",
}
LEVELS = ("minimal", "low", "medium", "high")

# Request fields with no Gemini counterpart that change the reply: refused, never dropped.
UNSUPPORTED = (
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "audio",
    "prediction",
    "web_search_options",
    "modalities",
)


def _retry_after(headers: dict[str, str]) -> float | None:
    try:
        return float(headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _model_path(upstream_model: str) -> str:
    return upstream_model.removeprefix("models/")


def _headers(creds: Credentials) -> dict[str, str]:
    headers = {"content-type": "application/json", **creds.headers}
    if creds.api_key:
        headers["x-goog-api-key"] = creds.api_key
    return headers


def _thinking(body: dict[str, Any]) -> dict[str, Any] | None:
    level = body.get("thinking_level")
    budget = body.get("thinking_budget")
    if level is not None and budget is not None:
        raise BadRequest(
            "Set thinking_level or thinking_budget, not both.",
            code="invalid_value",
            param="thinking_budget",
        )
    if level is not None:
        if not isinstance(level, str) or level.lower() not in LEVELS:
            raise BadRequest(
                f"Invalid 'thinking_level': expected one of {', '.join(LEVELS)}.",
                code="invalid_value",
                param="thinking_level",
            )
        return {"thinkingLevel": level.upper(), "includeThoughts": True}
    if budget is not None:
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < -1:
            raise BadRequest(
                "Invalid 'thinking_budget': expected an integer >= -1.",
                code="invalid_value",
                param="thinking_budget",
            )
        return {"thinkingBudget": budget, "includeThoughts": budget != 0}
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    mapped = EFFORT_TO_LEVEL.get(str(effort).lower())
    if mapped is None:
        raise BadRequest(
            f"Invalid 'reasoning_effort': {effort!r}.",
            code="invalid_value",
            param="reasoning_effort",
        )
    return {"thinkingLevel": mapped, "includeThoughts": str(effort).lower() != "none"}


def _response_format(body: dict[str, Any], config: dict[str, Any]) -> None:
    fmt = body.get("response_format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    if kind == "json_schema" and isinstance(fmt, dict):
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        config["responseMimeType"] = "application/json"
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
        return
    raise unsupported("response_format", f"response_format type {kind!r}")


def _modalities(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise BadRequest(
            "'response_modalities' must be a list of strings.",
            code="invalid_value",
            param="response_modalities",
        )
    upper = [m.upper() for m in value]
    for modality in upper:
        if modality not in ("TEXT", "IMAGE"):
            raise unsupported("response_modalities", f"The response modality {modality!r}")
    return upper


def generation_config(body: dict[str, Any], cap: int | None = None) -> dict[str, Any]:
    """The generationConfig for the sampling, length, format and reasoning fields; `cap` is
    the output limit the attempt must honour (it wins over the body's)."""
    config: dict[str, Any] = {}
    for hub, name in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(hub) is not None:
            config[name] = body[hub]
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    limits = [v for v in (cap, asked) if isinstance(v, int) and not isinstance(v, bool)]
    if limits:
        config["maxOutputTokens"] = min(limits)
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    _response_format(body, config)
    if body.get("response_modalities") is not None:
        config["responseModalities"] = _modalities(body["response_modalities"])
    thinking = _thinking(body)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _check_unsupported(body: dict[str, Any]) -> None:
    for name in UNSUPPORTED:
        value = body.get(name)
        if value in (None, False, {}, []) or (name == "modalities" and value == ["text"]):
            continue
        raise unsupported(name, f"The '{name}' parameter")


def _labels(body: dict[str, Any]) -> dict[str, str] | None:
    scripts: list[str] = []
    user = body.get("user")
    if isinstance(user, str) and user.startswith("sim:"):
        scripts.append(user[4:])
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("sim_fault"), str):
        scripts.append(metadata["sim_fault"])
    return {"sim_fault": ";".join(scripts)} if scripts else None


def request_body(body: dict[str, Any], cap: int | None = None) -> dict[str, Any]:
    """The GenerateContentRequest for a hub chat body, output capped at `cap`."""
    _check_unsupported(body)
    system, contents = contents_of(body.get("messages") or [])
    out: dict[str, Any] = {"contents": contents}
    if system is not None:
        out["systemInstruction"] = system
    tools = tools_of(body)
    if tools:
        out["tools"] = tools
    choice = tool_config(body)
    if choice is not None:
        out["toolConfig"] = choice
    settings = body.get("safety_settings")
    if settings:
        if not isinstance(settings, list) or not all(isinstance(s, dict) for s in settings):
            raise BadRequest(
                "'safety_settings' must be a list of {category, threshold} objects.",
                code="invalid_value",
                param="safety_settings",
            )
        out["safetySettings"] = settings
    config = generation_config(body, cap)
    if config:
        out["generationConfig"] = config
    labels = _labels(body)
    if labels:
        out["labels"] = labels
    return out


class GeminiGenerate:
    """`models/{model}:generateContent` and `:streamGenerateContent?alt=sse`."""

    name = "gemini"
    inline_remote_images = True

    def build_request(
        self, call: ChatCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        model = _model_path(upstream_model)
        method = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
        body = orjson.dumps(request_body(call.body, call.max_output))
        return UpstreamRequest(f"/v1beta/models/{model}:{method}", _headers(creds), body)

    def parse_response(self, body: bytes) -> ChatResult:
        return parse_generate_response(body)

    def stream_decoder(self) -> GeminiStreamDecoder:
        return GeminiStreamDecoder()

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return classify(status, headers, body)


def _error_of(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(data, list) and data:  # the JSON-array form of streamGenerateContent
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else {}


def _retry_delay(details: Any) -> float | None:
    for item in details if isinstance(details, list) else ():
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            delay = str(item.get("retryDelay") or "").removesuffix("s")
            try:
                return float(delay)
            except ValueError:
                return None
    return None


def classify(status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
    """An upstream error in Google's `{"error": {"code", "message", "status"}}` shape."""
    err = _error_of(body)
    message = str(err.get("message") or f"HTTP {status}")
    details = err.get("details")
    failure = failure_of(status, str(err.get("status") or ""), message, details)
    retry = _retry_after(headers)
    if retry is None:
        retry = _retry_delay(details)
    return UpstreamError(failure, message, status=status, retry_after=retry, body=body)


def _embedding_vector(values: list[Any], encoding: Any) -> Any:
    if encoding == "base64":
        packed = struct.pack(f"<{len(values)}f", *(float(v) for v in values))
        return base64.b64encode(packed).decode()
    return values


class GeminiEmbeddings:
    """`models/{model}:batchEmbedContents`, answered in the OpenAI embeddings list shape."""

    name = "gemini"

    def build_embed_request(
        self, call: EmbedCall, upstream_model: str, creds: Credentials
    ) -> UpstreamRequest:
        raw = call.body.get("input")
        if isinstance(raw, list) and raw and not all(isinstance(v, str) for v in raw):
            raise unsupported("input", "Token-id input")
        model = _model_path(upstream_model)
        dims = call.body.get("dimensions")
        requests = []
        for text in call.inputs:
            item: dict[str, Any] = {
                "model": f"models/{model}",
                "content": {"parts": [{"text": text}]},
            }
            if isinstance(dims, int):
                item["outputDimensionality"] = dims
            requests.append(item)
        body = orjson.dumps({"requests": requests})
        return UpstreamRequest(f"/v1beta/models/{model}:batchEmbedContents", _headers(creds), body)

    def parse_embed_response(self, body: bytes, call: EmbedCall) -> EmbedResult:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        embeddings = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(embeddings, list):
            raise UpstreamError(
                FailureClass.TRANSIENT, "the provider returned an unexpected body", status=200
            )
        encoding = call.body.get("encoding_format")
        rows = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _embedding_vector(
                    e.get("values") or [] if isinstance(e, dict) else [], encoding
                ),
            }
            for i, e in enumerate(embeddings)
        ]
        out: dict[str, Any] = {"object": "list", "data": rows, "model": call.model}
        meta = data.get("usageMetadata") if isinstance(data, dict) else None
        prompt = meta.get("promptTokenCount") if isinstance(meta, dict) else None
        if not isinstance(prompt, int):
            return EmbedResult(out, None)
        out["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
        return EmbedResult(out, Usage(prompt, 0))

    def classify_error(self, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
        return classify(status, headers, body)
