"""Prices stored by the admin API on SQLite and PostgreSQL: every meter survives the round
trip, and bad prices are refused with the field that is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from faregate.admin import catalog_ops
from faregate.admin.ops import AdminError
from faregate.billing.types import Price
from faregate.config import Config, Model
from faregate.db.engine import AdminDB


def _config() -> Config:
    return Config.model_construct(
        models={"img": Model.model_construct(price=Price(input=0, output=0))}
    )


async def test_every_meter_of_a_stored_price_comes_back(db: AdminDB) -> None:
    body: dict[str, Any] = {
        "input": 1,
        "output": 2,
        "reasoning": 3,
        "image": 40_000,
        "images": {"1792x1024/hd": 80_000},
        "audio_second": 100,
        "characters": 15,
        "video_second": 100_000,
        "video_seconds": {"1920x1080": 250_000},
    }
    shown = await db.run(lambda c: catalog_ops.set_price(c, _config(), "img", body))
    assert shown["images"] == {"1792x1024/hd": 80_000}
    loaded = await db.run(catalog_ops.load)
    assert loaded.prices["img"] == Price.model_validate(body)


async def test_a_token_price_keeps_no_meters(db: AdminDB) -> None:
    await db.run(lambda c: catalog_ops.set_price(c, _config(), "img", {"input": 1, "output": 2}))
    loaded = await db.run(catalog_ops.load)
    assert loaded.prices["img"] == Price(input=1, output=2)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"image": 1.5}, "image"),
        ({"images": {"1024x1024": -1}}, "images.1024x1024"),
        ([1, 2], ""),
    ],
)
async def test_bad_prices_name_the_field(db: AdminDB, body: Any, where: str) -> None:
    with pytest.raises(AdminError, match=f"^price: {where}:"):
        await db.run(lambda c: catalog_ops.set_price(c, _config(), "img", body))
