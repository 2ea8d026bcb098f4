"""The money types every layer shares: a key as the request path sees it, prices, usage and
what a settlement records. A leaf: it imports only the range of amounts (`bounds`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from faregate.billing.bounds import MicroCredits

__all__ = ["KeyRecord", "MicroCredits", "Price", "Settlement", "Usage"]


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


TOKEN_PRICES = ("input", "output", "cached_input", "reasoning")
"""The price fields counted per million tokens."""

UNIT_PRICES = ("image", "images", "audio_second", "characters", "video_second", "video_seconds")
"""The price fields of the other meters."""

Variants = dict[Annotated[str, Field(min_length=1, max_length=64)], MicroCredits]


class Price(BaseModel):
    """What each meter costs, in micro-credits: tokens and characters per million, images per
    image, audio and video per second. A variant table (`images` by size and/or quality,
    `video_seconds` by resolution) takes precedence over the flat price of its meter.

    A price that sets no token field (an image, audio or video model) bills tokens at zero.
    Every amount lies in 0 to `bounds.MAX_AMOUNT`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: MicroCredits
    output: MicroCredits
    cached_input: MicroCredits | None = None
    reasoning: MicroCredits | None = None  # None: reasoning tokens at the output price
    image: MicroCredits | None = None
    images: Variants | None = None  # "1024x1024", "hd" or "1024x1024/hd" -> per image
    audio_second: MicroCredits | None = None  # per second of input audio
    characters: MicroCredits | None = None  # per million characters of speech input
    video_second: MicroCredits | None = None
    video_seconds: Variants | None = None  # resolution ("1280x720") -> per second

    @model_validator(mode="before")
    @classmethod
    def _tokens_default_to_free(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and not any(k in data for k in TOKEN_PRICES)
            and any(k in data for k in UNIT_PRICES)
        ):
            return {"input": 0, "output": 0, **data}
        return data

    def __hash__(self) -> int:
        return hash(_price_key(self))

    def units(self) -> dict[str, Any]:
        """The fields of the other meters that are set (what the token columns do not hold)."""
        return {k: v for k in UNIT_PRICES if (v := getattr(self, k)) is not None}


def _price_key(price: Price) -> tuple[Any, ...]:
    """A hashable form of a price (its variant tables are dicts)."""
    return tuple(
        tuple(sorted(v.items())) if isinstance(v, dict) else v
        for v in (getattr(price, k) for k in ("input", *TOKEN_PRICES[1:], *UNIT_PRICES))
    )


Units = tuple[tuple[str, int], ...]
"""Counted units beyond tokens, as (meter, count) pairs: a meter is `images`, `audio_ms`,
`characters` or `video_ms`, optionally with a variant after a colon (`images:1024x1024/hd`,
`video_ms:1280x720`). Durations are counted in milliseconds so that counts stay integers."""

METERS = ("images", "audio_ms", "characters", "video_ms")


def units_of(pairs: Any) -> Units:
    """Units from pairs or a mapping (as JSON gives them back), summed per meter, sorted."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    total: dict[str, int] = {}
    for name, count in items or ():
        total[str(name)] = total.get(str(name), 0) + int(count)
    return tuple(sorted(total.items()))


@dataclass(frozen=True, slots=True)
class Usage:
    """What a call consumed. `completion_tokens` includes `reasoning_tokens` (as providers
    report them); `units` counts everything that is not a token."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    units: Units = ()

    def __post_init__(self) -> None:
        units: Any = self.units
        if units and not isinstance(units, tuple):  # e.g. lists back from JSON
            object.__setattr__(self, "units", units_of(units))


@dataclass(frozen=True, slots=True)
class Settlement:
    cost: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    note: str | None = None
    units: Units = ()  # the units billed beyond tokens

    @classmethod
    def of(cls, cost: int, usage: Usage, note: str | None = None) -> Settlement:
        """The settlement of `usage` at `cost`: every counted token and unit recorded."""
        return cls(
            cost=cost,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            estimated=usage.estimated,
            note=note,
            units=usage.units,
        )
