"""The `[guards.prompt_injection]` config section: rules, thresholds and the classifier."""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from faregate.billing.types import Price
from faregate.guards.rules import DEFAULT_RULES, Rule, rule

FailPolicy = Literal["open", "closed"]
GUARDS = ("prompt_injection",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatternConfig(_Strict):
    """An operator's own rule: a regular expression matched case-insensitively against the
    normalised text, with its weight towards the threshold."""

    name: str = Field(min_length=1, max_length=64)
    pattern: str
    weight: float = Field(default=1.0, gt=0)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return pattern


class ClassifierConfig(_Strict):
    """A chat model asked, with a fixed prompt, whether the text is an injection."""

    provider: str
    model: str
    timeout_seconds: float = Field(default=3.0, gt=0)
    max_chars: int = Field(default=8000, ge=100)
    billing: Literal["operator", "caller"] = "operator"
    price: Price = Field(default_factory=lambda: Price(input=0, output=0))


class PromptInjection(_Strict):
    rules: bool = True
    disabled_rules: list[str] = Field(default_factory=list)
    patterns: list[PatternConfig] = Field(default_factory=list)
    threshold: float = Field(default=1.0, gt=0)
    classifier: ClassifierConfig | None = None
    fail: FailPolicy = "open"  # when the classifier fails or times out, unless a key says

    @field_validator("disabled_rules")
    @classmethod
    def _known_rules(cls, names: list[str]) -> list[str]:
        known = {r.name for r in DEFAULT_RULES}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; built-in rules: {sorted(known)}")
        return names

    @cached_property
    def compiled(self) -> tuple[Rule, ...]:
        """The rules in force: the built-in set (less the disabled ones) and the operator's."""
        builtin = [r for r in DEFAULT_RULES if self.rules and r.name not in self.disabled_rules]
        return (*builtin, *(rule(p.name, p.pattern, p.weight) for p in self.patterns))


class Guards(_Strict):
    prompt_injection: PromptInjection = Field(default_factory=PromptInjection)


def check_key_guards(doc: Any) -> dict[str, Any] | None:
    """A key's guard settings, e.g. `{"prompt_injection": {"enabled": true, "fail": "closed"}}`
    (`enabled` null inherits the plan's and the model's setting); ValueError when malformed."""
    if doc is None:
        return None
    if not isinstance(doc, dict) or set(doc) - set(GUARDS):
        raise ValueError(f"guards: an object with the keys {', '.join(GUARDS)}")
    for name, settings in doc.items():
        if not isinstance(settings, dict) or set(settings) - {"enabled", "fail"}:
            raise ValueError(f"guards.{name}: an object with 'enabled' and/or 'fail'")
        if settings.get("enabled") not in (None, True, False):
            raise ValueError(f"guards.{name}.enabled: true, false or null")
        if settings.get("fail") not in (None, "open", "closed"):
            raise ValueError(f'guards.{name}.fail: "open" or "closed"')
    return doc or None
