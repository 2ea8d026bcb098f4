"""Observability beyond metrics: OpenTelemetry traces, off unless configured."""
