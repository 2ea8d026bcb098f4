"""Reading a configuration: the TOML file, or the zero-config default; errors that name the
key and the fix."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from faregate.config import SIM_PROVIDER, Config, ConfigError

SIM_IMAGE_PRICES = {
    "1024x1024/hd": 80_000,
    "1792x1024": 80_000,
    "1024x1792": 80_000,
    "1792x1024/hd": 120_000,
    "1024x1792/hd": 120_000,
}
"""The zero-config `dall-e-3` per image, by size and quality (any other: 40 000)."""


def default_config() -> Config:
    """The zero-config first run: SQLite and the built-in simulator, plus real vendors whose
    keys are in the environment."""
    providers: dict[str, Any] = {SIM_PROVIDER: {"base_url": "http://127.0.0.1:0/v1"}}
    models: dict[str, Any] = {}
    sim_models = {
        "gpt-4o-mini": (150_000, 600_000, 75_000, "openai"),
        "gpt-4o": (2_500_000, 10_000_000, 1_250_000, "openai"),
        "gemini-2.5-flash": (300_000, 2_500_000, 75_000, "google"),
        "deepseek-chat": (270_000, 1_100_000, 70_000, "deepseek"),
    }
    for name, (inp, out, cached, owner) in sim_models.items():
        models[name] = {
            "provider": SIM_PROVIDER,
            "price": {"input": inp, "output": out, "cached_input": cached},
            "owned_by": owner,
        }
    models["text-embedding-3-small"] = {
        "kind": "embedding",
        "provider": SIM_PROVIDER,
        "price": {"input": 20_000, "output": 0},
        "owned_by": "openai",
    }
    models["dall-e-3"] = {
        "kind": "images",
        "provider": SIM_PROVIDER,
        "price": {"image": 40_000, "images": SIM_IMAGE_PRICES},
        "owned_by": "openai",
    }
    models["sora-2"] = {  # video jobs on the simulator (OpenAI's default video model name)
        "kind": "video",
        "provider": SIM_PROVIDER,
        "price": {"video_second": 100_000},
        "owned_by": "openai",
    }
    if os.environ.get("OPENAI_API_KEY"):
        providers["openai"] = {"vendor": "openai"}
        for name in ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "dall-e-3"):
            models[name] = {**models[name], "provider": "openai"}
    if os.environ.get("DEEPSEEK_API_KEY"):
        providers["deepseek"] = {"vendor": "deepseek"}
        models["deepseek-chat"] = {**models["deepseek-chat"], "provider": "deepseek"}
    return Config.model_validate(
        {"simulator": {"enabled": True}, "providers": providers, "models": models}
    )


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        parent = err["loc"][:-1]
        node: Any = Config
        allowed = _allowed_keys(node, parent)
        hint = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        return f"{loc}: unknown key; remove it or fix its spelling{hint}"
    if err["type"] == "missing":
        return f"{loc}: required key is missing; add it"
    given = err.get("input")
    shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
    message = str(err["msg"]).removeprefix("Value error, ")
    if not loc:  # a check across keys: the message names the keys itself
        return message
    return f"{loc}: {message}{shown}"


def _allowed_keys(model: Any, path: tuple[Any, ...]) -> list[str]:
    current = model
    for part in path:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            # A dict of sub-models (providers.NAME, models.NAME): step into the value type.
            continue
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        current = args[-1] if args and str(ann).startswith("dict") else ann
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def parse_config(data: dict[str, Any], source: str) -> Config:
    """Validate a config mapping; raise ConfigError naming the source, the key and the fix."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(lines)) from None


def load_config(path: str | Path | None) -> Config:
    """Load the config file at `path`, or the zero-config default when there is none."""
    if path is None:
        return default_config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(data, str(p))
