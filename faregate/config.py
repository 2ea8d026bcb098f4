"""The operator's config file: providers, models and prices, validated strictly at load."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from faregate.billing.types import Price
from faregate.console.config import ConsoleConfig
from faregate.guards.config import Guards
from faregate.jobs.config import VideoJobs
from faregate.kinds import Kind, parse_kind
from faregate.limits.config import Limits, Plan, check_plans
from faregate.media.config import MediaConfig
from faregate.observe.config import Telemetry
from faregate.providers.registry import kinds_of
from faregate.upstream.config import check_ca_bundle, check_proxy_url
from faregate.usage.config import UsageConfig

PositiveFloat = Annotated[float, Field(gt=0)]
# A kind by its name or an alias ("embedding"), stored as the Kind.
KindName = Annotated[Kind, BeforeValidator(lambda v: parse_kind(v) if isinstance(v, str) else v)]


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    connect: PositiveFloat = 5.0
    first_byte: PositiveFloat = 120.0
    idle: PositiveFloat = 60.0
    total: PositiveFloat = 1800.0


Protocol = Literal["openai", "anthropic", "gemini", "openai-responses", "ark"]


@dataclass(frozen=True)
class Vendor:
    base_url: str
    key_env: str
    protocol: Protocol = "openai"


# Vendors are configuration, not code: a base URL, the usual key variable, a protocol.
VENDORS: dict[str, Vendor] = {
    "openai": Vendor("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "anthropic": Vendor("https://api.anthropic.com", "ANTHROPIC_API_KEY", "anthropic"),
    "gemini": Vendor("https://generativelanguage.googleapis.com", "GEMINI_API_KEY", "gemini"),
    "deepseek": Vendor("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "groq": Vendor("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": Vendor("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "together": Vendor("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "openrouter": Vendor("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "fireworks": Vendor("https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    "vllm": Vendor("http://127.0.0.1:8000/v1", "VLLM_API_KEY"),
    "ollama": Vendor("http://127.0.0.1:11434/v1", "OLLAMA_API_KEY"),
    "ark": Vendor("https://ark.cn-beijing.volces.com/api/v3", "ARK_API_KEY", "ark"),
}


class Provider(_Strict):
    protocol: Protocol | None = None
    vendor: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    api_keys: list[str] = Field(default_factory=list, repr=False)
    api_keys_env: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] | None = None
    kinds: list[KindName] | None = None  # what this provider serves; None: all its protocol does
    ca_bundle: str | None = None  # PEM file of the CAs trusted for this provider's TLS
    proxy: str | None = Field(default=None, repr=False)  # http:// CONNECT proxy; "": none
    completions: bool = False  # serves the legacy `/completions` itself (vLLM, for example)

    @field_validator("ca_bundle")
    @classmethod
    def _readable_bundle(cls, path: str | None) -> str | None:
        if path is not None:
            check_ca_bundle(path)
        return path

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, url: str | None) -> str | None:
        if url:
            check_proxy_url(url)
        return url

    @model_validator(mode="after")
    def _vendor_defaults(self) -> Provider:
        if self.vendor is not None and self.vendor not in VENDORS:
            raise ValueError(
                f"unknown vendor {self.vendor!r}; known vendors: {', '.join(sorted(VENDORS))}, "
                "or leave vendor out and set base_url"
            )
        if self.base_url is None and self.vendor is None:
            raise ValueError("set base_url (or a known vendor) for this provider")
        return self

    @property
    def url(self) -> str:
        url = self.base_url or VENDORS[self.vendor or ""].base_url
        return url.rstrip("/")

    @property
    def output_cap_param(self) -> str:
        """The parameter that caps output: as declared, else OpenAI's own API takes only
        `max_completion_tokens` on its newer models, and other servers take `max_tokens`."""
        if self.max_tokens_param is not None:
            return self.max_tokens_param
        return "max_completion_tokens" if self.vendor == "openai" else "max_tokens"

    @property
    def wire(self) -> Protocol:
        """The wire protocol: as declared, else the vendor's, else OpenAI's."""
        if self.protocol is not None:
            return self.protocol
        return VENDORS[self.vendor].protocol if self.vendor else "openai"

    def serves(self) -> tuple[Kind, ...]:
        """The kinds this provider serves: what its protocol has adapters for, narrowed to
        `kinds` when declared."""
        served = kinds_of(self.wire)
        return served if self.kinds is None else tuple(k for k in served if k in self.kinds)

    def resolve_key(self) -> str | None:
        """The upstream key: inline, else from the named (or the vendor's) environment variable."""
        if self.api_key:
            return self.api_key
        env = self.api_key_env or (VENDORS[self.vendor].key_env if self.vendor else None)
        return os.environ.get(env) if env else None

    def resolve_keys(self) -> list[str]:
        """Every upstream key of this provider, rotated by the balancer; may be empty (a
        keyless local server)."""
        keys = [*self.api_keys, *(os.environ.get(e, "") for e in self.api_keys_env)]
        single = self.resolve_key()
        return [k for k in dict.fromkeys([*([single] if single else []), *keys]) if k]


class DeploymentConfig(_Strict):
    """One upstream that can serve a public model."""

    provider: str
    upstream: str | None = None
    name: str | None = None
    weight: float = Field(default=1.0, gt=0)
    priority: int = Field(default=0, ge=0)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    timeouts: Timeouts | None = None
    cost: Price | None = None  # what this upstream costs the operator (for strategy "cost")


class CacheConfig(_Strict):
    enabled: bool = True
    ttl_seconds: int = Field(default=300, ge=1)
    price: Price = Field(default_factory=lambda: Price(input=0, output=0))


Strategy = Literal["weighted", "least_inflight", "latency", "cost"]


class Model(_Strict):
    kind: KindName = Kind.CHAT
    provider: str | None = None
    upstream: str | None = None
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    strategy: Strategy = "weighted"
    fallbacks: list[str] = Field(default_factory=list)
    cache: CacheConfig | None = None
    price: Price
    max_output_tokens: int | None = Field(default=None, ge=1)  # None: routing.output_caps
    owned_by: str | None = None
    created: int = 1_700_000_000
    prompt_injection: bool = False  # screen this model's requests with the injection guard

    @model_validator(mode="after")
    def _one_way_to_deploy(self) -> Model:
        if self.provider is None and not self.deployments:
            raise ValueError("set provider (one deployment) or a [[...deployments]] list")
        if self.provider is not None and self.deployments:
            raise ValueError("set either provider or deployments, not both")
        return self

    def deployment_configs(self) -> list[DeploymentConfig]:
        if self.deployments:
            return list(self.deployments)
        assert self.provider is not None
        return [DeploymentConfig(provider=self.provider, upstream=self.upstream)]


class Server(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_part_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)  # one file of a form
    max_parts: int = Field(default=64, ge=1, le=10_000)  # parts of a multipart/form-data body
    trusted_proxies: list[str] = Field(default_factory=list)  # CIDRs whose X-Forwarded-For counts
    cors: bool = True  # answer browser preflights; keys can still be limited to origins

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, ranges: list[str]) -> list[str]:
        for value in ranges:
            ipaddress.ip_network(value, strict=False)
        return ranges


