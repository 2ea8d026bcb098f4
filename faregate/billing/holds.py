"""Holds taken and closed as plans both ledgers run: the conditional debit with its spend
windows, and the single close (settle or release) with the overrun rule. The debit with its
hold and ledger rows, and the close with its refund and ledger row, are each one gated
statement: a single round trip on PostgreSQL, three inline statements on SQLite."""

from __future__ import annotations

from typing import Any

import orjson

from faregate.billing.steps import Gated, Merged, Plan, gated, n, one
from faregate.billing.store import (
    HoldTicket,
    SpendLimited,
    SpendWindow,
    overrun,
    spend_refusal,
)

SPEND_ROW = (
    "INSERT INTO spend_windows (scope, scope_id, period, spent) VALUES (?, ?, ?, 0)"
    " ON CONFLICT DO NOTHING"
)
SPENT = "SELECT spent FROM spend_windows WHERE scope = ? AND scope_id = ? AND period = ?"
SPEND_ADD = (
    "UPDATE spend_windows SET spent = spent + ? WHERE scope = ? AND scope_id = ? AND period = ?"
)
BALANCE = "SELECT balance FROM accounts WHERE id = ?"


_LEDGER_COLUMNS = (
    "INSERT INTO ledger (account_id, kind, amount, hold_id, key_id, model, cost, prompt_tokens,"
    " completion_tokens, cached_tokens, reasoning_tokens, estimated, units, note, created_at)"
)
_HOLD_COLUMNS = (
    "INSERT INTO holds (id, account_id, key_id, amount, status, model, request_id,"
    " instance_id, created_at, expires_at, spend_windows, owner)"
)

TAKE = Gated(
    "d AS (UPDATE accounts SET balance = balance - $1::bigint WHERE id = $2 AND balance >= $1"
    " RETURNING id),"
    f" h AS ({_HOLD_COLUMNS} SELECT $3::text, $2, $4::text, $1, 'open', $5::text, $6::text,"
    " $7::text, $8::bigint, $9::bigint, $10::text, $11::text FROM d),"
    f" l AS ({_LEDGER_COLUMNS} SELECT $2, 'hold', -$1, $3, $4, $5, NULL, NULL, NULL, NULL, NULL,"
    " FALSE, NULL, NULL, $8 FROM d)",
    "d",
    (
        ("UPDATE accounts SET balance = balance - ?1 WHERE id = ?2 AND balance >= ?1", 2),
        (f"{_HOLD_COLUMNS} VALUES (?3, ?2, ?4, ?1, 'open', ?5, ?6, ?7, ?8, ?9, ?10, ?11)", 11),
        (
            f"{_LEDGER_COLUMNS} VALUES (?2, 'hold', -?1, ?3, ?4, ?5, NULL, NULL, NULL, NULL, NULL,"
            " FALSE, NULL, NULL, ?8)",
            8,
        ),
    ),
)
"""Debit $1 from account $2 if its balance covers it, and only then write hold $3 (key $4,
model $5, request $6, instance $7, at $8, expiring at $9, spend windows $10, owner $11) and its
ledger row. Gives back the number of accounts debited (0 or 1)."""

SHUT = Gated(
    "c AS (UPDATE holds SET status = $2, closed_at = $3, cost = $4"
    " WHERE id = $1 AND status = 'open' RETURNING id),"
    " r AS (UPDATE accounts SET balance = balance + $5::bigint WHERE id = $6 AND $5::bigint <> 0"
    " AND EXISTS (SELECT 1 FROM c)),"
    f" s AS ({_LEDGER_COLUMNS} SELECT $6, $7::text, $5, $1, $8::text, $9::text, $10::bigint,"
    " $11::integer, $12::integer, $13::integer, $14::integer, $15::boolean, $16::text,"
    " $17::text, $3 FROM c)",
    "c",
    (
        (
            "UPDATE holds SET status = ?2, closed_at = ?3, cost = ?4"
            " WHERE id = ?1 AND status = 'open'",
            4,
        ),
        ("UPDATE accounts SET balance = balance + ?5 WHERE id = ?6 AND ?5 != 0", 6),
        (
            f"{_LEDGER_COLUMNS} VALUES (?6, ?7, ?5, ?1, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
            " ?16, ?17, ?3)",
            17,
        ),
    ),
)
"""Close hold $1 once as $2 at $3 with cost $4, and only then give $5 back to account $6 and
write the ledger row (kind $7, key $8, model $9, the cost billed $10, then the detail). Gives
back the number of holds closed (0 or 1)."""

PIPELINED = Merged(TAKE, SHUT)
"""A take or a close as one PostgreSQL statement: a batch of steps that are each one of them
(no spend windows, no overrun) goes to the server in one round trip."""


def take(
    ticket: HoldTicket,
    spend: tuple[SpendWindow, ...],
    *,
    request_id: str,
    instance_id: str,
    ts: int,
    expires_at: int,
    owner: str | None,
) -> Plan[bool | SpendLimited]:
    """Debit the ticket's amount if the balance covers it and it fits every spend window
    (False, or the refusal), writing the hold row and its ledger row."""
    amount = ticket.amount
    for w in spend:  # lock the windows, then check them all before writing anything
        yield n(SPEND_ROW, *w.ref)
        spent = int((yield one(SPENT, *w.ref, lock="update"))[0])
        if spent + amount > w.limit:
            return spend_refusal(w, amount, spent)
    windows = orjson.dumps(ticket.spend).decode() if spend else None
    taken = yield gated(
        TAKE,
        amount,
        ticket.account_id,
        ticket.id,
        ticket.key_id,
        ticket.model,
        request_id,
        instance_id,
        ts,
        expires_at,
        windows,
        owner,
    )
    if taken != 1:
        return False
    for w in spend:
        yield n(SPEND_ADD, amount, *w.ref)
    return True


def close(
    ticket: HoldTicket,
    status: str,
    cost: int,
    refund: int,
    detail: tuple[Any, ...],
    ts: int,
) -> Plan[bool]:
    """Close the hold once (False if it was closed already): refund the unused part, or take
    an overrun from the balance as far as it goes, and write the ledger row."""
    if refund < 0:  # the upstream billed past the worst case: collect what the balance allows
        row = yield one(BALANCE, ticket.account_id, lock="update")
        cost, refund, detail = overrun(ticket, cost, int(row[0]), detail)
    kind = "settle" if status == "settled" else "release"
    closed = yield gated(
        SHUT,
        ticket.id,
        status,
        ts,
        cost,
        refund,
        ticket.account_id,
        kind,
        ticket.key_id,
        ticket.model,
        cost if kind == "settle" else None,
        *detail,
    )
    if closed != 1:
        return False
    if refund:
        for ref in ticket.spend:  # what is given back no longer counts as spent
            yield n(SPEND_ADD, -refund, *ref)
    return True
