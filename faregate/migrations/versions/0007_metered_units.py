"""Meters beyond tokens: the ledger and the usage log record the units billed (JSON text,
NULL for token-only rows), and prices stored by the admin API keep their other meters.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger", sa.Column("units", sa.Text, nullable=True))
    op.add_column("usage_log", sa.Column("units", sa.Text, nullable=True))
    op.add_column("price_overrides", sa.Column("meters", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("price_overrides") as batch:
        batch.drop_column("meters")
    with op.batch_alter_table("usage_log") as batch:
        batch.drop_column("units")
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("units")
