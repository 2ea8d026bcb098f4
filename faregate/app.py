"""The app factory: builds every component once, wires the routes, runs the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, text

from faregate.admin import catalog_ops, ops
from faregate.api import routes
from faregate.api.envelopes import render_error
from faregate.api.front import FrontDoor
from faregate.auth.geo import CountryLookup
from faregate.auth.keys import KeyCache, KeyHasher, load_secret
from faregate.billing.reaper import Reaper
from faregate.billing.sqlite import SqliteStore
from faregate.billing.store import Store
from faregate.config import Config, ConfigError, Database
from faregate.config_load import load_config
from faregate.db import migrate
from faregate.db.engine import AdminDB
from faregate.db.urls import asyncpg_dsn, is_sqlite, sqlite_path
from faregate.errors import (
    ServiceUnavailable,
)
from faregate.http.request import Message, Scope
from faregate.http.responses import Send
from faregate.http.router import Router
from faregate.jobs.poller import Poller
from faregate.limits.base import Limiter
from faregate.limits.config import LimitsConfigError
from faregate.limits.factory import make_limiter
from faregate.media.factory import make_media
from faregate.media.service import Media
from faregate.metrics import Metrics
from faregate.observe import heap, tracing
from faregate.pipeline.cache import make_cache
from faregate.pipeline.services import Services
from faregate.routing.balancer import Balancer
from faregate.routing.catalog import build_catalog
from faregate.upstream.client import Upstream
from faregate.upstream.fetch import Fetcher
from faregate.usage.rollup import rollup_loop
from faregate.usage.writer import UsageWriter

log = logging.getLogger("faregate")

DEMO_CREDITS = 10_000_000  # ten US dollars at the default rate
FIRST_RUN_LOCK = 0x6661726568


@dataclass(frozen=True, slots=True)
class Environment:
    """What the process environment may set; read once, here."""

    database_url: str | None
    home: Path
    secret_key: str | None
    admin_key: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Environment:
        return cls(
            database_url=env.get("FAREGATE_DATABASE_URL") or None,
            home=Path(env.get("FAREGATE_HOME") or ".faregate"),
            secret_key=env.get("FAREGATE_SECRET_KEY") or None,
            admin_key=env.get("FAREGATE_ADMIN_KEY") or None,
        )


MIN_ADMIN_KEY_LENGTH = 32


def check_admin_key(env: Environment) -> None:
    """Refuse to serve with a FAREGATE_ADMIN_KEY short enough to guess."""
    if env.admin_key is not None and len(env.admin_key) < MIN_ADMIN_KEY_LENGTH:
        raise ConfigError(
            f"FAREGATE_ADMIN_KEY is {len(env.admin_key)} characters long; it must be at least"
            f" {MIN_ADMIN_KEY_LENGTH} (for example the output of `openssl rand -hex 32`)"
        )


def database_url(config: Config, env: Environment) -> str:
    """FAREGATE_DATABASE_URL, else the config file's `database.url`, else SQLite in the home
    folder (FAREGATE_HOME, `.faregate` by default)."""
    if env.database_url:
        url = env.database_url
    elif "url" in config.database.model_fields_set:
        url = config.database.url
    else:
        url = f"sqlite:///{env.home / 'faregate.db'}"
    try:
        return Database(url=url).url
    except ValidationError:
        raise ConfigError(
            f"FAREGATE_DATABASE_URL: {url!r} is not a database URL; use sqlite:///PATH or"
            " postgresql://USER@HOST:PORT/DB"
        ) from None


def make_store(url: str, pool_size: int = 8) -> Store:
    """The ledger for `url`; `pool_size`: PostgreSQL connections besides the writer."""
    if is_sqlite(url):
        return SqliteStore(sqlite_path(url))
    from faregate.billing.postgres import PostgresStore  # asyncpg only with PostgreSQL

    return PostgresStore(asyncpg_dsn(url), pool_size=pool_size)


class App:
    """The ASGI application. Nothing connects until the lifespan starts it."""

    def __init__(
        self,
        config: Config,
        environment: Environment | None = None,
        *,
        announce: Callable[[App], None] | None = None,
        config_path: str | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.announce = announce
        self.first_run_key: str | None = None
        self.env = environment or Environment.from_env()
        check_admin_key(self.env)
        self.database_url = database_url(config, self.env)
        self.router = Router()
        self.services: Services | None = None
        self.metrics = Metrics()
        self.bootstrap_admin_key: str | None = None
        self.sim_url: str | None = None
        self._db: AdminDB | None = None
        self._reaper: Reaper | None = None
        self._sim_runner: Any = None
        self._front: FrontDoor | None = None
        self._rollup: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._poller: Poller | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.file_config = config  # as the config file says; `config` adds stored overrides
        self.overrides = catalog_ops.Overrides()

    # -- lifespan ----------------------------------------------------------------

    async def start(self) -> None:
        await migrate.upgrade(self.database_url)
        hasher = KeyHasher(load_secret(self.env.secret_key, self.env.home))
        media = self._media()
        store = make_store(self.database_url, self.config.database.pool_size)
        await store.start()
        self._db = AdminDB(
            self.database_url,
            before=store.finish_open if isinstance(store, SqliteStore) else None,
        )
        self.overrides = await self._db.run(catalog_ops.load)
        self.config = catalog_ops.apply(self.file_config, self.overrides)
        if self.config.simulator.enabled:
            from faregate.sim.server import start as start_sim

            self._sim_runner, port = await start_sim("127.0.0.1", self.config.simulator.port)
            self.sim_url = f"http://127.0.0.1:{port}/v1"
        tracing.configure(self.config.telemetry, os.environ)
        upstream = Upstream()
        await upstream.start()
        fetcher = Fetcher(self.config.images)
        await fetcher.start()
        self.services = svc = Services(
            config=self.config,
            store=store,
            keys=KeyCache(store, hasher, self.config.auth.key_cache_seconds),
            hasher=hasher,
            catalog=build_catalog(self.config, self.sim_url),
            balancer=Balancer(self.config.routing, self.metrics),
            metrics=self.metrics,
            upstream=upstream,
            fetcher=fetcher,
            cache=make_cache(self.config.cache.redis_url, self.config.cache.max_entries),
            limiter=self._limiter(),
            usage=UsageWriter(store),
            countries=CountryLookup(geo) if (geo := self.config.geo.database) else None,
            media=media,
        )
        await svc.usage.start()
        self._mount(svc, self._db)
        self._front = FrontDoor(self.router, svc)
        self._reaper = Reaper(store, self.config.billing)
        self._reaper.start()
        self._poller = Poller(svc)
        self._poller.start()
        self._rollup = asyncio.get_running_loop().create_task(
            rollup_loop(
                self._db,
                self.config.usage.rollup_interval_seconds,
                self.config.usage.retention_days,
            )
        )
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())
        if svc.media is not None:
            self._sweeper = asyncio.get_running_loop().create_task(svc.media.sweep_forever())
        self._watch_sighup()
        await self._first_run(hasher)
        heap.settle(self.config.runtime.gc_freeze, self.config.runtime.gc_threshold)
        if self.announce is not None:
            self.announce(self)

    def _limiter(self) -> Limiter:
        try:
            return make_limiter(self.config.limits, self.config.plans, self.metrics)
        except LimitsConfigError as exc:
            raise ConfigError(f"limits: {exc}") from None

    def _media(self) -> Media:
        try:
            return make_media(self.config.media, self.env.home, self.config.server.trusted_proxies)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def reload(self) -> str:
        """Read the config file again and swap in its catalog: providers and models (their
        deployments, prices, fallbacks and caches), with the stored price and plan overrides on
        top, and the guards. A file that does not validate is refused and the old catalog
        serves on. Every other section takes a restart."""
        if self.services is None:
            raise ConfigError("the gateway has not started")
        if self.config_path is None:
            raise ConfigError("the gateway runs without a config file: there is nothing to reload")
        fresh = load_config(self.config_path)
        self.file_config = self.file_config.model_copy(
            update={"providers": fresh.providers, "models": fresh.models, "guards": fresh.guards}
        )
        models = self._install(catalog_ops.apply(self.file_config, self.overrides))
        log.warning("reloaded %s: %d models", self.config_path, models)
        return f"{self.config_path}: {models} models"

    async def refresh_overrides(self) -> bool:
        """Apply the prices and plans stored through the admin API (by any replica) when they
        changed since the last look; True if they did."""
        if self._db is None or self.services is None:
            return False
        overrides = await self._db.run(catalog_ops.load)
        if overrides.version == self.overrides.version:
            return False
        self.overrides = overrides
        self._install(catalog_ops.apply(self.file_config, overrides))
        return True

    def _install(self, config: Config) -> int:
        """Serve `config`: a new catalog, and a new limiter when the plans changed."""
        svc = self.services
        assert svc is not None
        catalog = build_catalog(config, self.sim_url)
        plans_changed = config.plans != self.config.plans
        self.config = config
        if plans_changed:
            old, svc.limiter = svc.limiter, self._limiter()
            asyncio.get_running_loop().create_task(old.close())
        svc.config = config
        svc.catalog = catalog
        return len(catalog.models)

    async def _refresh_loop(self, every: float = 15.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.refresh_overrides()
            except Exception:
                log.exception("could not read the stored prices and plans; retrying")

    def _watch_sighup(self) -> None:
        def on_sighup() -> None:
            try:
                self.reload()
            except ConfigError as exc:
                log.error("reload refused, the old catalog keeps serving: %s", exc)

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)

    async def _first_run(self, hasher: KeyHasher) -> None:
        """Once per database, last in the start so a failed start loses nothing: an admin key
        (unless FAREGATE_ADMIN_KEY is set) and, when the simulator serves, a demo account with
        credits and a key. Serialized across processes, so one worker alone creates them."""
        assert self._db is not None
        make_admin = not self.env.admin_key
        demo = self.config.simulator.enabled

        def act(c: Connection) -> tuple[str | None, str | None]:
            if c.dialect.name == "postgresql":
                c.execute(text(f"SELECT pg_advisory_xact_lock({FIRST_RUN_LOCK})"))
            else:  # a write statement takes SQLite's write lock before anything is read
                c.execute(text("DELETE FROM admin_keys WHERE 0 = 1"))
            admin = ops.bootstrap_admin(c, hasher) if make_admin else None
            key = None
            if demo and not ops.list_accounts(c):
                account = ops.create_account(c, "demo")
                ops.grant(c, account["id"], DEMO_CREDITS, "first-run demo credits")
                key = ops.create_key(c, hasher, account["id"], "demo")[1]
            return admin, key

        self.bootstrap_admin_key, self.first_run_key = await self._db.run(act)

    async def stop(self) -> None:
        if self._poller is not None:
            await self._poller.stop()
            self._poller = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self._rollup is not None:
            self._rollup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rollup
            self._rollup = None
        if self._reaper is not None:
            await self._reaper.stop()
        if self.services is not None:
            await self.services.upstream.close()
            await self.services.fetcher.close()
            await self.services.cache.close()
            await self.services.usage.close()
            await self.services.limiter.close()
            if self.services.media is not None:
                await self.services.media.close()
            await self.services.store.close()
        if self._db is not None:
            await self._db.dispose()
        if self._sim_runner is not None:
            await self._sim_runner.cleanup()
        await asyncio.to_thread(tracing.shutdown)  # exports what is still buffered

    def _mount(self, svc: Services, db: AdminDB) -> None:
        """Every route of the table in `faregate.api.routes`."""
        routes.mount(self.router, routes.Deps(svc, db, self, self.env.admin_key))

    # -- ASGI --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Any, send: Send) -> None:
        if self._front is None:
            err = ServiceUnavailable("The gateway is starting.", retry_after=1)
            await render_error("openai", err)(send, receive)
            return
        await self._front(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Send) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("startup failed")
                    with contextlib.suppress(Exception):
                        await self.stop()
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                with contextlib.suppress(Exception):
                    await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(config: Config, environment: Environment | None = None) -> App:
    return App(config, environment)


__all__ = ["App", "Environment", "create_app"]
