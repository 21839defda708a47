"""drop the rate index that the rate-version key already covers

The unique key ``(tariff_id, prefix, effective_from)`` serves every lookup by
``(tariff_id, prefix)``; the second index only made each new rate version
cost one more index insert (a 200,000-row deck import spent a fifth of its
insert time there).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rates", schema=None) as batch_op:
        batch_op.drop_index("ix_rates_tariff_prefix")


def downgrade() -> None:
    with op.batch_alter_table("rates", schema=None) as batch_op:
        batch_op.create_index("ix_rates_tariff_prefix", ["tariff_id", "prefix"], unique=False)
