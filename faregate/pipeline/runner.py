"""The request path of every kind: admit, hold, attempts with fallback, settle, trace.

A kind plugs in with a `KindSpec`: how to bound the hold, how to build one attempt's request
and parse its reply, and how to read (or estimate) the usage. Everything else (the model's
kind, the key's scope, the hold, retries and fallback, error classification, settling exactly
once, the trace) is the same for every kind and lives here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Generic, Protocol, TypeVar

from faregate.billing.charge import Charge
from faregate.billing.pricing import cost_of
from faregate.billing.types import KeyRecord, Price, Settlement, Usage
from faregate.errors import FaregateError
from faregate.kinds import Kind
from faregate.pipeline import guard
from faregate.pipeline.admission import check_model_allowed, take_hold
from faregate.pipeline.attempts import run_attempts
from faregate.pipeline.services import Services
from faregate.providers.base import Adapter, Credentials, UpstreamRequest
from faregate.routing.balancer import Attempt
from faregate.routing.catalog import Deployment, ModelEntry
from faregate.trace import current as current_trace
from faregate.upstream.base import Reply, UpstreamStream


class Call(Protocol):
    """What the runner reads of any kind's call."""

    @property
    def model(self) -> str: ...

    @property
    def request_id(self) -> str: ...


C = TypeVar("C", bound=Call)
R = TypeVar("R")
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class KindSpec(Generic[C, R]):
    """What one kind adds to the runner."""

    kind: Kind
    hold: Callable[[list[ModelEntry], C], int]
    """The worst case, in micro-credits, over the model and its fallbacks (`chain`)."""
    request: Callable[[Services, C, Attempt], Awaitable[tuple[UpstreamRequest, Credentials]]]
    """The wire request of one attempt, built by its deployment's adapter."""
    parse: Callable[[Adapter, bytes, C], R]
    """A successful reply's body, parsed by the deployment's adapter."""
    usage: Callable[[C, R], Usage]
    """The usage the upstream reported, else an estimate (marked `estimated`)."""
    check: Callable[[ModelEntry, C], None] | None = None
    """Checks of the call against the requested model, before the hold (BadRequest)."""
    screened: Callable[[C], list[str]] | None = None
    """The text of the call its caller's users and tools control, for the guards to screen
    before the hold (`pipeline/guard.py`); None: a kind the guards do not read."""
    estimated_note: str | None = None
    """The ledger note of a settlement on estimated usage."""


@dataclass(slots=True)
class Done(Generic[R]):
    """A served call: its result and usage, what it cost, and who served it."""

    result: R
    usage: Usage
    cost: int
    model: str
    deployment: Deployment | None  # None when the response cache answered
    attempts: list[Attempt]
    cached: bool = False


@dataclass(slots=True)
class OpenStream(Generic[E]):
    """A stream whose first bytes have arrived; iterate `events` to forward the rest."""

    events: AsyncGenerator[E | FaregateError, None]
    model: str
    deployment: Deployment
    attempts: list[Attempt]


Relay = Callable[
    [Services, C, Attempt, Charge, UpstreamStream, bytes, AsyncIterator[bytes]],
    AsyncGenerator[E | FaregateError, None],
]
"""A kind's stream relay: decodes the chunks into events and settles exactly once, in a
`finally`, however the stream ends."""


async def admit(
    svc: Services, spec: KindSpec[C, R], key: KeyRecord, call: C
) -> tuple[ModelEntry, Charge]:
    """Resolve the model (of the spec's kind), check the key may use it and the kind's own
    checks, and take the hold on the worst case (402 if the balance cannot cover it)."""
    entry = svc.catalog.get(call.model, spec.kind)
    check_model_allowed(key, call.model)
    if spec.check is not None:
        spec.check(entry, call)
    if spec.screened is not None:  # before the hold: a refusal costs nothing
        await guard.screen(svc, key, call.model, call.request_id, partial(spec.screened, call))
    amount = spec.hold(svc.catalog.chain(entry), call)
    charge = await take_hold(svc, key, call.model, amount, call.request_id)
    return entry, charge


