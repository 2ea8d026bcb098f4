"""Holds taken and closed as plans both ledgers run: the conditional debit with its spend
windows, and the single close (settle or release) with the overrun rule."""

from __future__ import annotations

from typing import Any

import orjson

from faregate.billing.steps import Plan, n, one
from faregate.billing.store import (
    HoldTicket,
    SpendLimited,
    SpendWindow,
    overrun,
    spend_refusal,
)

HOLD_DEBIT = "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?"
HOLD_ROW = (
    "INSERT INTO holds (id, account_id, key_id, amount, status, model, request_id,"
    " instance_id, created_at, expires_at, spend_windows, owner)"
    " VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)"
)
SPEND_ROW = (
    "INSERT INTO spend_windows (scope, scope_id, period, spent) VALUES (?, ?, ?, 0)"
    " ON CONFLICT DO NOTHING"
)
SPENT = "SELECT spent FROM spend_windows WHERE scope = ? AND scope_id = ? AND period = ?"
SPEND_ADD = (
    "UPDATE spend_windows SET spent = spent + ? WHERE scope = ? AND scope_id = ? AND period = ?"
)
CLOSE = "UPDATE holds SET status = ?, closed_at = ?, cost = ? WHERE id = ? AND status = 'open'"
CREDIT = "UPDATE accounts SET balance = balance + ? WHERE id = ?"
BALANCE = "SELECT balance FROM accounts WHERE id = ?"
LEDGER = (
    "INSERT INTO ledger (account_id, kind, amount, hold_id, key_id, model, cost, prompt_tokens,"
    " completion_tokens, cached_tokens, reasoning_tokens, estimated, units, note, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


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
    if (yield n(HOLD_DEBIT, amount, ticket.account_id, amount)) != 1:
        return False
    for w in spend:
        yield n(SPEND_ADD, amount, *w.ref)
    windows = orjson.dumps(ticket.spend).decode() if spend else None
    yield n(
        HOLD_ROW,
        ticket.id,
        ticket.account_id,
        ticket.key_id,
        amount,
        ticket.model,
        request_id,
        instance_id,
        ts,
        expires_at,
        windows,
        owner,
    )
    yield n(
        LEDGER,
        ticket.account_id,
        "hold",
        -amount,
        ticket.id,
        ticket.key_id,
        ticket.model,
        *(None,) * 5,
        False,
        None,
        None,
        ts,
    )
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
    if (yield n(CLOSE, status, ts, cost, ticket.id)) != 1:
        return False
    if refund:
        yield n(CREDIT, refund, ticket.account_id)
        for ref in ticket.spend:  # what is given back no longer counts as spent
            yield n(SPEND_ADD, -refund, *ref)
    kind = "settle" if status == "settled" else "release"
    yield n(
        LEDGER,
        ticket.account_id,
        kind,
        refund,
        ticket.id,
        ticket.key_id,
        ticket.model,
        cost if kind == "settle" else None,
        *detail,
        ts,
    )
    return True