class Database(_Strict):
    url: str = "sqlite:///.faregate/faregate.db"
    pool_size: int = Field(default=8, ge=1, le=1000)  # PostgreSQL readers per process

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("use sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
        return url


class Billing(_Strict):
    hold_ttl_seconds: int = Field(default=3600, ge=10)
    reaper_interval_seconds: float = Field(default=10.0, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    micro_credits_per_usd: int = Field(default=1_000_000, ge=1)


class Auth(_Strict):
    key_cache_seconds: float = Field(default=5.0, ge=0)


class Compat(_Strict):
    """Defaults of the compatibility routes (`POST /api/v1/chat`)."""

    chat_default_model: str = "gemini-2.5-flash"
    chat_default_max_tokens: int = Field(default=4096, ge=1)
    chat_default_temperature: float = Field(default=1.0, ge=0, le=2)


class Routing(_Strict):
    """Retries, circuit breakers and cooldowns of the balancer."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_budget_seconds: PositiveFloat = 30.0
    wait_for_recovery_seconds: float = Field(default=2.0, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_window_seconds: PositiveFloat = 30.0
    breaker_cooldown_seconds: PositiveFloat = 10.0
    rate_limit_cooldown_seconds: PositiveFloat = 5.0
    max_cooldown_seconds: PositiveFloat = 120.0
    credential_disable_seconds: PositiveFloat = 600.0
    credential_confirmations: int = Field(default=3, ge=1)
    credential_window_seconds: PositiveFloat = 300.0
    quota_disable_seconds: PositiveFloat = 3600.0
    latency_ewma_alpha: float = Field(default=0.2, gt=0, le=1)


class Cache(_Strict):
    """Where cached responses live: in process by default, Redis when a URL is set."""

    redis_url: str | None = None
    max_entries: int = Field(default=10_000, ge=1)


class Idempotency(_Strict):
    ttl_seconds: int = Field(default=86_400, ge=60)


class Images(_Strict):
    """Remote image URLs in requests, fetched by the gateway for upstreams that need inline data."""

    fetch_timeout_seconds: PositiveFloat = 10.0
    max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    allow_private_addresses: bool = False  # only for tests on loopback; never in production


class Audio(_Strict):
    """Caps of the audio routes: uploaded audio (speech to text) and speech input."""

    max_file_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)  # one uploaded audio file
    max_duration_seconds: float = Field(default=1500.0, gt=0)  # of one uploaded audio file
    max_input_characters: int = Field(default=4096, ge=1)  # of one text-to-speech input


class Log(_Strict):
    """What the gateway writes to stdout."""

    access: bool = True  # one JSON line per request


class Runtime(_Strict):
    """The interpreter under the event loop."""

    gc_freeze: bool = True  # after startup, keep startup's objects out of every collection
    gc_threshold: int = Field(default=10_000, ge=0)  # young-generation threshold; 0: Python's


class Geo(_Strict):
    """Where the caller's country comes from, for keys and accounts limited to countries."""

    database: str | None = None  # a MaxMind DB country file (GeoLite2-Country, DB-IP lite)
    country_header: str | None = None  # e.g. "cf-ipcountry", believed from trusted proxies only

    @field_validator("database")
    @classmethod
    def _readable(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"no country database file at {path!r}")
        return path


class ResponsesStore(_Strict):
    """Stored Responses API responses (`store`, default true): how long they are kept."""

    retention_days: int = Field(default=30, ge=1, le=3650)


class Simulator(_Strict):
    """The built-in provider simulator, started in process by `faregate serve`."""

    enabled: bool = False
    port: int = Field(default=0, ge=0, le=65535)


class Config(_Strict):
    server: Server = Field(default_factory=Server)
    database: Database = Field(default_factory=Database)
    billing: Billing = Field(default_factory=Billing)
    auth: Auth = Field(default_factory=Auth)
    compat: Compat = Field(default_factory=Compat)
    images: Images = Field(default_factory=Images)
    media: MediaConfig = Field(default_factory=MediaConfig)
    audio: Audio = Field(default_factory=Audio)
    geo: Geo = Field(default_factory=Geo)
    responses: ResponsesStore = Field(default_factory=ResponsesStore)
    guards: Guards = Field(default_factory=Guards)
    routing: Routing = Field(default_factory=Routing)
    cache: Cache = Field(default_factory=Cache)
    idempotency: Idempotency = Field(default_factory=Idempotency)
    simulator: Simulator = Field(default_factory=Simulator)
    log: Log = Field(default_factory=Log)
    runtime: Runtime = Field(default_factory=Runtime)
    telemetry: Telemetry = Field(default_factory=Telemetry)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    limits: Limits = Field(default_factory=Limits)
    plans: dict[str, Plan] = Field(default_factory=dict)
    usage: UsageConfig = Field(default_factory=UsageConfig)
    video: VideoJobs = Field(default_factory=VideoJobs)
    providers: dict[str, Provider] = Field(default_factory=dict)
    models: dict[str, Model] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _models_name_providers(self) -> Config:
        timeouts = [p.timeouts for p in self.providers.values()] + [
            d.timeouts for m in self.models.values() for d in m.deployments if d.timeouts
        ]
        longest = max((t.first_byte + t.total for t in timeouts), default=0.0)
        if self.billing.hold_ttl_seconds <= longest:
            raise ValueError(
                f"billing.hold_ttl_seconds: {self.billing.hold_ttl_seconds} s does not outlast the"
                f" longest request a provider allows ({longest:.0f} s = first_byte + total);"
                " raise it, or lower the providers' timeouts"
            )
        known = ", ".join(sorted(self.providers)) or "none declared"
        for name, model in self.models.items():
            for i, dep in enumerate(model.deployment_configs()):
                if dep.provider not in self.providers:
                    where = f"models.{name}." + (f"deployments.{i}." if model.deployments else "")
                    raise ValueError(
                        f"{where}provider: unknown provider {dep.provider!r} "
                        f"(declared providers: {known}); add [providers.{dep.provider}] "
                        "or fix the name"
                    )
                index = i if model.deployments else None
                _check_serves(name, model, index, dep.provider, self.providers[dep.provider])
            for fallback in model.fallbacks:
                target = self.models.get(fallback)
                if target is None or fallback == name:
                    raise ValueError(
                        f"models.{name}.fallbacks: {fallback!r} is not another declared model"
                    )
                if target.kind != model.kind:
                    raise ValueError(
                        f"models.{name}.fallbacks: {fallback!r} serves {target.kind} requests,"
                        f" {name!r} serves {model.kind} requests"
                    )
        classifier = self.guards.prompt_injection.classifier
        if classifier is not None and classifier.provider not in self.providers:
            raise ValueError(
                f"guards.prompt_injection.classifier.provider: unknown provider"
                f" {classifier.provider!r} (declared providers: {known})"
            )
        check_plans(self.limits, self.plans)
        _check_video(self)
        return self


def _check_video(config: Config) -> None:
    """`[video]` names only models of kind video."""
    named = [(f"video.models.{m}", m) for m in config.video.models]
    named += [(f"video.aliases.{a}", m) for a, m in config.video.aliases.items()]
    for where, name in named:
        model = config.models.get(name)
        if model is None or model.kind is not Kind.VIDEO:
            raise ValueError(f"{where}: {name!r} is not a declared model of kind video")


def _check_serves(
    name: str, model: Model, index: int | None, provider_name: str, provider: Provider
) -> None:
    """Refuse a model on a provider that cannot serve its kind, naming what it serves."""
    if model.kind in provider.serves():
        return
    where = f"models.{name}." + (f"deployments.{index}." if index is not None else "")
    protocol = kinds_of(provider.wire)
    why = f"speaks the '{provider.wire}' protocol, which serves {', '.join(protocol)}"
    if model.kind in protocol and provider.kinds is not None:
        why = f"declares kinds = [{', '.join(provider.kinds)}]"
    raise ValueError(
        f"{where}provider: the model '{name}' is of kind '{model.kind}', but the provider"
        f" '{provider_name}' {why}; put the model on a provider that serves {model.kind}"
    )


SIM_PROVIDER = "simulator"
