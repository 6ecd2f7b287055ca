"""Alembic environment for the sde control database.

sde runs migrations in code (``sde.adapters.sql.upgrade``), handing over an open connection
in ``config.attributes["connection"]``, already inside a write transaction. Alembic's own
commands work too with ``sde.adapters.sql.alembic_config(url)`` (for example to generate a
new revision with ``autogenerate``, or SQL for a DBA with ``offline`` mode).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from sde.adapters.sql import make_engine, metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later migrations rebuild tables in batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("give a database URL: sde.adapters.sql.alembic_config(url)")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _configure(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
