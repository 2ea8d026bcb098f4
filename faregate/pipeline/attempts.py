"""Retries and fallback: try deployments in the balancer's order until one serves.

Bounded in count (`routing.max_attempts`) and in time (`routing.retry_budget_seconds`);
never repeats what the caller got wrong; when every deployment is cooling down, waits
up to `routing.wait_for_recovery_seconds` for the first to recover, else answers 503
with Retry-After.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faregate.errors import FailureClass, FaregateError, ServiceUnavailable, UpstreamError
from faregate.observe import tracing
from faregate.pipeline.services import Services
from faregate.routing.balancer import Attempt
from faregate.routing.catalog import ModelEntry
from faregate.trace import current as current_trace

T = TypeVar("T")


def trail_header(trail: list[Attempt]) -> str:
    """`deployment=outcome` for every attempt, in order (the `x-faregate-attempts` header)."""
    return ", ".join(f"{a.deployment.name}={a.outcome}" for a in trail)


def _with_trail(err: FaregateError, trail: list[Attempt]) -> FaregateError:
    if trail:
        err.headers["x-faregate-attempts"] = trail_header(trail)
    return err


async def run_attempts(
    svc: Services, entry: ModelEntry, op: Callable[[Attempt], Awaitable[T]]
) -> tuple[T, Attempt, list[Attempt]]:
    """Run `op` on deployments until one succeeds: (its result, the attempt, every attempt)."""
    s = svc.config.routing
    balancer = svc.balancer
    chain = svc.catalog.chain(entry)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + s.retry_budget_seconds
    trail: list[Attempt] = []
    tried: set[str] = set()
    refused: set[str] = set()  # deployments whose TLS failed: not again in this request
    last: UpstreamError | None = None
    replans = 0
    while len(trail) < s.max_attempts and loop.time() < deadline:
        attempt = None
        candidates = [(m, d) for m, d in balancer.plan(chain, tried) if d.id not in refused]
        if refused and not candidates:
            break
        for model, dep in candidates:
            attempt = balancer.begin(model, dep)
            if attempt is not None:
                break
        if attempt is None:
            wait = balancer.recovers_in(chain)
            budget = min(s.wait_for_recovery_seconds, deadline - loop.time())
            if wait is None or wait > budget or (wait == 0 and replans >= 2):
                break
            if wait == 0:  # recovered between the plan and now: plan again, a bounded number
                replans += 1
            else:
                await asyncio.sleep(wait)
            continue
        trail.append(attempt)
        tried.add(attempt.deployment.id)
        span = _attempt_span(attempt)
        try:
            result = await op(attempt)
        except UpstreamError as err:
            if span is not None:
                span.fail(err.failure.value)
            balancer.failed(attempt, err)
            if err.failure is FailureClass.CALLER:
                raise _with_trail(err.to_client(), trail) from None
            if err.failure is FailureClass.TLS:
                refused.add(attempt.deployment.id)
            last = err
            continue
        except BaseException as exc:
            if span is not None:
                span.fail(type(exc).__name__)
            balancer.abandoned(attempt)
            raise
        if span is not None:
            tracing.served(span, attempt.deployment.upstream_model)
        balancer.succeeded(attempt)
        trace = current_trace.get()
        if trace is not None:
            trace.model, trace.deployment = attempt.model.name, attempt.deployment.name
        return result, attempt, trail
    raise _with_trail(_exhausted(last, balancer.recovers_in(chain)), trail)


def _attempt_span(attempt: Attempt) -> tracing.AttemptSpan | None:
    """A span for the attempt when the request is traced (GenAI conventions)."""
    request = tracing.current.get()
    if request is None:
        return None
    dep = attempt.deployment
    trace = current_trace.get()
    operation = "embeddings" if trace is not None and trace.route == "embeddings" else "chat"
    return request.attempt(
        operation, attempt.model.name, dep.upstream_model, dep.protocol.name, dep.provider
    )


def _exhausted(last: UpstreamError | None, recovers_in: float | None) -> FaregateError:
    retry = max(1, math.ceil(recovers_in)) if recovers_in is not None else 30
    if last is None or last.failure is FailureClass.RATE_LIMIT:
        # Clients never see an upstream's 429: every deployment is cooling down.
        return ServiceUnavailable(
            "No provider is available for this model right now.",
            code="no_provider_available",
            retry_after=retry,
        )
    err = last.to_client()
    if err.retry_after is not None:
        err.retry_after = max(err.retry_after, retry)
    return err
