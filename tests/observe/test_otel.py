"""Traces of a running gateway, exported over OTLP/HTTP to a receiver in the test process:
a server span per request and a GenAI client span per upstream attempt, linked."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
from harness import Gateway, Sim, start_gateway, stop
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from faregate.observe.config import Telemetry
from faregate.observe.otel import traces_url
from faregate.observe.tracing import endpoint

MSG = [{"role": "user", "content": "Tell me about the sea"}]


def _value(v: AnyValue) -> Any:
    return getattr(v, v.WhichOneof("value") or "string_value")


class Receiver:
    """An OTLP/HTTP traces endpoint on loopback keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.resources: list[dict[str, Any]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                message = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    receiver.paths.append(self.path)
                    for resource_spans in message.resource_spans:
                        attrs = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                        receiver.resources.append(attrs)
                        for scope in resource_spans.scope_spans:
                            receiver.spans.extend(scope.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return None

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait(self, count: int, timeout: float = 20.0) -> list[Span]:
        """At least `count` spans: wait for the batch exporter."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.spans) >= count:
                    return list(self.spans)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.spans)} spans exported, expected {count}")

    def clear(self) -> None:
        with self.lock:
            self.spans.clear()


def attrs(span: Span) -> dict[str, Any]:
    return {a.key: _value(a.value) for a in span.attributes}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture(scope="module")
def traced(
    sim: Sim, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export batches every 100 ms
        patch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
        extra = (
            f'\n[telemetry]\notlp_endpoint = "http://127.0.0.1:{receiver.port}"\n'
            'service_name = "faregate-test"\n'
        )
        gw = start_gateway(sim.url, tmp_path_factory.mktemp("otel-gw"), extra_models=extra)
    yield gw
    stop(gw.proc)


def _of(spans: list[Span], request_id: str) -> tuple[Span, list[Span]]:
    """The request's server span and its children."""
    (root,) = [s for s in spans if attrs(s).get("faregate.request_id") == request_id]
    return root, [s for s in spans if s.parent_span_id == root.span_id]


def test_a_request_and_its_attempt_are_linked_spans_with_genai_attributes(
    traced: Gateway, receiver: Receiver
) -> None:
    _, key = traced.account(10_000_000)
    receiver.clear()
    with openai.OpenAI(base_url=traced.url + "/v1", api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="sim-small", messages=MSG, max_tokens=20
        )
    usage = raw.parse().usage
    assert usage is not None
    root, children = _of(receiver.wait(2), raw.headers["x-request-id"])
    assert root.kind == Span.SPAN_KIND_SERVER
    assert root.name == "POST /v1/chat/completions"
    assert root.parent_span_id == b""
    assert attrs(root) == {
        "http.request.method": "POST",
        "http.route": "/v1/chat/completions",
        "faregate.request_id": raw.headers["x-request-id"],
        "faregate.route_class": "chat",
        "http.response.status_code": 200,
        "gen_ai.request.model": "sim-small",
    }
    (attempt,) = children
    assert attempt.trace_id == root.trace_id
    assert attempt.kind == Span.SPAN_KIND_CLIENT
    assert attempt.name == "chat sim-small"
    assert attrs(attempt) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "sim-small",
        "gen_ai.response.model": "sim-small",
        "gen_ai.system": "openai",
        "gen_ai.provider.name": "sim",
        "faregate.model": "sim-small",
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
    }
    assert root.start_time_unix_nano <= attempt.start_time_unix_nano
    assert attempt.end_time_unix_nano <= root.end_time_unix_nano
    assert {"service.name": "faregate-test"}.items() <= receiver.resources[-1].items()
    assert receiver.paths[-1] == "/v1/traces"


def test_a_stream_counts_its_tokens_on_the_attempt_that_served_it(
    traced: Gateway, receiver: Receiver
) -> None:
    _, key = traced.account(10_000_000)
    receiver.clear()
    with (
        openai.OpenAI(base_url=traced.url + "/v1", api_key=key, max_retries=0) as client,
        client.chat.completions.with_streaming_response.create(
            model="sim-small",
            messages=MSG,
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
        ) as response,
    ):
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    usage = chunks[-1].usage
    assert usage is not None
    root, (attempt,) = _of(receiver.wait(2), request_id)
    assert attrs(root)["http.response.status_code"] == 200
    assert attrs(attempt)["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert attrs(attempt)["gen_ai.usage.input_tokens"] == usage.prompt_tokens


def test_failed_attempts_are_error_spans_under_the_failed_request(
    traced: Gateway, receiver: Receiver
) -> None:
    _, key = traced.account(10_000_000)
    traced.reset_routing()
    receiver.clear()
    with (
        openai.OpenAI(base_url=traced.url + "/v1", api_key=key, max_retries=0) as client,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        client.chat.completions.create(model="dead-model", messages=MSG, max_tokens=20)
    request_id = caught.value.response.headers["x-request-id"]
    tries = caught.value.response.headers["x-faregate-attempts"].count("=")
    root, children = _of(receiver.wait(1 + tries), request_id)
    assert attrs(root)["http.response.status_code"] == 503
    assert attrs(root)["error.type"] == "503"
    assert root.status.code == Status.STATUS_CODE_ERROR
    assert len(children) == tries >= 1
    for attempt in children:
        assert attrs(attempt)["error.type"] == "transient"
        assert attempt.status.code == Status.STATUS_CODE_ERROR
        assert "gen_ai.usage.input_tokens" not in attrs(attempt)
    traced.reset_routing()


def test_the_endpoint_comes_from_the_config_else_the_standard_variable() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert endpoint(Telemetry(), {}) is None
    assert endpoint(Telemetry(), env) == "http://collector:4318"
    assert endpoint(Telemetry(otlp_endpoint="http://mine:4318"), env) == "http://mine:4318"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"
