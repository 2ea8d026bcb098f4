"""The `[limits]` and `[plans.NAME]` config sections, and the limits one request runs under."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from faregate.kinds import ROUTE_CLASSES

LIMIT_NAMES = ("rpm", "rpd", "tpm", "concurrency")
PLAN_SETTINGS = ("prompt_injection",)  # keys of a plan that are not route classes


class LimitsConfigError(ValueError):
    """Limits that cannot be enforced as configured; the message names the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_route_classes(data: Any, where: str) -> Any:
    if isinstance(data, dict):
        unknown = sorted(str(k) for k in data if k not in ROUTE_CLASSES)
        if unknown:
            raise ValueError(
                f"{where}unknown route class {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(ROUTE_CLASSES)}"
            )
    return data


class RouteLimits(_Strict):
    """The limits of one route class; a limit left out does not apply, 0 admits nothing."""

    rpm: int | None = Field(default=None, ge=0)  # requests in any 60 s
    rpd: int | None = Field(default=None, ge=0)  # requests per UTC day
    tpm: int | None = Field(default=None, ge=0)  # tokens in any 60 s
    concurrency: int | None = Field(default=None, ge=0)  # requests in flight

    @property
    def empty(self) -> bool:
        return all(getattr(self, name) is None for name in LIMIT_NAMES)


class Plan(_Strict):
    """A named set of limits, per route class (`[plans.NAME.chat]`, `[plans.NAME.images]`...)."""

    chat: RouteLimits = Field(default_factory=RouteLimits)
    embeddings: RouteLimits = Field(default_factory=RouteLimits)
    images: RouteLimits = Field(default_factory=RouteLimits)
    audio: RouteLimits = Field(default_factory=RouteLimits)
    video: RouteLimits = Field(default_factory=RouteLimits)
    prompt_injection: bool = False  # screen this plan's requests with the injection guard

    @model_validator(mode="before")
    @classmethod
    def _route_classes(cls, data: Any) -> Any:
        if isinstance(data, dict):
            limits = {k: v for k, v in data.items() if k not in PLAN_SETTINGS}
            _known_route_classes(limits, "")
        return data

    def route(self, route: str) -> RouteLimits:
        limits = getattr(self, route, None)
        return limits if isinstance(limits, RouteLimits) else RouteLimits()

    @property
    def empty(self) -> bool:
        return all(self.route(r).empty for r in ROUTE_CLASSES)


class Limits(_Strict):
    """`[limits]`: which plan applies by default, and where the counters live."""

    default_plan: str | None = None  # the plan of accounts without one; none: unlimited
    redis_url: str | None = None  # shared counters across replicas; in process without it
    key_prefix: str = Field(default="faregate", min_length=1)
    replicas: int = Field(default=1, ge=1)  # more than one needs redis_url
    redis_timeout_seconds: float = Field(default=0.2, gt=0)
    redis_retry_seconds: float = Field(default=2.0, gt=0)  # back-off after a Redis failure
    redis_max_connections: int = Field(default=64, ge=1)  # per replica
    concurrency_ttl_seconds: float = Field(default=60.0, ge=1)  # a crashed replica's slots


def check_plans(limits: Limits, plans: dict[str, Plan]) -> None:
    """The checks across both sections; raises ValueError naming the key and the fix."""
    if limits.default_plan is not None and limits.default_plan not in plans:
        known = ", ".join(sorted(plans)) or "none declared"
        raise ValueError(
            f"limits.default_plan: {limits.default_plan!r} is not a declared plan (declared: "
            f"{known}); add [plans.{limits.default_plan}] or fix the name"
        )


def check_overrides(data: Any) -> dict[str, dict[str, int | None]]:
    """Validate an account's or key's limit overrides (`{"chat": {"rpm": 100}}`, null lifts
    that limit); returns them normalized, or raises LimitsConfigError saying what is wrong."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LimitsConfigError('limits: expected an object like {"chat": {"rpm": 100}}')
    try:
        _known_route_classes(data, "limits: ")
        out: dict[str, dict[str, int | None]] = {}
        for route, values in data.items():
            if not isinstance(values, dict):
                raise ValueError(f"limits.{route}: expected an object like {{'rpm': 100}}")
            RouteLimits.model_validate(values)
            out[route] = dict(values)
        return out
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise LimitsConfigError(f"limits.{route}.{loc}: {first['msg']}") from None
    except ValueError as exc:
        raise LimitsConfigError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Effective:
    """The limits one request runs under, and where they come from (for messages)."""

    route: str
    limits: RouteLimits
    plan: str | None
    source: str  # "plan", "account" or "key": who set the values last

    def where(self) -> str:
        """`for chat on plan free`, or the override that set the values last."""
        if self.source == "key" or (self.source == "account" and self.plan is None):
            return f"for {self.route} on this {self.source}"
        if self.source == "account":
            return f"for {self.route} on this account (plan {self.plan})"
        return f"for {self.route} on plan {self.plan}"


def _apply(base: RouteLimits, overrides: Any, route: str) -> tuple[RouteLimits, bool]:
    if not isinstance(overrides, dict):
        return base, False
    values = overrides.get(route)
    if not isinstance(values, dict):
        return base, False
    known = {k: v for k, v in values.items() if k in LIMIT_NAMES}
    if not known:
        return base, False
    merged = {**base.model_dump(), **known}
    try:
        return RouteLimits.model_validate(merged), True
    except ValidationError:  # a stored override the API should have refused: ignore it
        return base, False


def effective(
    limits: Limits,
    plans: dict[str, Plan],
    plan: str | None,
    account_limits: Any,
    key_limits: Any,
    route: str,
) -> Effective:
    """The plan (the account's, else the default; an unknown name counts as the default)
    overridden for `route` by the account's limits, then the key's: per limit, a value
    replaces the plan's and null lifts it; a limit left out keeps the value below it."""
    name = plan if plan in plans else limits.default_plan
    base = plans[name].route(route) if name is not None else RouteLimits()
    source = "plan"
    base, changed = _apply(base, account_limits, route)
    if changed:
        source = "account"
    base, changed = _apply(base, key_limits, route)
    if changed:
        source = "key"
    return Effective(route, base, name, source)


def any_limits(limits: Limits, plans: dict[str, Plan]) -> bool:
    """Whether anything can limit a request: a default plan, or a plan that sets a limit
    (overrides apply only on top of a plan or a default plan)."""
    return limits.default_plan is not None or any(not p.empty for p in plans.values())