async def settle(
    charge: Charge, price: Price, usage: Usage, note: str | None = None, *, cached: bool = False
) -> int:
    """Charge `usage` at `price`, into the trace and the ledger, before the reply goes."""
    cost = cost_of(price, usage)
    trace = current_trace.get()
    if trace is not None:
        trace.prompt_tokens = usage.prompt_tokens
        trace.completion_tokens = usage.completion_tokens
        trace.cost = cost
        trace.estimated = usage.estimated
        trace.cached = cached
        trace.units = usage.units
    await charge.settle(Settlement.of(cost, usage, note))
    return cost


async def _send_once(svc: Services, spec: KindSpec[C, R], call: C, attempt: Attempt) -> R:
    dep = attempt.deployment
    request, creds = await spec.request(svc, call, attempt)
    reply = await svc.upstream.send(creds, request, dep.timeouts)
    if reply.status >= 400:
        raise dep.adapter.classify_error(reply.status, reply.headers, reply.body)
    return spec.parse(dep.adapter, reply.body, call)


Finish = Callable[[R], Awaitable[None]]
"""Work on a whole result before it is settled (e.g. storing media); its failure releases."""


async def serve(
    svc: Services,
    spec: KindSpec[C, R],
    entry: ModelEntry,
    charge: Charge,
    call: C,
    finish: Finish[R] | None = None,
) -> Done[R]:
    """Attempts with fallback until one deployment answers whole, then `finish` (if any),
    then settle at the price of the model that served."""
    result, served, trail = await run_attempts(svc, entry, partial(_send_once, svc, spec, call))
    if finish is not None:
        await finish(result)
    usage = spec.usage(call, result)
    svc.balancer.used(served, usage.prompt_tokens, usage.completion_tokens)
    note = spec.estimated_note if usage.estimated else None
    cost = await settle(charge, served.model.price, usage, note)
    return Done(result, usage, cost, served.model.name, served.deployment, trail)


async def run(
    svc: Services, spec: KindSpec[C, R], key: KeyRecord, call: C, finish: Finish[R] | None = None
) -> Done[R]:
    """A whole (non-streaming) call: admit, hold, attempts, settle; any failure releases."""
    entry, charge = await admit(svc, spec, key, call)
    async with charge:
        return await serve(svc, spec, entry, charge, call, finish)


async def _open_once(
    svc: Services, spec: KindSpec[C, R], call: C, attempt: Attempt
) -> tuple[UpstreamStream, bytes, AsyncIterator[bytes]]:
    dep = attempt.deployment
    request, creds = await spec.request(svc, call, attempt)
    opened = await svc.upstream.stream(creds, request, dep.timeouts)
    if isinstance(opened, Reply):
        raise dep.adapter.classify_error(opened.status, opened.headers, opened.body)
    chunks = opened.chunks()
    try:
        first = await anext(chunks, b"")
    except BaseException:
        opened.close()
        raise
    return opened, first, chunks


async def open_stream(
    svc: Services, spec: KindSpec[C, R], key: KeyRecord, call: C, relay: Relay[C, E]
) -> OpenStream[E]:
    """Admit, then open upstream streams until one delivers its first chunk: fallback is only
    possible before the client sees a byte, and any failure until then releases the hold and
    is an ordinary error response with its status code. The relay settles the rest."""
    entry, charge = await admit(svc, spec, key, call)
    try:
        (opened, first, chunks), served, trail = await run_attempts(
            svc, entry, partial(_open_once, svc, spec, call)
        )
    except FaregateError as exc:
        await charge.release(f"no upstream delivered a first byte: {exc.code}")
        raise
    except BaseException:
        await charge.release("request failed before the first byte")
        raise
    try:
        await charge.confirm()  # no upstream byte reaches the client before the hold is on disk
    except BaseException:
        opened.close()
        await charge.release("request failed before the first byte")
        raise
    events = relay(svc, call, served, charge, opened, first, chunks)
    return OpenStream(events, served.model.name, served.deployment, trail)
