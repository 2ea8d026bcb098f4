"""Guards: account restrictions (the key restrictions document, countries included, set once
for every key of an account), per-key guard settings, the guard that refused a request in the
usage log, and the operator's reviews of those refusals.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as t:
        t.add_column(sa.Column("restrictions", sa.Text, nullable=True))
    with op.batch_alter_table("api_keys") as t:
        t.add_column(sa.Column("guards", sa.Text, nullable=True))
    with op.batch_alter_table("usage_log") as t:
        t.add_column(sa.Column("guard", sa.Text, nullable=True))
    op.create_table(
        "guard_reviews",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("actor", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("guard_reviews")
    with op.batch_alter_table("usage_log") as t:
        t.drop_column("guard")
    with op.batch_alter_table("api_keys") as t:
        t.drop_column("guards")
    with op.batch_alter_table("accounts") as t:
        t.drop_column("restrictions")
