"""The money types every layer shares: a key as the request path sees it, prices, usage and
what a settlement records. A leaf: it imports nothing of Faregate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

MicroCredits = Annotated[int, Field(ge=0, strict=True)]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as the request path sees it, with its account's governance settings."""

    id: str
    account_id: str
    allowed_models: frozenset[str] | None
    expires_at: int | None
    revoked: bool
    plan: str | None = None  # the account's plan
    account_limits: dict[str, Any] | None = None  # overrides of the plan, per route class
    key_limits: dict[str, Any] | None = None  # overrides of the plan and the account's
    restrictions: dict[str, Any] | None = None  # ips, origins, time windows, countries
    key_spend: tuple[int, str] | None = None  # (limit, period)
    account_spend: tuple[int, str] | None = None
    account_restrictions: dict[str, Any] | None = None  # the same document, for every key
    guards: dict[str, Any] | None = None  # per-guard settings, e.g. {"prompt_injection": {...}}


class Price(BaseModel):
    """Micro-credits per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: MicroCredits
    output: MicroCredits
    cached_input: MicroCredits | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Settlement:
    cost: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    note: str | None = None
