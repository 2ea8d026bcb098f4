"""The `[limits]` and `[plans]` sections, overrides, effective limits and the limiter choice."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from pydantic import ValidationError

from faregate.limits.base import Unlimited
from faregate.limits.config import (
    Limits,
    LimitsConfigError,
    Plan,
    RouteLimits,
    check_overrides,
    check_plans,
    effective,
)
from faregate.limits.factory import make_limiter
from faregate.limits.fallback import FallbackLimiter
from faregate.limits.local import LocalLimiter
from faregate.metrics import Metrics

TOML = """
[limits]
default_plan = "standard"
key_prefix = "fg"
redis_timeout_seconds = 0.2
[plans.free.chat]
rpm = 10
tpm = 20000
rpd = 200
concurrency = 2
[plans.free.images]
rpm = 5
[plans.standard.chat]
rpm = 60
[plans.standard.images]
rpm = 20
"""


def parse(text: str) -> tuple[Limits, dict[str, Plan]]:
    data = tomllib.loads(text)
    limits = Limits.model_validate(data.get("limits", {}))
    plans = {name: Plan.model_validate(p) for name, p in data.get("plans", {}).items()}
    check_plans(limits, plans)
    return limits, plans


def test_sections_parse() -> None:
    limits, plans = parse(TOML)
    assert limits.default_plan == "standard"
    assert limits.replicas == 1
    assert plans["free"].chat == RouteLimits(rpm=10, tpm=20000, rpd=200, concurrency=2)
    assert plans["free"].images.rpm == 5
    assert plans["free"].embeddings.empty


def test_unknown_route_class_names_the_allowed_ones() -> None:
    with pytest.raises(ValidationError) as exc:
        Plan.model_validate({"chats": {"rpm": 1}})
    assert "unknown route class 'chats'" in str(exc.value)
    assert "chat, embeddings, images, audio, video" in str(exc.value)


@pytest.mark.parametrize(
    "values",
    [{"rpm": -1}, {"rpms": 3}, {"tpm": 1.5}, {"rpd": "many"}],
)
def test_bad_limit_values_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RouteLimits.model_validate(values)


def test_default_plan_must_be_declared() -> None:
    with pytest.raises(ValueError, match=r"'gold' is not a declared plan \(declared: free"):
        parse('[limits]\ndefault_plan = "gold"\n[plans.free.chat]\nrpm = 1\n')


def test_limits_refuse_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        Limits.model_validate({"redis": "x"})


def test_several_replicas_need_redis() -> None:
    limits = Limits(replicas=2, default_plan=None)
    with pytest.raises(LimitsConfigError, match=r"limits\.replicas.*limits\.redis_url"):
        make_limiter(limits, {}, Metrics())


def test_limiter_choice() -> None:
    assert isinstance(make_limiter(Limits(), {}, Metrics()), Unlimited)
    assert isinstance(make_limiter(Limits(), {"empty": Plan()}, Metrics()), Unlimited)
    limits, plans = parse(TOML)
    assert isinstance(make_limiter(limits, plans, Metrics()), LocalLimiter)
    shared = Limits(default_plan="free", redis_url="redis://127.0.0.1:1/0", replicas=3)
    limiter = make_limiter(shared, plans, Metrics())
    assert isinstance(limiter, FallbackLimiter)
    assert limiter.local.share == 3
    with pytest.raises(LimitsConfigError, match="not a declared plan"):
        make_limiter(Limits(default_plan="gold"), plans, Metrics())


def test_overrides_are_checked() -> None:
    assert check_overrides(None) == {}
    assert check_overrides({"chat": {"rpm": 100, "tpm": None}}) == {
        "chat": {"rpm": 100, "tpm": None}
    }
    with pytest.raises(LimitsConfigError, match="unknown route class 'text'"):
        check_overrides({"text": {"rpm": 1}})
    with pytest.raises(LimitsConfigError, match=r"limits\.chat\.rpm"):
        check_overrides({"chat": {"rpm": -1}})
    with pytest.raises(LimitsConfigError, match=r"limits\.chat\.burst"):
        check_overrides({"chat": {"burst": 3}})
    with pytest.raises(LimitsConfigError):
        check_overrides(["chat"])


def test_effective_limits_merge_plan_account_key() -> None:
    limits, plans = parse(TOML)
    # No plan on the account: the default plan.
    eff = effective(limits, plans, None, None, None, "chat")
    assert (eff.limits.rpm, eff.plan, eff.source) == (60, "standard", "plan")
    assert eff.where() == "for chat on plan standard"
    # The account's plan, an unknown plan name counts as the default.
    assert effective(limits, plans, "free", None, None, "chat").limits.rpm == 10
    assert effective(limits, plans, "gone", None, None, "chat").plan == "standard"
    # Account overrides the plan per limit; the key overrides both; null lifts a limit.
    account = {"chat": {"rpm": 100, "rpd": 5}}
    eff = effective(limits, plans, "free", account, None, "chat")
    assert eff.limits == RouteLimits(rpm=100, rpd=5, tpm=20000, concurrency=2)
    assert eff.source == "account"
    assert eff.where() == "for chat on this account (plan free)"
    key = {"chat": {"rpd": None, "concurrency": 7}}
    eff = effective(limits, plans, "free", account, key, "chat")
    assert eff.limits == RouteLimits(rpm=100, rpd=None, tpm=20000, concurrency=7)
    assert eff.where() == "for chat on this key"
    # Overrides of another route class change nothing here.
    assert effective(limits, plans, "free", account, key, "images").limits.rpm == 5
    # A stored override that does not validate is ignored.
    assert effective(limits, plans, "free", {"chat": {"rpm": -3}}, None, "chat").limits.rpm == 10


def test_no_default_plan_means_unlimited_without_a_plan() -> None:
    limits, plans = parse("[plans.free.chat]\nrpm = 1\n")
    assert effective(limits, plans, None, None, None, "chat").limits.empty
    assert effective(limits, plans, "free", None, None, "chat").limits.rpm == 1
