"""Alembic environment: migrations run over an async engine (asyncpg).

`ipt_core.db.migrate` hands over an open connection; the `alembic` command line instead
builds an engine from `sqlalchemy.url`.
"""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ipt_core.db.schema import metadata

config = context.config


def run_migrations(connection: Connection) -> None:
    """Run the pending migrations on a synchronous view of an async connection."""
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_from_url() -> None:
    """Run the migrations against `sqlalchemy.url` (used by the alembic command line)."""
    engine = create_async_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.begin() as conn:
        await conn.run_sync(run_migrations)
    await engine.dispose()


shared_connection = config.attributes.get("connection")
if shared_connection is None:
    asyncio.run(run_from_url())
else:
    run_migrations(shared_connection)
