"""initial catalog

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("identifier"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=500), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read", sa.BigInteger(), nullable=False),
        sa.Column("loaded", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("rejects_path", sa.Text(), nullable=True),
        sa.Column("xdr_version", sa.BigInteger(), nullable=True),
        sa.Column("totals_version", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_collections_checksum"), ["checksum"], unique=False)

    op.create_table(
        "country_codes",
        sa.Column("prefix", sa.String(length=18), nullable=False),
        sa.Column("iso", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("calling_code", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix"),
    )
    with op.batch_alter_table("country_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_country_codes_iso"), ["iso"], unique=False)

    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("billing_period", sa.String(length=20), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("emails", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "destination_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "tariffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("rate_unit", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "vendors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "account_ownership",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "valid_from", name="uq_ownership_version"),
    )
    with op.batch_alter_table("account_ownership", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_account_ownership_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_account_ownership_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "destination_group_prefixes",
        sa.Column("prefix", sa.String(length=18), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["destination_groups.id"],
        ),
        sa.PrimaryKeyConstraint("prefix"),
    )
    with op.batch_alter_table("destination_group_prefixes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_destination_group_prefixes_group_id"), ["group_id"], unique=False
        )

    op.create_table(
        "rates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tariff_id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=18), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_interval", sa.Integer(), nullable=False),
        sa.Column("next_interval", sa.Integer(), nullable=False),
        sa.Column("first_price", sa.BigInteger(), nullable=False),
        sa.Column("next_price", sa.BigInteger(), nullable=False),
        sa.Column("connect_fee", sa.BigInteger(), nullable=False),
        sa.Column("free_seconds", sa.Integer(), nullable=False),
        sa.Column("grace_period", sa.Integer(), nullable=False),
        sa.Column("post_call_surcharge", sa.Integer(), nullable=False),
        sa.Column("forbidden", sa.Boolean(), nullable=False),
        sa.Column("discontinued", sa.Boolean(), nullable=False),
        sa.Column("off_peak_first_price", sa.BigInteger(), nullable=True),
        sa.Column("off_peak_next_price", sa.BigInteger(), nullable=True),
        sa.Column("preference", sa.Integer(), nullable=True),
        sa.Column("route_category", sa.String(length=100), nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("payback", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tariff_id"],
            ["tariffs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tariff_id", "prefix", "effective_from", name="uq_rate_version"),
    )
    with op.batch_alter_table("rates", schema=None) as batch_op:
        batch_op.create_index("ix_rates_tariff_prefix", ["tariff_id", "prefix"], unique=False)

    op.create_table(
        "tariff_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_kind", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("tariff_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tariff_id"],
            ["tariffs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_kind", "owner_id", "valid_from", name="uq_assignment_version"),
    )
    op.create_table(
        "vendor_connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("identifier"),
    )
    with op.batch_alter_table("vendor_connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vendor_connections_vendor_id"), ["vendor_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("vendor_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vendor_connections_vendor_id"))

    op.drop_table("vendor_connections")
    op.drop_table("tariff_assignments")
    with op.batch_alter_table("rates", schema=None) as batch_op:
        batch_op.drop_index("ix_rates_tariff_prefix")

    op.drop_table("rates")
    with op.batch_alter_table("destination_group_prefixes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_destination_group_prefixes_group_id"))

    op.drop_table("destination_group_prefixes")
    with op.batch_alter_table("account_ownership", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_ownership_customer_id"))
        batch_op.drop_index(batch_op.f("ix_account_ownership_account_id"))

    op.drop_table("account_ownership")
    op.drop_table("vendors")
    op.drop_table("tariffs")
    op.drop_table("destination_groups")
    op.drop_table("customers")
    with op.batch_alter_table("country_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_country_codes_iso"))

    op.drop_table("country_codes")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collections_checksum"))

    op.drop_table("collections")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
    op.drop_table("accounts")
