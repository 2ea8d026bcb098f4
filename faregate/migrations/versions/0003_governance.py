"""Governance: plans and limits, key restrictions, spend limits, users, redemption codes,
the audit log and the usage log with its daily rollup.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ms = sa.BigInteger


def upgrade() -> None:
    with op.batch_alter_table("accounts") as t:
        t.add_column(sa.Column("plan", sa.String(64), nullable=True))
        t.add_column(sa.Column("limits", sa.Text, nullable=True))
        t.add_column(sa.Column("spend_limit", sa.BigInteger, nullable=True))
        t.add_column(sa.Column("spend_period", sa.String(10), nullable=True))
    with op.batch_alter_table("api_keys") as t:
        t.add_column(sa.Column("limits", sa.Text, nullable=True))
        t.add_column(sa.Column("restrictions", sa.Text, nullable=True))
        t.add_column(sa.Column("spend_limit", sa.BigInteger, nullable=True))
        t.add_column(sa.Column("spend_period", sa.String(10), nullable=True))
        t.add_column(sa.Column("user_id", sa.String(40), nullable=True))
    with op.batch_alter_table("holds") as t:
        t.add_column(sa.Column("spend_windows", sa.Text, nullable=True))
    op.create_table(
        "spend_windows",
        sa.Column("scope", sa.String(10), primary_key=True),  # key | account
        sa.Column("scope_id", sa.String(40), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),  # e.g. 2026-11-21, 2026-W47
        sa.Column("spent", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", _ms, nullable=False),
        sa.Column("disabled_at", _ms, nullable=True),
    )
    op.create_table(
        "account_members",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),  # owner | member
        sa.Column("created_at", _ms, nullable=False),
    )
    op.create_table(
        "redemption_codes",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("expires_at", _ms, nullable=True),
        sa.Column("revoked_at", _ms, nullable=True),
        sa.Column("created_at", _ms, nullable=False),
    )
    op.create_table(
        "redemptions",
        sa.Column("code_id", sa.String(40), sa.ForeignKey("redemption_codes.id"), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("created_at", _ms, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", _ms, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(80), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_at", "audit_log", ["at"])
    op.create_table(
        "usage_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", _ms, nullable=False),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("account_id", sa.String(40), nullable=True),
        sa.Column("route", sa.String(16), nullable=False),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("deployment", sa.Text, nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("cost", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("cached", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("estimated", sa.Boolean, nullable=False, server_default=sa.text("false")),
    )
    op.create_index("ix_usage_at", "usage_log", ["at"])
    op.create_index("ix_usage_account_at", "usage_log", ["account_id", "at"])
    op.create_index("ix_usage_key_at", "usage_log", ["key_id", "at"])
    op.create_index("ix_usage_model_at", "usage_log", ["model", "at"])
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
        sa.Column("account_id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_usage_daily_account", "usage_daily", ["account_id", "day"])
    op.create_index("ix_usage_daily_key", "usage_daily", ["key_id", "day"])


def downgrade() -> None:
    for table in (
        "usage_daily",
        "usage_log",
        "audit_log",
        "redemptions",
        "redemption_codes",
        "account_members",
        "users",
        "spend_windows",
    ):
        op.drop_table(table)
    with op.batch_alter_table("holds") as t:
        t.drop_column("spend_windows")
    with op.batch_alter_table("api_keys") as t:
        for c in ("user_id", "spend_period", "spend_limit", "restrictions", "limits"):
            t.drop_column(c)
    with op.batch_alter_table("accounts") as t:
        for c in ("spend_period", "spend_limit", "limits", "plan"):
            t.drop_column(c)
