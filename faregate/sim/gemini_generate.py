"""Gemini generation in the simulator: deterministic candidates, exact usage, stream pieces.

Usage is exact and follows `faregate.tokens` (the prompt count is in `gemini_request`):

* candidatesTokenCount = over the candidates, count_text of the visible text, plus
  count_text(name) + count_text(JSON args) per function call, plus IMAGE_TOKENS per image.
* thoughtsTokenCount = per candidate thinkingLevel MINIMAL/LOW/MEDIUM/HIGH 0/8/16/32, or
  thinkingBudget N (-1: 16, else min(N, 64)); 0 without thinkingConfig; the
  `reasoning_tokens=N` directive overrides. stopSequences cut the text first, then
  maxOutputTokens caps thoughts plus visible text; a capped reply ends with MAX_TOKENS.
  Thought text is sent only with includeThoughts. `tokens=N` fixes the text length of plain
  and schema-less JSON replies.
* cachedContentTokenCount = the `cached_tokens=N` directive (capped at the prompt), else half
  the prompt when the request names a `cachedContent`; left out when 0.

Function calls follow the tool config: NONE calls nothing; ANY calls the allowed function
(or the first one); AUTO calls the functions the last user text names ("weather" names a
weather tool) unless the last turn holds function responses. The first functionCall part of
a reply carries a `thoughtSignature`. With responseModalities IMAGE a text reply also carries
a PNG drawn from the prompt and the candidate's index (`sim.images`), shaped by
`imageConfig` (aspectRatio, imageSize); `bad_image` makes it malformed and `images=N` leaves
it out of the candidates past the first N.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from faregate.sim import text
from faregate.sim.faults import FaultScript
from faregate.sim.gemini_request import SIGNATURE_PREFIX, Generate, as_json, lower_types
from faregate.sim.images import aspect_dimensions, image_b64
from faregate.tokens import IMAGE_TOKENS, count_text


@dataclass(slots=True)
class Candidate:
    index: int
    parts: list[dict[str, Any]]
    finish: str
    tokens: int
    thoughts: int


def last_user_text(contents: list[dict[str, Any]]) -> str:
    for content in reversed(contents):
        if content["role"] == "user":
            texts = [p["text"] for p in content["parts"] if isinstance(p.get("text"), str)]
            if texts or not any("functionResponse" in p for p in content["parts"]):
                return " ".join(texts)
    return ""


def functions_to_call(req: Generate, prompt: str) -> list[dict[str, Any]]:
    """The declarations this request makes the model call (see the module docstring)."""
    if not req.declarations or req.mode == "NONE":
        return []
    if req.mode == "ANY":
        allowed = [d for d in req.declarations if d["name"] in req.allowed]
        return (allowed or req.declarations)[:1]
    last = req.contents[-1]
    if any("functionResponse" in p for p in last["parts"]):
        return []
    lowered = prompt.lower()
    named = [
        d
        for d in req.declarations
        if d["name"].lower() in lowered or d["name"].lower().replace("_", " ") in lowered
    ]
    if not named and "weather" in lowered:
        weather = [d for d in req.declarations if "weather" in d["name"].lower()]
        named = weather[:1] or req.declarations[:1]
    return named


def signature(salt: str) -> str:
    return base64.b64encode(SIGNATURE_PREFIX + text.stable_hex(salt).encode()).decode()


def _call_parts(calls: list[dict[str, Any]], prompt: str, salt: str) -> tuple[list[Any], int]:
    parts: list[dict[str, Any]] = []
    tokens = 0
    for position, decl in enumerate(calls):
        schema = decl.get("parametersJsonSchema") or lower_types(decl.get("parameters"))
        schema = schema or {"type": "object", "properties": {}}
        args = text.schema_value(schema, f"{decl['name']}|{prompt}")
        part: dict[str, Any] = {"functionCall": {"name": decl["name"], "args": args}}
        if position == 0:
            part["thoughtSignature"] = signature(f"sig|{salt}|{decl['name']}")
        parts.append(part)
        tokens += count_text(decl["name"]) + count_text(as_json(args))
    return parts, tokens


def _reply_text(req: Generate, prompt: str, salt: str, tokens: int | None) -> str:
    if req.json_mode and req.schema:
        return as_json(text.schema_value(req.schema, salt))
    if req.json_mode:
        return text.json_reply(salt, tokens)
    return text.reply_text(prompt, salt, tokens)


def generate(req: Generate, script: FaultScript) -> list[Candidate]:
    """The candidates of a request, deterministically."""
    prompt = last_user_text(req.contents)
    calls = functions_to_call(req, prompt)
    out: list[Candidate] = []
    for index in range(req.n):
        salt = f"{req.seed}|{index}|{prompt}"
        thoughts = req.thinking
        if calls:
            parts, tokens = _call_parts(calls, prompt, salt)
            finish = "STOP"
        else:
            reply, _ = text.cut_at_stop(_reply_text(req, prompt, salt, script.tokens), req.stops)
            finish = "STOP"
            if req.cap is not None:
                thoughts = min(thoughts, req.cap)
                if count_text(reply) > req.cap - thoughts:
                    reply = text.truncate_tokens(reply, req.cap - thoughts)
                    finish = "MAX_TOKENS"
            parts, tokens = [{"text": reply}], count_text(reply)
            if (
                req.image
                and finish == "STOP"
                and index < (req.n if script.images is None else script.images)
            ):
                size = aspect_dimensions(req.aspect_ratio, req.image_size)
                data = image_b64(f"{req.model}|{index}|{prompt}", size, script.bad_image)
                parts.append({"inlineData": {"mimeType": "image/png", "data": data}})
                tokens += IMAGE_TOKENS
        if thoughts and req.include_thoughts:
            thought = text.filler(f"thought|{salt}", thoughts)
            parts.insert(0, {"text": thought, "thought": True})
        out.append(Candidate(index, parts, finish, tokens, thoughts))
    return out


def usage_metadata(
    req: Generate, candidates: list[Candidate], script: FaultScript
) -> dict[str, Any]:
    prompt = req.prompt_tokens
    if script.cached_tokens is not None:
        cached = min(script.cached_tokens, prompt)
    else:
        cached = prompt // 2 if req.cached else 0
    output = sum(c.tokens for c in candidates)
    thoughts = sum(c.thoughts for c in candidates)
    meta: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if cached:
        meta["cachedContentTokenCount"] = cached
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def response_id() -> str:
    return uuid.uuid4().hex[:22]


def response_payload(
    req: Generate, candidates: list[Candidate], usage: dict[str, Any], rid: str
) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"parts": c.parts, "role": "model"},
                "finishReason": c.finish,
                "index": c.index,
            }
            for c in candidates
        ],
        "usageMetadata": usage,
        "modelVersion": req.model,
        "responseId": rid,
    }


def stream_pieces(candidate: Candidate) -> list[dict[str, Any]]:
    """The parts a candidate streams, one per chunk: text one token at a time."""
    pieces: list[dict[str, Any]] = []
    for part in candidate.parts:
        if isinstance(part.get("text"), str):
            for segment in text.segments(part["text"]):
                pieces.append({**part, "text": segment})
        else:
            pieces.append(part)
    return pieces
