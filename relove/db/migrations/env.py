"""Alembic environment: runs on the connection handed over by :mod:`relove.db.migrate`."""

from __future__ import annotations

from alembic import context

from relove.db.models import Base
from relove.db.registry import import_all_models

import_all_models()

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `relove db upgrade`")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported; use `relove db upgrade`")
run_migrations_online()
