"""Embeddings calls: admit, call the upstream, settle the exact cost of the input."""

from __future__ import annotations

from dataclasses import dataclass

from faregate import tokens
from faregate.billing.pricing import cost_of, worst_case
from faregate.billing.types import KeyRecord, Settlement, Usage
from faregate.errors import BadRequest
from faregate.pipeline.admission import check_model_allowed, take_hold
from faregate.pipeline.attempts import run_attempts
from faregate.pipeline.services import Services
from faregate.providers.base import EmbedCall, EmbedResult
from faregate.routing.balancer import Attempt
from faregate.trace import current as current_trace


@dataclass(slots=True)
class Embedded:
    result: EmbedResult
    usage: Usage
    cost: int
    model: str


def _upper_bound(call: EmbedCall) -> int:
    """Every input token at most one byte (or one id for token arrays)."""
    return sum(len(text.encode()) for text in call.inputs)


async def embed(svc: Services, key: KeyRecord, call: EmbedCall) -> Embedded:
    entry = svc.catalog.get(call.model, "embedding")
    check_model_allowed(key, call.model)
    if any(d.embeddings is None for d in entry.deployments):
        raise BadRequest(
            f"The model '{call.model}' is served over a protocol without embeddings.",
            code="unsupported_feature",
            param="model",
        )
    amount = max(worst_case(m.price, _upper_bound(call), 0) for m in svc.catalog.chain(entry))
    async with await take_hold(svc, key, call.model, amount, call.request_id) as charge:

        async def attempt_once(attempt: Attempt) -> EmbedResult:
            dep = attempt.deployment
            adapter = dep.embeddings
            assert adapter is not None
            creds = dep.creds(attempt.key)
            request = adapter.build_embed_request(call, dep.upstream_model, creds)
            reply = await svc.upstream.send(creds, request, dep.timeouts)
            if reply.status >= 400:
                raise adapter.classify_error(reply.status, reply.headers, reply.body)
            return adapter.parse_embed_response(reply.body, call)

        result, served, _ = await run_attempts(svc, entry, attempt_once)
        usage = result.usage or Usage(
            sum(tokens.count_text(t) for t in call.inputs), 0, estimated=True
        )
        svc.balancer.used(served, usage.prompt_tokens, 0)
        cost = cost_of(served.model.price, usage)
        trace = current_trace.get()
        if trace is not None:
            trace.prompt_tokens, trace.cost, trace.estimated = (
                usage.prompt_tokens,
                cost,
                usage.estimated,
            )
        await charge.settle(
            Settlement(
                cost=cost,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=0,
                estimated=usage.estimated,
                note="estimated: the provider reported no usage" if usage.estimated else None,
            )
        )
    return Embedded(result, usage, cost, served.model.name)
