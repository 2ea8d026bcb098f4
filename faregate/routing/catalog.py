"""The routing catalog: public models, their prices, deployments and fallbacks."""

from __future__ import annotations

from dataclasses import dataclass

from faregate.billing.types import Price
from faregate.config import SIM_PROVIDER, CacheConfig, Config, Strategy, Timeouts
from faregate.errors import BadRequest, NotFound
from faregate.kinds import Kind
from faregate.providers.base import Adapter, Credentials
from faregate.providers.registry import adapter
from faregate.routing.output_caps import default_cap


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream (a provider and its model name) behind a public model."""

    id: str  # unique across the catalog: "MODEL:NAME"
    name: str  # unique within its model: the configured name, else "PROVIDER/UPSTREAM"
    provider: str
    adapter: Adapter  # the provider's wire protocol serving the model's kind
    base_url: str
    headers: dict[str, str]
    keys: tuple[str, ...]
    upstream_model: str
    timeouts: Timeouts
    weight: float
    priority: int
    rpm: int | None
    tpm: int | None
    cost: Price
    max_tokens_param: str
    ca_bundle: str | None = None
    proxy: str | None = None

    def creds(self, key: str | None) -> Credentials:
        return Credentials(
            self.base_url, key, self.headers, self.max_tokens_param, self.ca_bundle, self.proxy
        )


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    kind: Kind
    price: Price
    max_output_tokens: int
    owned_by: str
    created: int
    deployments: tuple[Deployment, ...]
    strategy: Strategy
    fallbacks: tuple[str, ...]
    cache: CacheConfig | None


class Catalog:
    def __init__(self, models: dict[str, ModelEntry]) -> None:
        self.models = models

    def get(self, name: str, kind: Kind = Kind.CHAT) -> ModelEntry:
        """The model `name`, which must be of `kind`."""
        entry = self.models.get(name)
        if entry is None:
            raise NotFound(
                f"The model '{name}' does not exist or is not served here.",
                code="model_not_found",
                param="model",
            )
        if entry.kind != kind:
            raise BadRequest(
                f"The model '{name}' serves {entry.kind} requests, not this route.",
                code="wrong_model_kind",
                param="model",
            )
        return entry

    def chain(self, entry: ModelEntry) -> list[ModelEntry]:
        """The model and its fallbacks, depth first, each once."""
        out: list[ModelEntry] = []
        pending = [entry.name]
        while pending:
            name = pending.pop(0)
            model = self.models.get(name)
            if model is None or model in out:
                continue
            out.append(model)
            pending = list(model.fallbacks) + pending
        return out


def build_catalog(config: Config, sim_url: str | None = None) -> Catalog:
    """The catalog for `config`; the simulator provider points at `sim_url` when given."""
    models: dict[str, ModelEntry] = {}
    for name, model in config.models.items():
        deployments: list[Deployment] = []
        for i, dc in enumerate(model.deployment_configs()):
            provider = config.providers[dc.provider]
            simulated = dc.provider == SIM_PROVIDER and sim_url is not None
            keys = provider.resolve_keys() or (["sk-simulator"] if simulated else [])
            upstream = dc.upstream or model.upstream or name
            label = dc.name or f"{dc.provider}/{upstream}"
            if any(d.name == label for d in deployments):
                label = f"{label}#{i}"
            deployments.append(
                Deployment(
                    id=f"{name}:{label}",
                    name=label,
                    provider=dc.provider,
                    adapter=adapter(provider.wire, model.kind),
                    base_url=(sim_url if simulated and sim_url else provider.url).rstrip("/"),
                    headers=dict(provider.headers),
                    keys=tuple(keys),
                    upstream_model=upstream,
                    timeouts=dc.timeouts or provider.timeouts,
                    weight=dc.weight,
                    priority=dc.priority,
                    rpm=dc.rpm,
                    tpm=dc.tpm,
                    cost=dc.cost or model.price,
                    max_tokens_param=provider.output_cap_param,
                    ca_bundle=provider.ca_bundle,
                    proxy="" if simulated else provider.proxy,
                )
            )
        models[name] = ModelEntry(
            name=name,
            kind=model.kind,
            price=model.price,
            max_output_tokens=model.max_output_tokens
            or default_cap(d.upstream_model for d in deployments),
            owned_by=model.owned_by or deployments[0].provider,
            created=model.created,
            deployments=tuple(deployments),
            strategy=model.strategy,
            fallbacks=tuple(model.fallbacks),
            cache=model.cache,
        )
    return Catalog(models)
