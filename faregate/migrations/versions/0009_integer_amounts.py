"""Integer amounts enforced by the database: every money column holds an integer within the
range of amounts (10**15 micro-credits), so no balance, hold or ledger sum can overflow.

SQLite stores any value in any column (a balance past 2**63 became a float); a CHECK on
`typeof(...) = 'integer'` and the range refuses it. SQLite adds a CHECK only by rebuilding
the table (batch mode: copy, drop, rename, indexes recreated), once, here; the checks then
run inside SQLite on each write, no per-row Python. PostgreSQL's columns are BIGINT
already: it gets the range checks.

Existing rows that break a check (a float balance, an amount past the range, or a balance
that with its open holds exceeds the range) stop the migration with a message naming them:
fix them by hand and start again.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

MAX = 10**15  # faregate.billing.bounds.MAX_AMOUNT when this revision was written

# table -> (column, lowest, highest, nullable); None: no bound on that side
COLUMNS: dict[str, list[tuple[str, int | None, int | None, bool]]] = {
    "accounts": [("balance", 0, MAX, False), ("spend_limit", 0, MAX, True)],
    "api_keys": [("spend_limit", 0, MAX, True)],
    "holds": [("amount", 0, MAX, False), ("cost", 0, None, True)],
    "ledger": [("amount", -MAX, MAX, False), ("cost", 0, None, True)],
    "spend_windows": [("spent", None, None, False)],
    "redemption_codes": [("amount", 1, MAX, False)],
    "price_overrides": [
        ("input", 0, MAX, False),
        ("output", 0, MAX, False),
        ("cached_input", 0, MAX, True),
    ],
}


def condition(column: str, low: int | None, high: int | None, nullable: bool, sqlite: bool) -> str:
    """The CHECK of one column (the same text as `faregate.db.schema.amount_check`)."""
    parts = [f"typeof({column}) = 'integer'"] if sqlite else []
    if low is not None and high is not None:
        parts.append(f"{column} BETWEEN {low} AND {high}")
    elif low is not None:
        parts.append(f"{column} >= {low}")
    if not parts:
        return ""
    test = " AND ".join(parts)
    return f"{column} IS NULL OR ({test})" if nullable else test


def _checks(sqlite: bool) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for table, columns in COLUMNS.items():
        for column, low, high, nullable in columns:
            text = condition(column, low, high, nullable, sqlite)
            if text:
                out.setdefault(table, []).append((f"ck_{table}_{column}", text))
    return out


def _refuse_bad_rows(sqlite: bool) -> None:
    conn = op.get_bind()
    bad: list[str] = []
    for table, checks in _checks(sqlite).items():
        for name, text in checks:
            found = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE NOT ({text})"))
            count = int(found.scalar_one())
            if count:
                bad.append(f"{count} row(s) of {table} break {name}: {text}")
    over = conn.execute(
        sa.text(
            "SELECT a.id FROM accounts a JOIN holds h ON h.account_id = a.id"
            " AND h.status = 'open' GROUP BY a.id, a.balance"
            f" HAVING a.balance + SUM(h.amount) > {MAX}"
        )
    ).scalars()
    bad.extend(f"account {a}: balance and open holds exceed {MAX}" for a in over)
    if bad:
        raise RuntimeError(
            "migration 0009 (integer amounts) refused: existing rows hold amounts that are not"
            f" integers from the range (at most {MAX} micro-credits). Fix them and start"
            " again:\n  " + "\n  ".join(bad)
        )


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _refuse_bad_rows(sqlite)
    for table, checks in _checks(sqlite).items():
        with op.batch_alter_table(table, recreate="always" if sqlite else "never") as t:
            for name, text in checks:
                t.create_check_constraint(name, sa.text(text))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, checks in _checks(sqlite).items():
        with op.batch_alter_table(table, recreate="always" if sqlite else "never") as t:
            for name, _ in checks:
                t.drop_constraint(name, type_="check")
