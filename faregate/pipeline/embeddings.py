"""Embeddings calls on the runner: the hold on the input's bound, the adapter's request and
reply, and the estimate when the provider reports no usage."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

from faregate import tokens
from faregate.billing.pricing import worst_case
from faregate.billing.types import KeyRecord, Usage
from faregate.kinds import Kind
from faregate.pipeline import runner
from faregate.pipeline.services import Services
from faregate.providers.base import (
    Adapter,
    Credentials,
    EmbedCall,
    EmbeddingsProtocol,
    EmbedResult,
    UpstreamRequest,
)
from faregate.routing.balancer import Attempt
from faregate.routing.catalog import ModelEntry

Embedded = runner.Done[EmbedResult]


def _hold(chain: list[ModelEntry], call: EmbedCall) -> int:
    """Every input token at most one byte (or one id for token arrays), at the dearest model."""
    bound = sum(len(text.encode()) for text in call.inputs)
    return max(worst_case(m.price, bound, 0) for m in chain)


async def _request(
    svc: Services, call: EmbedCall, attempt: Attempt
) -> tuple[UpstreamRequest, Credentials]:
    dep = attempt.deployment
    creds = dep.creds(attempt.key)
    adapter = cast(EmbeddingsProtocol, dep.adapter)
    return adapter.build_embed_request(call, dep.upstream_model, creds), creds


def _parse(adapter: Adapter, body: bytes, call: EmbedCall) -> EmbedResult:
    return cast(EmbeddingsProtocol, adapter).parse_embed_response(body, call)


def _usage(call: EmbedCall, result: EmbedResult) -> Usage:
    return result.usage or Usage(sum(tokens.count_text(t) for t in call.inputs), 0, estimated=True)


EMBEDDINGS: runner.KindSpec[EmbedCall, EmbedResult] = runner.KindSpec(
    kind=Kind.EMBEDDINGS,
    hold=_hold,
    request=_request,
    parse=_parse,
    usage=_usage,
    estimated_note="estimated: the provider reported no usage",
)


def embed(svc: Services, key: KeyRecord, call: EmbedCall) -> Awaitable[Embedded]:
    """An embeddings call: admit, hold, attempts with fallback, settle (the runner's
    coroutine itself)."""
    return runner.run(svc, EMBEDDINGS, key, call)
