"""Retries and fallback: try deployments in the balancer's order until one serves.

Bounded in count (`routing.max_attempts`) and in time (`routing.retry_budget_seconds`);
never repeats what the caller got wrong, nor sends the request again to a deployment that
refused it or with an upstream key the provider called invalid; when every deployment is
cooling down, waits up to `routing.wait_for_recovery_seconds` for the first to recover,
else answers 503 with Retry-After.
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
    refused: set[str] = set()  # deployments that refused this request, or failed its TLS
    bad_keys: set[str] = set()  # upstream keys the provider called invalid for this request
    last: UpstreamError | None = None
    replans = 0
    trace = current_trace.get()
    while len(trail) < s.max_attempts and loop.time() < deadline:
        attempt = None
        blocked = False  # ready candidates, but none this request may use again
        for model, dep in balancer.plan(chain, tried):
            if dep.id not in refused:
                attempt = balancer.begin(model, dep, bad_keys)
                if attempt is not None:
                    break
            blocked = True
        if attempt is None:
            if blocked:
                break
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
        if trace is not None:
            trace.attempts = len(trail)
        span = _attempt_span(attempt)
        try:
            result = await op(attempt)
        except UpstreamError as err:
            if span is not None:
                span.fail(err.failure.value)
            balancer.failed(attempt, err)
            if err.failure is FailureClass.CALLER:
                raise _with_trail(err.to_client(), trail) from None
            if err.failure in (FailureClass.REFUSED, FailureClass.TLS):
                refused.add(attempt.deployment.id)
            elif err.failure is FailureClass.CREDENTIAL and attempt.key is not None:
                bad_keys.add(attempt.key)
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
    return request.attempt(
        attempt.model.kind.value,
        attempt.model.name,
        dep.upstream_model,
        dep.adapter.name,
        dep.provider,
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
