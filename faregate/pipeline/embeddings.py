"""Embeddings calls: admit, call the upstream, settle the exact cost of the input."""

from __future__ import annotations

from dataclasses import dataclass

from faregate import tokens
from faregate.billing.pricing import Usage, cost_of, worst_case
from faregate.billing.store import KeyRecord, Settlement
from faregate.errors import BadRequest, UpstreamError
from faregate.pipeline.admission import check_model_allowed, take_hold
from faregate.pipeline.services import Services
from faregate.providers.base import EmbedCall, EmbedResult


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
    dep = entry.deployments[0]
    adapter = dep.embeddings
    if adapter is None:
        raise BadRequest(
            f"The model '{call.model}' is served over a protocol without embeddings.",
            code="unsupported_feature",
            param="model",
        )
    amount = worst_case(entry.price, _upper_bound(call), 0)
    async with await take_hold(svc, key, call.model, amount, call.request_id) as charge:
        request = adapter.build_embed_request(call, dep.upstream_model, dep.creds)
        try:
            reply = await svc.upstream.send(dep.creds, request, dep.timeouts)
            if reply.status >= 400:
                raise adapter.classify_error(reply.status, reply.headers, reply.body)
            result = adapter.parse_embed_response(reply.body, call)
        except UpstreamError as exc:
            raise exc.to_client() from None
        usage = result.usage or Usage(
            sum(tokens.count_text(t) for t in call.inputs), 0, estimated=True
        )
        cost = cost_of(entry.price, usage)
        await charge.settle(
            Settlement(
                cost=cost,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=0,
                estimated=usage.estimated,
                note="estimated: the provider reported no usage" if usage.estimated else None,
            )
        )
    return Embedded(result, usage, cost, entry.name)
