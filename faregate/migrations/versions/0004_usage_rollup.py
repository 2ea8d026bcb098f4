"""The usage rollup's watermark, and the lookup indexes of users, members, codes and audit.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_rollup_state",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    # `last_id`: every usage_log row with an id at or below it is counted in usage_daily.
    op.execute("INSERT INTO usage_rollup_state (name, value) VALUES ('last_id', 0)")
    op.create_index("ix_account_members_user", "account_members", ["user_id"])
    op.create_index("ix_redemptions_account", "redemptions", ["account_id"])
    op.create_index("ix_api_keys_user", "api_keys", ["user_id"])
    op.create_index("ix_audit_target", "audit_log", ["target", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_target", "audit_log")
    op.drop_index("ix_api_keys_user", "api_keys")
    op.drop_index("ix_redemptions_account", "redemptions")
    op.drop_index("ix_account_members_user", "account_members")
    op.drop_table("usage_rollup_state")
