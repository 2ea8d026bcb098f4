"""The routing catalog: public model names, their prices and the deployments that serve them."""

from __future__ import annotations

from dataclasses import dataclass

from faregate.config import SIM_PROVIDER, Config, Price, Timeouts
from faregate.errors import BadRequest, NotFound
from faregate.providers.base import ChatProtocol, Credentials, EmbeddingsProtocol
from faregate.providers.registry import chat_protocol, embeddings_protocol


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: str
    protocol: ChatProtocol
    embeddings: EmbeddingsProtocol | None
    creds: Credentials
    upstream_model: str
    timeouts: Timeouts


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    kind: str  # chat | embedding
    price: Price
    max_output_tokens: int
    owned_by: str
    created: int
    deployments: tuple[Deployment, ...]


class Catalog:
    def __init__(self, models: dict[str, ModelEntry]) -> None:
        self.models = models

    def get(self, name: str, kind: str = "chat") -> ModelEntry:
        """The model `name`, which must be of `kind` (chat or embedding)."""
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


def build_catalog(config: Config, sim_url: str | None = None) -> Catalog:
    """The catalog for `config`; the simulator provider points at `sim_url` when given."""
    models: dict[str, ModelEntry] = {}
    for name, model in config.models.items():
        provider = config.providers[model.provider]
        base = sim_url if (model.provider == SIM_PROVIDER and sim_url) else provider.url
        key = provider.resolve_key()
        if model.provider == SIM_PROVIDER and not key:
            key = "sk-simulator"
        deployment = Deployment(
            provider=model.provider,
            protocol=chat_protocol(provider.wire),
            embeddings=embeddings_protocol(provider.wire) if model.kind == "embedding" else None,
            creds=Credentials(base.rstrip("/"), key, dict(provider.headers)),
            upstream_model=model.upstream or name,
            timeouts=provider.timeouts,
        )
        models[name] = ModelEntry(
            name=name,
            kind=model.kind,
            price=model.price,
            max_output_tokens=model.max_output_tokens,
            owned_by=model.owned_by or model.provider,
            created=model.created,
            deployments=(deployment,),
        )
    return Catalog(models)
