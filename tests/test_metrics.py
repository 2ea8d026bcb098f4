"""The metrics counted on the hot path as plain numbers, as a Prometheus scrape reads them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from faregate.metrics import LATENCY_BUCKETS, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_deployment_series_reads_as_prometheus_counters_gauge_and_histogram() -> None:
    metrics = Metrics()
    series = metrics.deployment("gpt", "sim/gpt")
    assert metrics.deployment("gpt", "sim/gpt") is series
    series.ok += 3
    series.errors += 1
    series.prompt_tokens += 10
    series.completion_tokens += 4
    series.breaker = 2
    for seconds in (0.001, LATENCY_BUCKETS[0], 0.2, 1000.0):  # a bound counts in its bucket
        series.observe(seconds)
    metrics.charged("gpt", 1234)
    metrics.charged("gpt", 6)
    got = samples(metrics)
    names = (("deployment", "sim/gpt"), ("model", "gpt"))

    def at(name: str, *extra: tuple[str, str]) -> float:
        return got[(name, tuple(sorted(names + extra)))]

    assert at("faregate_upstream_requests_total", ("outcome", "ok")) == 3
    assert at("faregate_upstream_requests_total", ("outcome", "error")) == 1
    assert at("faregate_tokens_total", ("kind", "prompt")) == 10
    assert at("faregate_tokens_total", ("kind", "completion")) == 4
    assert at("faregate_breaker_state") == 2
    assert at("faregate_upstream_latency_seconds_bucket", ("le", "0.005")) == 2
    assert at("faregate_upstream_latency_seconds_bucket", ("le", "0.1")) == 2
    assert at("faregate_upstream_latency_seconds_bucket", ("le", "0.25")) == 3
    assert at("faregate_upstream_latency_seconds_bucket", ("le", "120.0")) == 3
    assert at("faregate_upstream_latency_seconds_bucket", ("le", "+Inf")) == 4
    assert at("faregate_upstream_latency_seconds_count") == 4
    assert abs(at("faregate_upstream_latency_seconds_sum") - 1000.206) < 1e-9
    assert got[("faregate_cost_micro_credits_total", (("model", "gpt"),))] == 1240


def test_a_deployment_without_errors_has_no_error_series() -> None:
    metrics = Metrics()
    metrics.deployment("m", "d").ok += 1
    assert not any(
        name == "faregate_upstream_requests_total" and ("outcome", "error") in labels
        for name, labels in samples(metrics)
    )
