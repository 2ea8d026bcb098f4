"""Tracing off: Faregate imports nothing of OpenTelemetry and has no backend (redis-py, when
the SDK is installed, imports the SDK's metrics on its own: that is not counted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from harness import ROOT

from faregate.config import ConfigError
from faregate.observe import tracing
from faregate.observe.config import Telemetry

OFF = """
import builtins, json, sys
ours = []
real_import = builtins.__import__
def spy(name, globals=None, *args, **kwargs):
    importer = (globals or {}).get("__name__", "")
    if importer.startswith("faregate") and "opentelemetry" in name:
        ours.append(name)
    return real_import(name, globals, *args, **kwargs)
builtins.__import__ = spy
from faregate import app, cli
from faregate.api import front
from faregate.observe.config import Telemetry
from faregate.observe import tracing
from faregate.pipeline import attempts
tracing.configure(Telemetry(), {})
tracing_modules = [
    m for m in sys.modules
    if m.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter"))
    or m == "faregate.observe.otel"
]
print(json.dumps([tracing.backend() is None, ours + tracing_modules]))
"""

ON = OFF.replace("Telemetry()", "Telemetry(otlp_endpoint='http://127.0.0.1:9')").replace(
    "tracing.backend() is None", "tracing.backend() is not None"
)


def _run(code: str) -> list[object]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, cwd=ROOT, timeout=60
    )
    return list(json.loads(out.stdout))


def test_with_telemetry_off_opentelemetry_is_never_imported() -> None:
    assert _run(OFF) == [True, []]


def test_with_an_endpoint_the_backend_is_loaded() -> None:
    configured, modules = _run(ON)
    assert configured is True
    assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in modules  # type: ignore[operator]
    assert "faregate.observe.otel" in modules  # type: ignore[operator]


def test_an_endpoint_without_opentelemetry_installed_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "faregate.observe.otel", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"install the `otel` extra"):
        tracing.configure(Telemetry(otlp_endpoint="http://127.0.0.1:4318"), {})
    assert tracing.backend() is None
