"""mediation rules: ordered, scoped, effective-dated number and identifier rewriting

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mediation_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("match", sa.String(length=200), nullable=False),
        sa.Column("replace", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_value", sa.String(length=200), nullable=True),
        sa.Column("min_length", sa.Integer(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mediation_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mediation_rules_position"), ["position"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mediation_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mediation_rules_position"))
    op.drop_table("mediation_rules")
