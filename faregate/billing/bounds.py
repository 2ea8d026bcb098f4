"""The one range of every amount of money (credits, grants, codes, prices, spend limits and
balances), shared by the admin API, the config, the CLI and the ledger. A leaf.

`MAX_AMOUNT` is 10**15 micro-credits: US$1,000,000,000 at the default rate. Every amount an
operator can write, and every balance, lies in [-MAX_AMOUNT, MAX_AMOUNT] (balances and
prices in [0, MAX_AMOUNT]); the database refuses anything else (migration 0009).

Why no sum can reach 2**63 (the range of a 64-bit integer, SQLite's and PostgreSQL's
BIGINT): 2**63 - 1 is about 9.22e18 = 9,223 x MAX_AMOUNT. Per account, balance + open holds
stay within one MAX_AMOUNT: a grant refuses more, a hold moves money from the balance into
the hold, a settle or a release gives back at most what it held. So a balance, a hold, a
ledger row (either sign), a settled cost, an account's ledger sum (its balance) and its
balance plus held all fit in one MAX_AMOUNT. Only sums over time or over accounts grow
further (an account's grants alone, the costs of a usage report, a total over every
account, a spend window): they reach 2**63 after 9,223 maximal amounts, that is 9,223
grants or requests of US$1e9 each. A cost is a bounded price times a token count, computed
in Python (no overflow); a hold above MAX_AMOUNT can never be covered and is refused as an
insufficient balance before any SQL sees it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from pydantic import Field

MAX_AMOUNT = 10**15
"""The largest amount of micro-credits anything holds or moves."""

RANGE_TEXT = f"0 to {MAX_AMOUNT:_}"
SIGNED_RANGE_TEXT = f"-{MAX_AMOUNT:_} to {MAX_AMOUNT:_}"

MicroCredits = Annotated[int, Field(ge=0, le=MAX_AMOUNT, strict=True)]
"""A price, a spend limit or another unsigned amount, in pydantic models."""

Amount = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT)]
"""An unsigned amount in a msgspec body (initial credits, spend limits)."""

PositiveAmount = Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT)]
"""A code's worth."""

SignedAmount = Annotated[int, msgspec.Meta(ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
"""A grant (positive) or an adjustment (negative)."""


MAX_EPOCH_MS = 253_402_300_799_999
"""The last millisecond of year 9999: the latest `expires_at` (not money, but a BIGINT too)."""

EpochMs = Annotated[int, msgspec.Meta(ge=0, le=MAX_EPOCH_MS)]
"""A time in a msgspec body, epoch milliseconds."""


def in_range(value: object, *, signed: bool = False) -> bool:
    """Whether `value` is an integer amount (not a bool) within the range."""
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return (-MAX_AMOUNT if signed else 0) <= value <= MAX_AMOUNT
