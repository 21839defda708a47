"""billing periods and adjustments

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adjustments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("destination", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("xdrs", sa.BigInteger(), nullable=False),
        sa.Column("amount_delta", sa.BigInteger(), nullable=False),
        sa.Column("cost_delta", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("adjustments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_adjustments_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_adjustments_job_id"), ["job_id"], unique=False)

    op.create_table(
        "billing_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(length=100), nullable=False),
        sa.Column("xdr_version", sa.BigInteger(), nullable=False),
        sa.Column("revision_version", sa.BigInteger(), nullable=False),
        sa.Column("totals_version", sa.BigInteger(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "period", name="uq_period"),
    )
    with op.batch_alter_table("billing_periods", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_periods_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("billing_periods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_periods_customer_id"))

    op.drop_table("billing_periods")
    with op.batch_alter_table("adjustments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_adjustments_job_id"))
        batch_op.drop_index(batch_op.f("ix_adjustments_customer_id"))

    op.drop_table("adjustments")
