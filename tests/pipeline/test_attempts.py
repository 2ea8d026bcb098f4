"""Retries across deployments: a TLS refusal is never retried on the same deployment within a
request, and every attempt is reported to the request's span when tracing is on."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from routing.test_balancer import dep, model

from faregate.config import Config, Routing
from faregate.errors import FailureClass, FaregateError, UpstreamError
from faregate.metrics import Metrics
from faregate.observe import tracing
from faregate.pipeline.attempts import run_attempts
from faregate.pipeline.services import Services
from faregate.routing.balancer import Attempt, Balancer
from faregate.routing.catalog import Catalog, ModelEntry


def services(entry: ModelEntry) -> Services:
    fake = SimpleNamespace(
        config=Config(),
        balancer=Balancer(Routing(), Metrics()),
        catalog=Catalog({entry.name: entry}),
    )
    return cast(Services, fake)


def failing(failure: FailureClass, calls: list[str], ok: frozenset[str] = frozenset()) -> Any:
    async def op(attempt: Attempt) -> str:
        calls.append(attempt.deployment.name)
        if attempt.deployment.name in ok:
            return "served"
        raise UpstreamError(failure, "refused")

    return op


async def test_a_tls_refusal_is_not_retried_on_the_same_deployment() -> None:
    entry = model(dep("a"))
    calls: list[str] = []
    with pytest.raises(FaregateError) as caught:
        await run_attempts(services(entry), entry, failing(FailureClass.TLS, calls))
    assert calls == ["a"]
    assert caught.value.status == 503
    assert caught.value.headers["x-faregate-attempts"] == "a=tls"
    # A transient failure, by contrast, may try the only deployment again.
    calls.clear()
    with pytest.raises(FaregateError):
        await run_attempts(services(entry), entry, failing(FailureClass.TRANSIENT, calls))
    assert calls == ["a", "a", "a"]


async def test_after_a_tls_refusal_another_deployment_serves() -> None:
    entry = model(dep("a", priority=0), dep("b", priority=1))
    calls: list[str] = []
    result, served, trail = await run_attempts(
        services(entry), entry, failing(FailureClass.TLS, calls, frozenset({"b"}))
    )
    assert (result, served.deployment.name) == ("served", "b")
    assert [(t.deployment.name, t.outcome) for t in trail] == [("a", "tls"), ("b", "ok")]


class Recorder:
    """A request span that records what the attempts tell it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def attempt(
        self, operation: str, model: str, upstream_model: str, system: str, provider: str
    ) -> tracing.AttemptSpan:
        self.events.append(("start", operation, model, upstream_model, system, provider))
        recorder = self

        class Span:
            def fail(self, error_type: str) -> None:
                recorder.events.append(("fail", upstream_model, error_type))

        return Span()

    def served(self, span: tracing.AttemptSpan, upstream_model: str) -> None:
        self.events.append(("served", upstream_model))

    def end(self, status: int, model: str | None, input_tokens: int, output_tokens: int) -> None:
        raise AssertionError("the front door ends the request span")


async def test_each_attempt_reports_to_the_requests_span() -> None:
    entry = model(dep("a", priority=0), dep("b", priority=1))
    recorder = Recorder()
    token = tracing.current.set(recorder)
    try:
        await run_attempts(
            services(entry), entry, failing(FailureClass.TRANSIENT, [], frozenset({"b"}))
        )
    finally:
        tracing.current.reset(token)
    assert recorder.events == [
        ("start", "chat", "m", "a", "openai", "p-a"),
        ("fail", "a", "transient"),
        ("start", "chat", "m", "b", "openai", "p-b"),
        ("served", "b"),
    ]
