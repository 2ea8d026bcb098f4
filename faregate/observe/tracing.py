"""Tracing hooks of the request flow (front door and upstream attempts): free when telemetry
is off, since nothing of OpenTelemetry is imported then; see `observe/otel.py` when on."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Protocol

from faregate.config import ConfigError
from faregate.observe.config import Telemetry


class AttemptSpan(Protocol):
    def fail(self, error_type: str) -> None:
        """The attempt failed (`error_type`: its failure class): the span ends."""


class RequestSpan(Protocol):
    def attempt(
        self, operation: str, model: str, upstream_model: str, system: str, provider: str
    ) -> AttemptSpan:
        """A child span for one upstream attempt."""

    def served(self, span: AttemptSpan, upstream_model: str) -> None:
        """The attempt that served: its span stays open until the response has ended."""

    def end(self, status: int, model: str | None, input_tokens: int, output_tokens: int) -> None:
        """The response has ended: the served attempt's span (with its usage), then this one."""


class Backend(Protocol):
    def request(self, method: str, route: str, request_id: str, kind: str) -> RequestSpan: ...

    def shutdown(self) -> None: ...


_backend: Backend | None = None

current: ContextVar[RequestSpan | None] = ContextVar("faregate_span", default=None)
"""The span of the request this task serves, when tracing is on."""


def endpoint(settings: Telemetry, environ: Mapping[str, str]) -> str | None:
    """Where spans go: `telemetry.otlp_endpoint`, else OTEL_EXPORTER_OTLP_ENDPOINT; None: off."""
    return settings.otlp_endpoint or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


def configure(settings: Telemetry, environ: Mapping[str, str]) -> None:
    """Turn tracing on when an endpoint is configured (OpenTelemetry is imported only then)."""
    global _backend
    shutdown()
    url = endpoint(settings, environ)
    if url is not None:
        try:
            from faregate.observe.otel import OtelBackend
        except ImportError as exc:
            raise ConfigError(
                f"telemetry: traces go to {url}, but OpenTelemetry is not installed ({exc});"
                " install the `otel` extra (pip install 'faregate[otel]') or unset the endpoint"
            ) from None
        _backend = OtelBackend(url, settings.service_name)


def served(span: AttemptSpan, upstream_model: str) -> None:
    """The attempt of `span` served the current request."""
    request = current.get()
    if request is not None:
        request.served(span, upstream_model)


def backend() -> Backend | None:
    return _backend


def shutdown() -> None:
    """Export what is buffered and stop (at server shutdown)."""
    global _backend
    if _backend is not None:
        _backend.shutdown()
        _backend = None
