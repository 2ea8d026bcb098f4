"""Stored Responses API responses: per account, with their input items, the items a next
turn continues from, and an expiry (`[responses] retention_days`).

Revision ID: 0012
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("input_items", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_responses_account", "responses", ["account_id"])
    op.create_index("ix_responses_expires", "responses", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_expires", "responses")
    op.drop_index("ix_responses_account", "responses")
    op.drop_table("responses")
