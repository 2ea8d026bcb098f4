"""Prices and plans kept in the database by the admin API, over those of the config file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Connection, delete, func, select

from faregate.admin.ops import AdminError
from faregate.billing.store import now_ms
from faregate.billing.types import Price
from faregate.config import Config
from faregate.db.schema import plan_overrides, price_overrides
from faregate.limits.config import Plan, check_plans


@dataclass(frozen=True)
class Overrides:
    prices: dict[str, Price] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)
    version: tuple[int, int] = (0, 0)  # (newest change, number of rows): moves with any change


def load(conn: Connection) -> Overrides:
    prices = {
        str(r.model): Price.model_validate(
            {
                "input": r.input,
                "output": r.output,
                "cached_input": r.cached_input,
                **(orjson.loads(r.meters) if r.meters else {}),
            }
        )
        for r in conn.execute(select(price_overrides))
    }
    plans = {
        str(r.name): Plan.model_validate(orjson.loads(r.limits))
        for r in conn.execute(select(plan_overrides))
    }
    newest = max(
        conn.execute(select(func.coalesce(func.max(price_overrides.c.updated_at), 0))).scalar_one(),
        conn.execute(select(func.coalesce(func.max(plan_overrides.c.updated_at), 0))).scalar_one(),
    )
    return Overrides(prices, plans, (int(newest), len(prices) + len(plans)))


def apply(config: Config, overrides: Overrides) -> Config:
    """The config the gateway runs with: the file's, with the stored prices and plans on top
    (prices of models the file no longer declares are ignored)."""
    models = {
        name: model.model_copy(update={"price": overrides.prices[name]})
        if name in overrides.prices
        else model
        for name, model in config.models.items()
    }
    plans = {**config.plans, **overrides.plans}
    return config.model_copy(update={"models": models, "plans": plans})


def set_price(conn: Connection, config: Config, model: str, body: dict[str, Any]) -> dict[str, Any]:
    if model not in config.models:
        raise AdminError(f"no model {model!r} in the catalog", 404)
    try:
        price = Price.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        field = str(error["loc"][0]) if error["loc"] else None
        raise AdminError(f"price: {where}: {error['msg']}", 422, param=field) from None
    conn.execute(delete(price_overrides).where(price_overrides.c.model == model))
    tokens = {"input": price.input, "output": price.output, "cached_input": price.cached_input}
    meters = price.model_dump(exclude_none=True, exclude=set(tokens))
    conn.execute(
        price_overrides.insert().values(
            model=model,
            **tokens,
            meters=orjson.dumps(meters).decode() if meters else None,
            updated_at=now_ms(),
        )
    )
    return {"model": model, **price.model_dump(), "source": "admin"}


def delete_price(conn: Connection, model: str) -> dict[str, Any]:
    if not conn.execute(delete(price_overrides).where(price_overrides.c.model == model)).rowcount:
        raise AdminError(f"no stored price for {model!r}", 404)
    return {"model": model, "deleted": True}


def set_plan(conn: Connection, config: Config, name: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        plan = Plan.model_validate(body)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise AdminError(f"plan: {where}: {exc.errors()[0]['msg']}") from None
    try:
        check_plans(config.limits, {**config.plans, name: plan})
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    conn.execute(delete(plan_overrides).where(plan_overrides.c.name == name))
    conn.execute(
        plan_overrides.insert().values(
            name=name,
            limits=orjson.dumps(plan.model_dump(exclude_none=True)).decode(),
            updated_at=now_ms(),
        )
    )
    return {"name": name, **plan.model_dump(exclude_none=True), "source": "admin"}


def delete_plan(conn: Connection, name: str) -> dict[str, Any]:
    if not conn.execute(delete(plan_overrides).where(plan_overrides.c.name == name)).rowcount:
        raise AdminError(f"no stored plan {name!r}", 404)
    return {"name": name, "deleted": True}
