"""Accounts, keys, holds, the ledger, instances and admin keys.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ms = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", _ms, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("allowed_models", sa.Text, nullable=True),
        sa.Column("expires_at", _ms, nullable=True),
        sa.Column("revoked_at", _ms, nullable=True),
        sa.Column("created_at", _ms, nullable=False),
    )
    op.create_index("ix_api_keys_account", "api_keys", ["account_id"])
    op.create_table(
        "holds",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("request_id", sa.String(40), nullable=True),
        sa.Column("instance_id", sa.String(40), nullable=False),
        sa.Column("created_at", _ms, nullable=False),
        sa.Column("expires_at", _ms, nullable=False),
        sa.Column("closed_at", _ms, nullable=True),
        sa.Column("cost", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_holds_open", "holds", ["status", "expires_at"])
    op.create_index("ix_holds_instance", "holds", ["instance_id", "status"])
    op.create_index("ix_holds_account", "holds", ["account_id", "status"])
    op.create_table(
        "ledger",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("hold_id", sa.String(40), nullable=True),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("cost", sa.BigInteger, nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("cached_tokens", sa.Integer, nullable=True),
        sa.Column("reasoning_tokens", sa.Integer, nullable=True),
        sa.Column("estimated", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_at", _ms, nullable=False),
    )
    op.create_index("ix_ledger_account", "ledger", ["account_id", "id"])
    op.create_index("ix_ledger_hold", "ledger", ["hold_id"])
    op.create_table(
        "instances",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("started_at", _ms, nullable=False),
        sa.Column("heartbeat_at", _ms, nullable=False),
    )
    op.create_table(
        "admin_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", _ms, nullable=False),
    )


def downgrade() -> None:
    for table in ("admin_keys", "instances", "ledger", "holds", "api_keys", "accounts"):
        op.drop_table(table)
