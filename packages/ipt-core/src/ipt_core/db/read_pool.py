"""The API's pool of driver connections for statements in autocommit: reads and searches.

A read by id or version, a GET search and the audit trail's batched COPY need nothing but
asyncpg statements in autocommit (docs/architecture.md, "Read path"). They take their
connection here rather than from SQLAlchemy's pool, whose checkout and return cost ~25 µs of
CPU per request, a tenth of a read (`db/lending.py`: the lending, and the wait in line).

The connections are made by the engine, exactly as it makes its own (URL, server settings
such as the statement timeout, JSON codecs): checked out of the engine's pool and detached
from it, so the engine's pool opens another in its place when it needs one. The API gives the
engine `IPT_DATABASE_POOL_SIZE` less this pool's size, so the process still holds at most
`IPT_DATABASE_POOL_SIZE` connections (README, "Configuration").

A connection the server closed while it sat idle is dropped at its next checkout (asyncpg
reads its socket all the time, so it knows); one that failed mid-statement was closed by
`driver_statement` and is dropped when it is given back. Either frees a place for a new one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from ipt_core.db.lending import LendingPool

__all__ = ["ReadPool"]


class ReadPool(LendingPool[Any]):
    """Up to `size` asyncpg connections made by `engine`, lent one request at a time."""

    def __init__(self, engine: AsyncEngine, *, size: int, timeout_s: float | None = None) -> None:
        """Lend connections of `engine`'s making; wait at most `timeout_s` for a free one
        (default: as long as the engine's pool waits)."""
        pool: Any = engine.sync_engine.pool
        super().__init__(size=size, timeout_s=pool.timeout() if timeout_s is None else timeout_s)
        self._engine = engine

    def release(self, driver: Any) -> None:
        """Take `driver` back: lent to the next in line, kept idle, or closed if unusable."""
        if self._closed or driver.is_closed() or driver.is_in_transaction():
            # Closed after a failure, or left in a transaction (never, for statements in
            # autocommit): not handed on. PostgreSQL rolls back what was not committed.
            if not driver.is_closed():
                driver.terminate()
            self._drop()
        else:
            self._keep(driver)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A connection for the duration of the block."""
        driver = await self.acquire()
        try:
            yield driver
        finally:
            self.release(driver)

    def _alive(self, lent: Any) -> bool:
        return not lent.is_closed()

    async def _end(self, lent: Any) -> None:
        with contextlib.suppress(Exception):
            await lent.close(timeout=5)
        if not lent.is_closed():
            lent.terminate()

    async def _make(self) -> Any:
        return await greenlet_spawn(self._detached)

    def _detached(self) -> Any:
        # In SQLAlchemy's greenlet bridge: its pool connects (or waits) through it. Checked
        # out as `engine.connect()` would (the same timeout, and its driver's failure to
        # connect wrapped as DBAPIError, which the API answers as a 503), then detached.
        sync_engine = self._engine.sync_engine
        try:
            proxied = sync_engine.raw_connection()
        except sync_engine.dialect.loaded_dbapi.Error as error:
            dialect = sync_engine.dialect
            raise sqlalchemy.exc.DBAPIError.instance(
                None,
                None,
                error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=dialect.is_disconnect(error, None, None),
                dialect=dialect,
            ) from error
        driver = proxied.driver_connection
        proxied.detach()  # the engine's pool forgets it; its place there is free again
        return driver
