"""OpenTelemetry spans of the request flow: a server span per client request and a client
span per upstream attempt (GenAI semantic conventions), exported over OTLP/HTTP. Imported
only when telemetry is configured (the `otel` extra)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

TRACES_PATH = "/v1/traces"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (as OTEL_EXPORTER_OTLP_ENDPOINT)."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


class OtelAttempt:
    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def fail(self, error_type: str) -> None:
        self.span.set_attribute("error.type", error_type)
        self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()


class OtelRequest:
    __slots__ = ("_served", "_served_model", "_tracer", "span")

    def __init__(self, tracer: trace.Tracer, span: Span) -> None:
        self._tracer = tracer
        self.span = span
        self._served: OtelAttempt | None = None
        self._served_model = ""

    def attempt(
        self, operation: str, model: str, upstream_model: str, system: str, provider: str
    ) -> OtelAttempt:
        span = self._tracer.start_span(
            f"{operation} {upstream_model}",
            context=trace.set_span_in_context(self.span),
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": upstream_model,
                "gen_ai.system": system,
                "gen_ai.provider.name": provider,
                "faregate.model": model,
            },
        )
        return OtelAttempt(span)

    def served(self, span: object, upstream_model: str) -> None:
        if isinstance(span, OtelAttempt):
            self._served, self._served_model = span, upstream_model

    def end(self, status: int, model: str | None, input_tokens: int, output_tokens: int) -> None:
        served = self._served
        if served is not None:
            served.span.set_attribute("gen_ai.response.model", self._served_model)
            served.span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
            served.span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
            served.span.end()
        span = self.span
        span.set_attribute("http.response.status_code", status)
        if model is not None:
            span.set_attribute("gen_ai.request.model", model)
        if status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()


class OtelBackend:
    """Spans batched and exported to `endpoint` (a collector's OTLP/HTTP base URL)."""

    def __init__(self, endpoint: str, service_name: str) -> None:
        self._provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self._provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint)))
        )
        self._tracer = self._provider.get_tracer("faregate")

    def request(self, method: str, route: str, request_id: str, kind: str) -> OtelRequest:
        span = self._tracer.start_span(
            f"{method} {route}",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "faregate.request_id": request_id,
                "faregate.route_class": kind,
            },
        )
        return OtelRequest(self._tracer, span)

    def shutdown(self) -> None:
        self._provider.shutdown()
