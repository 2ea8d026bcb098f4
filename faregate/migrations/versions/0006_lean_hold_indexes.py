"""Leaner indexes on the hot path: one partial index over open holds replaces three indexes
on every hold, and the ledger's hold index goes (nothing looks a ledger row up by hold).

Each hold is written twice (taken, then closed); with one small index over open holds only,
each of those commits writes a few pages fewer.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_holds_open", table_name="holds")
    op.drop_index("ix_holds_instance", table_name="holds")
    op.drop_index("ix_holds_account", table_name="holds")
    op.drop_index("ix_ledger_hold", table_name="ledger")
    where = sa.text("status = 'open'")
    op.create_index(
        "ix_holds_open_by_account",
        "holds",
        ["account_id"],
        sqlite_where=where,
        postgresql_where=where,
    )


def downgrade() -> None:
    op.drop_index("ix_holds_open_by_account", table_name="holds")
    op.create_index("ix_ledger_hold", "ledger", ["hold_id"])
    op.create_index("ix_holds_account", "holds", ["account_id", "status"])
    op.create_index("ix_holds_instance", "holds", ["instance_id", "status"])
    op.create_index("ix_holds_open", "holds", ["status", "expires_at"])
