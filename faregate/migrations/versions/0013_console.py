"""The web console: users' passwords and the operator flag, sign-in sessions, and the
one-time password reset links operators hand out.

Revision ID: 0013
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_logins",
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("password_hash", sa.Text, nullable=True),
        sa.Column("operator", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=True),
        sa.Column("playground_key_id", sa.String(40), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_console_sessions_user", "console_sessions", ["user_id"])
    op.create_table(
        "console_resets",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("used_at", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("console_resets")
    op.drop_index("ix_console_sessions_user", "console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("console_logins")
