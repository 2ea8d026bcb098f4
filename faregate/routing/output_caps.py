"""The vendors' published output caps of well-known upstream models, the default of a model's
`max_output_tokens` when its config does not set one."""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_CAP = 4096
"""The cap of a model none of whose upstreams is known here."""

# Upstream model name prefixes (without any vendor path such as `anthropic/`) -> output cap.
# The longest matching prefix wins; a dated snapshot matches its family.
KNOWN_CAPS: dict[str, int] = {
    "claude-3-": 4096,
    "claude-3-5-sonnet": 8192,
    "claude-3-5-haiku": 8192,
    "claude-3-7-sonnet": 64000,
    "claude-sonnet-4": 64000,
    "claude-sonnet-4-6": 128000,
    "claude-haiku-4": 64000,
    "claude-opus-4": 32000,
    "claude-opus-4-5": 64000,
    "claude-opus-4-6": 128000,
    "claude-opus-4-7": 128000,
    "claude-opus-4-8": 128000,
    "claude-opus-5": 128000,
    "gpt-4o": 16384,
    "gpt-4.1": 32768,
    "gpt-5": 128000,
    "o1": 100000,
    "o1-mini": 65536,
    "o3": 100000,
    "o4-mini": 100000,
    "gemini-1.5": 8192,
    "gemini-2.0-flash": 8192,
    "gemini-2.5": 65536,
    "gemini-3": 65536,
    "deepseek-chat": 8192,
    "deepseek-reasoner": 65536,
}


def known_cap(upstream: str) -> int | None:
    """The published cap of an upstream model name, or None when it is not known here."""
    name = upstream.rsplit("/", 1)[-1].lower()
    best = ""
    for prefix in KNOWN_CAPS:
        if name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return KNOWN_CAPS[best] if best else None


def default_cap(upstreams: Iterable[str]) -> int:
    """The cap every one of a model's upstreams honours: the smallest of their published caps
    when each is known, else `DEFAULT_CAP`."""
    caps = [known_cap(name) for name in upstreams]
    if not caps or any(cap is None for cap in caps):
        return DEFAULT_CAP
    return min(cap for cap in caps if cap is not None)
