"""Legacy completions on the chat runner: the chat kind spec, except that a deployment whose
provider serves `/completions` itself (`completions = true` on the `openai` protocol) is sent
the client's request unchanged; every other deployment gets the hub chat call."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace

from faregate.billing.types import KeyRecord
from faregate.pipeline import chat, runner
from faregate.pipeline.services import Services
from faregate.providers import openai_completions
from faregate.providers.base import (
    Adapter,
    ChatCall,
    ChatResult,
    Credentials,
    UpstreamRequest,
)
from faregate.providers.native import NativeCall
from faregate.routing.balancer import Attempt
from faregate.routing.catalog import Deployment, ModelEntry


def serves_natively(svc: Services, dep: Deployment) -> bool:
    """Whether the deployment's upstream serves legacy completions itself."""
    provider = svc.config.providers.get(dep.provider)
    return provider is not None and provider.completions and dep.adapter.name == "openai"


def all_native(svc: Services, entry: ModelEntry) -> bool:
    """Whether every deployment that may serve `entry` (fallbacks included) is native."""
    return all(serves_natively(svc, d) for m in svc.catalog.chain(entry) for d in m.deployments)


async def _request(
    svc: Services, call: ChatCall, attempt: Attempt
) -> tuple[UpstreamRequest, Credentials]:
    dep = attempt.deployment
    if isinstance(call, NativeCall) and call.api == "completions" and serves_natively(svc, dep):
        limit = attempt.model.max_output_tokens
        cap = min(call.max_output or limit, limit)
        creds = dep.creds(attempt.key)
        upstream = openai_completions.build_request(
            call.native, dep.upstream_model, creds, cap, call.stream
        )
        return upstream, creds
    return await chat.CHAT.request(svc, call, attempt)


def _parse(adapter: Adapter, body: bytes, call: ChatCall) -> ChatResult:
    native = openai_completions.parse(body) if adapter.name == "openai" else None
    return native if native is not None else chat.CHAT.parse(adapter, body, call)


COMPLETIONS = replace(chat.CHAT, request=_request, parse=_parse)


async def complete(svc: Services, key: KeyRecord, call: ChatCall) -> chat.Completed:
    """A whole legacy completion (no response cache: its replies are not chat replies)."""
    return await runner.run(svc, COMPLETIONS, key, call)


def open_stream(svc: Services, key: KeyRecord, call: ChatCall) -> Awaitable[chat.OpenStream]:
    """A streamed legacy completion, relayed by the chat relay (whose OpenAI decoder reads
    text-completion chunks' usage and finish reasons as well)."""
    return chat.open_stream(svc, key, call, COMPLETIONS)
