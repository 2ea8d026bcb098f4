"""The `faregate` command: serve, run the simulator, and operate accounts, keys and credits."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from faregate.admin import audit, ops, users
from faregate.api import access_log
from faregate.app import App, Environment, check_admin_key, database_url
from faregate.auth.keys import KeyHasher, load_secret
from faregate.billing.bounds import MAX_AMOUNT, RANGE_TEXT
from faregate.config import Config, ConfigError
from faregate.config_load import load_config
from faregate.console import logins
from faregate.db import migrate
from faregate.db.urls import display_url, is_sqlite, sqlalchemy_url, sqlite_path
from faregate.kinds import Kind
from faregate.limits.config import any_limits

T = TypeVar("T")

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    envvar="FAREGATE_CONFIG",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (TOML). Without one: SQLite and the built-in simulator.",
)


def _load(config_path: str | None) -> Any:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _existing_database(config_path: str | None, env: Environment) -> str:
    """The URL of the database an operator command acts on: the one the server would use.
    A SQLite file that does not exist is refused: acting there would create a new, empty
    database beside the server's (a CLI run from another folder), not change the server's."""
    try:
        url = database_url(_load(config_path), env)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if is_sqlite(url) and not sqlite_path(url).exists():
        raise click.ClickException(
            f"no database at {sqlite_path(url).resolve()}; this command would create a new,"
            " empty one. Run it from the folder where `faregate serve` runs, or point it at"
            " the server's database: FAREGATE_HOME=DIR (the folder holding faregate.db and"
            " secret.key), FAREGATE_DATABASE_URL=URL or --config FILE"
        )
    click.echo(f"database: {display_url(url)}", err=True)
    return url


def _db_action(config_path: str | None, fn: Callable[[Connection, KeyHasher], T]) -> T:
    """Run one operator action against the server's existing database, migrating it first."""
    env = Environment.from_env()
    url = _existing_database(config_path, env)
    hasher = KeyHasher(load_secret(env.secret_key, env.home))

    async def run() -> T:
        await migrate.upgrade(url)
        engine = create_async_engine(sqlalchemy_url(url))
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(lambda c: fn(c, hasher))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except ops.AdminError as exc:
        raise click.ClickException(exc.message) from None


@click.group()
@click.version_option(package_name="faregate")
def main() -> None:
    """Faregate: a self-hostable LLM API gateway with an exact credit ledger."""


# -- serving ---------------------------------------------------------------------------


def _announce(app: App) -> None:
    svc = app.services
    assert svc is not None
    server = app.config.server
    lines = [f"Faregate is serving on http://{server.host}:{server.port}"]
    lines.append(f"  database: {display_url(app.database_url)}")
    if app.sim_url:
        lines.append(f"  built-in provider simulator: {app.sim_url}")
    lines.append(f"  models: {', '.join(svc.catalog.models)}")
    if app.bootstrap_admin_key:
        lines.append(f"  admin key (shown once, keep it): {app.bootstrap_admin_key}")
    chat_models = [m.name for m in svc.catalog.models.values() if m.kind is Kind.CHAT]
    if app.first_run_key and chat_models:
        example = json.dumps(
            {"model": chat_models[0], "messages": [{"role": "user", "content": "Hi"}]}
        )
        lines += [
            f"  a demo account with credits and this API key was created: {app.first_run_key}",
            f"  try: curl http://{server.host}:{server.port}/v1/chat/completions \\",
            f"         -H 'Authorization: Bearer {app.first_run_key}' \\",
            "         -H 'Content-Type: application/json' \\",
            f"         -d '{example}'",
        ]
    lines.append(
        "  new keys: faregate accounts create NAME --credits N;"
        " then faregate keys create ACCOUNT_ID"
    )
    click.echo("\n".join(lines), err=True)


def _listen(config: Config, host: str | None, port: int | None) -> Config:
    if host is None and port is None:
        return config
    server = config.server.model_copy(
        update={
            "host": host or config.server.host,
            "port": config.server.port if port is None else port,
        }
    )
    return config.model_copy(update={"server": server})


