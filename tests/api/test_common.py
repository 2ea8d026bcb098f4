"""The opt-in `_balancer` metadata: what a request cost and what it was billed for."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from faregate.api.common import balancer_metadata, usage_cost
from faregate.billing.types import Usage


def _svc() -> Any:
    return SimpleNamespace(
        config=SimpleNamespace(billing=SimpleNamespace(micro_credits_per_usd=1_000_000))
    )


def test_units_billed_beyond_tokens_are_shown() -> None:
    usage = Usage(0, 0, units=(("images:1024x1024/hd", 2),))
    meta = balancer_metadata(_svc(), "img", 80_000, usage, False)
    assert meta["units"] == {"images:1024x1024/hd": 2}
    assert meta["credits_used"] == 80_000
    assert orjson.dumps(meta["cost_usd"]) == b"0.08"


def test_token_only_usage_keeps_its_shape() -> None:
    meta = balancer_metadata(_svc(), "chat", 3, Usage(10, 5), False)
    assert "units" not in meta
    assert (meta["input_tokens"], meta["output_tokens"]) == (10, 5)


def test_usage_cost_is_exact_dollars_and_micro_credits() -> None:
    fields = usage_cost(_svc(), 123)
    assert orjson.dumps(fields) == b'{"cost":0.000123,"cost_micro_credits":123}'
    assert orjson.dumps(usage_cost(_svc(), 0)) == b'{"cost":0,"cost_micro_credits":0}'
