"""Stored Responses API responses: one row per response, per account, kept for
`[responses] retention_days`.

A row holds the response object, its input items, and its context: the items a next turn
(`previous_response_id`) continues from (the previous context, this input, this output). A
row of another account or past its expiry reads as missing. Expired rows are swept by the
process that writes, at most once per `SWEEP_SECONDS`, in batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select

from faregate.db import schema
from faregate.db.engine import AdminDB

SWEEP_SECONDS = 600.0
SWEEP_BATCH = 1000
_T = schema.responses


@dataclass(frozen=True, slots=True)
class Stored:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    context: list[dict[str, Any]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class ResponseStore:
    def __init__(self, db: AdminDB, retention_days: int) -> None:
        self._db = db
        self._retention_ms = retention_days * 86_400_000
        self._swept = 0.0

    async def save(
        self,
        account_id: str,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        context: list[dict[str, Any]],
    ) -> None:
        now = _now_ms()
        row = {
            "id": response["id"],
            "account_id": account_id,
            "model": str(response.get("model") or ""),
            "input_items": orjson.dumps(input_items).decode(),
            "response": orjson.dumps(response).decode(),
            "context": orjson.dumps(context).decode(),
            "created_at": now,
            "expires_at": now + self._retention_ms,
        }

        def write(conn: Connection) -> None:
            conn.execute(insert(_T).values(**row))

        await self._db.run(write)
        if time.monotonic() - self._swept >= SWEEP_SECONDS:
            self._swept = time.monotonic()
            await self.sweep()

    async def get(self, response_id: str, account_id: str) -> Stored | None:
        """The response `response_id` of `account_id`, None if missing, another's or expired."""

        def read(conn: Connection) -> Stored | None:
            row = conn.execute(
                select(_T.c.response, _T.c.input_items, _T.c.context).where(
                    _T.c.id == response_id,
                    _T.c.account_id == account_id,
                    _T.c.expires_at > _now_ms(),
                )
            ).first()
            if row is None:
                return None
            return Stored(
                orjson.loads(row.response), orjson.loads(row.input_items), orjson.loads(row.context)
            )

        return await self._db.run(read)

    async def delete(self, response_id: str, account_id: str) -> bool:
        def remove(conn: Connection) -> bool:
            result = conn.execute(
                delete(_T).where(
                    _T.c.id == response_id,
                    _T.c.account_id == account_id,
                    _T.c.expires_at > _now_ms(),
                )
            )
            return bool(result.rowcount)

        return await self._db.run(remove)

    async def sweep(self, now_ms: int | None = None) -> int:
        """Delete expired responses (a batch at a time); the number deleted."""
        cutoff = _now_ms() if now_ms is None else now_ms
        total = 0
        while True:

            def batch(conn: Connection) -> int:
                ids = select(_T.c.id).where(_T.c.expires_at <= cutoff).limit(SWEEP_BATCH)
                result = conn.execute(delete(_T).where(_T.c.id.in_(ids.scalar_subquery())))
                return int(result.rowcount or 0)

            done = await self._db.run(batch)
            total += done
            if done < SWEEP_BATCH:
                return total
