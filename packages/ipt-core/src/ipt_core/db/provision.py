"""Connect a process to its database: the configured one, or an embedded PostgreSQL."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine, on_database
from ipt_core.db.migrate import upgrade
from ipt_core.settings import CoreSettings

__all__ = ["Database", "database_url", "open_database"]

_log = logging.getLogger(__name__)
_EMBEDDED_DATABASE = "ipt"


@dataclass
class Database:
    """The engine a process uses, and the embedded server when this process started one.

    `reads` is the same engine and pool, its connections in autocommit: reads need no
    transaction (no BEGIN and COMMIT round trips). Derived once here rather than with
    `execution_options` on every checkout, which cost one more trip through SQLAlchemy's
    greenlet bridge per request.
    """

    engine: AsyncEngine
    embedded: EmbeddedPostgres | None = None
    reads: AsyncEngine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.reads = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def close(self) -> None:
        """Close every pooled connection (an embedded server keeps running for reuse)."""
        await self.engine.dispose()


async def database_url(settings: CoreSettings) -> tuple[str, EmbeddedPostgres | None]:
    """Return the URL to connect to, starting the embedded server when none is configured.

    The embedded server's database is created on first use.
    """
    if settings.database_url is not None:
        return str(settings.database_url), None
    embedded = EmbeddedPostgres(settings.data_dir / "postgres")
    server = embedded.start()
    _log.info("using embedded PostgreSQL on port %s", server.port)
    url = server.url(_EMBEDDED_DATABASE)
    await _create_database_if_missing(url)
    return url, embedded


async def open_database(
    settings: CoreSettings,
    *,
    migrate: bool = True,
    statement_timeout_ms: int | None = None,
    pool_size: int | None = None,
) -> Database:
    """Connect (creating the embedded database on first use) and run pending migrations.

    `statement_timeout_ms` bounds every statement of the engine's connections (not the
    migrations, which lift it for their own transaction). `pool_size` defaults to the
    settings' `database_pool_size` (the API gives part of it to its read pool).
    """
    url, embedded = await database_url(settings)
    engine = create_engine(
        url,
        pool_size=pool_size or settings.database_pool_size,
        statement_timeout_ms=statement_timeout_ms,
    )
    if migrate:
        await upgrade(engine)
    return Database(engine, embedded)


async def _create_database_if_missing(url: str) -> None:
    admin = create_async_engine(on_database(url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": _EMBEDDED_DATABASE},
            )
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{_EMBEDDED_DATABASE}"'))
    finally:
        await admin.dispose()
