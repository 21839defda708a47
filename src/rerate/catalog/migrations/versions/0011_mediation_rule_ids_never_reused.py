"""Mediation rules: a removed rule's id is never given to a new one (SQLite AUTOINCREMENT)

The audit trail names rules by id ("mediation rule 10"); SQLite otherwise hands the highest
removed id to the next rule, so one subject could name two different rules.  PostgreSQL's
sequences never reuse an id: nothing changes there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # The table is copied into a new one created with AUTOINCREMENT; sqlite_sequence then starts
    # from the highest id the copy holds.
    with op.batch_alter_table(
        "mediation_rules", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass
    # A rule removed before this upgrade may have held a higher id, named in the audit trail:
    # the next rule starts above it too.
    op.execute("DELETE FROM sqlite_sequence WHERE name = 'mediation_rules'")  # no key to replace by
    op.execute(
        """
        INSERT INTO sqlite_sequence (name, seq)
        SELECT 'mediation_rules', max(seq) FROM (
            SELECT coalesce(max(id), 0) AS seq FROM mediation_rules
            UNION ALL
            SELECT coalesce(max(CAST(substr(subject, 16) AS INTEGER)), 0) FROM audit_log
            WHERE subject LIKE 'mediation rule %'
        )
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("mediation_rules", recreate="always"):
        pass
