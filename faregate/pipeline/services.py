"""Everything the pipeline needs, built once by the app factory and passed down."""

from __future__ import annotations

from dataclasses import dataclass

from faregate.auth.geo import CountryLookup
from faregate.auth.keys import KeyCache, KeyHasher
from faregate.billing.store import Store
from faregate.config import Config
from faregate.limits.base import Limiter
from faregate.media.service import Media
from faregate.metrics import Metrics
from faregate.pipeline.cache import ResponseCache
from faregate.routing.balancer import Balancer
from faregate.routing.catalog import Catalog
from faregate.upstream.base import UpstreamClient
from faregate.upstream.fetch import Fetcher
from faregate.usage.base import UsageSink


@dataclass(slots=True)
class Services:
    config: Config
    store: Store
    keys: KeyCache
    hasher: KeyHasher
    catalog: Catalog
    balancer: Balancer
    metrics: Metrics
    upstream: UpstreamClient
    fetcher: Fetcher
    cache: ResponseCache
    limiter: Limiter
    usage: UsageSink
    countries: CountryLookup | None = None
    media: Media | None = None
