"""Account restrictions: the key restrictions document (IP ranges, origins, hours, countries)
set once for every key of an account.

Revision ID: 0010
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as t:
        t.add_column(sa.Column("restrictions", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as t:
        t.drop_column("restrictions")
