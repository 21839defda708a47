"""Alembic environment: migrations run on the connection rerate hands over."""

from __future__ import annotations

from alembic import context

from rerate.catalog.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - rerate always passes a connection
    raise RuntimeError("run migrations through 'rerate init'")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
