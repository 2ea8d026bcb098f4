"""The `[telemetry]` config section: where traces go, if anywhere."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Telemetry(BaseModel):
    """OpenTelemetry traces (the `otel` extra): off unless an OTLP endpoint is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    otlp_endpoint: str | None = None  # collector base URL; else OTEL_EXPORTER_OTLP_ENDPOINT
    service_name: str = "faregate"