def app_factory() -> App:
    """Build the app in each worker process (uvicorn calls this), from FAREGATE_CONFIG and
    the address `faregate serve` put in FAREGATE_LISTEN."""
    config = _load(os.environ.get("FAREGATE_CONFIG") or None)
    host, _, port = os.environ.get("FAREGATE_LISTEN", "").rpartition(":")
    config = _listen(config, host or None, int(port) if port else None)
    access_log.configure(config.log.access)
    return App(config, announce=_announce, config_path=os.environ.get("FAREGATE_CONFIG") or None)


@main.command()
@CONFIG_OPTION
@click.option("--host", default=None, help="Interface to listen on (config: server.host).")
@click.option("--port", type=int, default=None, help="Port to listen on (config: server.port).")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--log-level", default="warning", show_default=True)
def serve(
    config_path: str | None, host: str | None, port: int | None, workers: int, log_level: str
) -> None:
    """Run the gateway."""
    import uvicorn

    from faregate.http.protocol import HttpProtocol

    config = _listen(_load(config_path), host, port)
    env = Environment.from_env()
    try:
        check_admin_key(env)
        url = database_url(config, env)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    load_secret(env.secret_key, env.home)  # created here, once, before any worker needs it
    migrate.upgrade_apart(url)  # in a child process: the server never loads Alembic
    access_log.configure(config.log.access and workers == 1)  # workers set up their own
    if config_path:
        os.environ["FAREGATE_CONFIG"] = os.path.abspath(config_path)
    if workers > 1:
        if any_limits(config.limits, config.plans) and not config.limits.redis_url:
            raise click.ClickException(
                f"{workers} workers without limits.redis_url would each admit the whole of"
                " every rate limit; set limits.redis_url so they share counters"
            )
        os.environ["FAREGATE_LISTEN"] = f"{config.server.host}:{config.server.port}"
        if config.simulator.enabled:
            raise click.ClickException(
                "the in-process simulator serves one worker; run `faregate sim` separately"
            )
        uvicorn.run(
            "faregate.cli:app_factory",
            factory=True,
            host=config.server.host,
            port=config.server.port,
            workers=workers,
            loop="uvloop",
            http=HttpProtocol,
            access_log=False,
            server_header=False,
            proxy_headers=False,  # the front door reads X-Forwarded-For from trusted proxies only
            log_level=log_level,
            lifespan="on",
        )
        return
    uvicorn.run(
        App(config, announce=_announce, config_path=config_path),
        host=config.server.host,
        port=config.server.port,
        loop="uvloop",
        http=HttpProtocol,
        access_log=False,
        server_header=False,  # no `server: uvicorn` on every reply: nothing to advertise
        proxy_headers=False,  # the front door reads X-Forwarded-For from trusted proxies only
        log_level=log_level,
        lifespan="on",
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9100, show_default=True)
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option("--chunk-delay-ms", type=float, default=0.0, show_default=True)
@click.option("--video-ms", type=float, default=200.0, show_default=True)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None)
def sim(
    host: str,
    port: int,
    latency_ms: float,
    chunk_delay_ms: float,
    video_ms: float,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Run the provider simulator (OpenAI-compatible upstream with scriptable faults); over
    HTTPS with --tls-cert (and --tls-key unless the certificate file holds the key)."""
    from faregate.sim.server import run, tls_context

    if tls_key and not tls_cert:
        raise click.UsageError("--tls-key needs --tls-cert")
    tls = tls_context(tls_cert, tls_key) if tls_cert else None
    run(
        host,
        port,
        latency_ms=latency_ms,
        chunk_delay_ms=chunk_delay_ms,
        tls=tls,
        video_ms=video_ms,
    )


@main.command("check-config")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def check_config(path: str) -> None:
    """Validate a config file and list what it declares."""
    config = _load(path)
    click.echo(f"{path}: ok ({len(config.providers)} providers, {len(config.models)} models)")


# -- accounts, credits, keys -----------------------------------------------------------


@main.group()
def accounts() -> None:
    """Create, list and show accounts."""


@accounts.command("create")
@click.argument("name")
@click.option(
    "--credits",
    "amount",
    type=click.IntRange(0, MAX_AMOUNT),
    default=0,
    help=f"Initial micro-credits ({RANGE_TEXT}).",
)
@CONFIG_OPTION
def accounts_create(name: str, amount: int, config_path: str | None) -> None:
    def act(c: Connection, _: KeyHasher) -> dict[str, Any]:
        account = ops.create_account(c, name)
        if amount:
            ops.grant(c, account["id"], amount, "initial credits")
        return ops.get_account(c, account["id"])

    _echo(_db_action(config_path, act))


@accounts.command("list")
@CONFIG_OPTION
def accounts_list(config_path: str | None) -> None:
    _echo(_db_action(config_path, lambda c, _: ops.list_accounts(c)))


@accounts.command("show")
@click.argument("account_id")
@CONFIG_OPTION
def accounts_show(account_id: str, config_path: str | None) -> None:
    """Balance and open holds of an account."""
    _echo(_db_action(config_path, lambda c, _: ops.get_account(c, account_id)))


@main.command()
@click.argument("account_id")
@click.argument("amount", type=click.IntRange(-MAX_AMOUNT, MAX_AMOUNT))
@click.option("--note", default=None)
@CONFIG_OPTION
def grant(account_id: str, amount: int, note: str | None, config_path: str | None) -> None:
    """Grant micro-credits to an account (negative to take back); the balance stays within
    0 to 10**15."""
    balance = _db_action(config_path, lambda c, _: ops.grant(c, account_id, amount, note))
    _echo({"account_id": account_id, "balance": balance})


@main.command()
@click.argument("account_id")
@click.option("--limit", type=int, default=50, show_default=True)
@CONFIG_OPTION
def ledger(account_id: str, limit: int, config_path: str | None) -> None:
    """The newest ledger entries of an account."""
    _echo(_db_action(config_path, lambda c, _: ops.ledger_entries(c, account_id, limit)))


@main.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.argument("account_id")
@click.option("--name", default="default", show_default=True)
@click.option("--model", "models", multiple=True, help="Limit the key to this model (repeat).")
@click.option("--expires-in-days", type=float, default=None)
@CONFIG_OPTION
def keys_create(
    account_id: str,
    name: str,
    models: tuple[str, ...],
    expires_in_days: float | None,
    config_path: str | None,
) -> None:
    """Create a key; it is printed once and never stored."""
    expires = (
        None if expires_in_days is None else int((time.time() + expires_in_days * 86400) * 1000)
    )
    record, key = _db_action(
        config_path,
        lambda c, h: ops.create_key(
            c, h, account_id, name, models=models or None, expires_at=expires
        ),
    )
    _echo({**record, "key": key})
    click.echo("Store this key now: it cannot be shown again.", err=True)


@keys.command("list")
@click.argument("account_id")
@CONFIG_OPTION
def keys_list(account_id: str, config_path: str | None) -> None:
    _echo(_db_action(config_path, lambda c, _: ops.list_keys(c, account_id)))


@keys.command("revoke")
@click.argument("key_id")
@CONFIG_OPTION
def keys_revoke(key_id: str, config_path: str | None) -> None:
    row, _ = _db_action(config_path, lambda c, _: ops.revoke_key(c, key_id))
    _echo(row)


@main.group()
def console() -> None:
    """The web console: operators and password reset links."""


@console.command("operator")
@click.argument("email")
@click.option("--name", default="", help="The user's name, when the user is new.")
@CONFIG_OPTION
def console_operator(email: str, name: str, config_path: str | None) -> None:
    """Make EMAIL an operator of the console (creating the user if needed) and print a
    one-time link path to set their password."""
    hours = _load(config_path).console.reset_hours

    def act(c: Connection, h: KeyHasher) -> dict[str, Any]:
        found, _ = users.list_users(c, email=email, limit=1)
        user = found[0] if found else users.create_user(c, email, name)
        logins.set_operator(c, str(user["id"]), True)
        token = logins.issue_reset(c, h, str(user["id"]), "cli", hours)
        audit.record(c, "cli", "console.operator", str(user["id"]), {"operator": True})
        return {
            "user_id": user["id"],
            "email": user["email"],
            "reset_path": f"/console/reset#{token}",
        }

    _echo(_db_action(config_path, act))
    click.echo("Open the reset path on the gateway to set the password; it works once.", err=True)


if __name__ == "__main__":
    sys.exit(main())
