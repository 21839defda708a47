"""collections record their import template and the unanswered calls it skipped

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("skipped", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("template", sa.String(length=200), server_default="canonical", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("template")
        batch_op.drop_column("skipped")
