"""SQLAlchemy connections in autocommit, kept checked out and lent to the API's requests.

A request that needs SQLAlchemy (every write: its transaction, begun on the driver; a domain
API read) used to check a connection out of the engine's pool and give it back at its end.
That was ~65 µs of a create's CPU: the pool's checkout and return through the greenlet
bridge, and autocommit set on the connection at every checkout and reset at every return
(bench/PROFILE.md, "Fifteenth round"). These connections are checked out once, in autocommit
once, and lent again and again (`db/lending.py`).

They stay checked out of the engine's pool, whose other users (the audit buffer, a failed
write's record, the event feed's listening connection) must still get connections:

- the API keeps at most the engine's pool size less `_LEFT_TO_THE_ENGINE`;
- a connection coming back while someone waits for one of the engine's goes back to the
  engine, to them. ("The engine has none left" is the normal state under load: only a wait
  says that someone else needs one.)

A connection is lent again only when it comes back as it went out: open, not invalidated by
SQLAlchemy after a disconnect, not in a transaction on the driver. SQLAlchemy's own logical
transaction, which a Core statement begins even in autocommit, is ended first (no SQL is sent:
the connection is in autocommit). Anything else is closed: the engine's pool gets its place
back and, at its next checkout, replaces a connection the server closed (`db/engine.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.lending import LendingPool

__all__ = ["KeptConnections"]

# Connections of the engine's pool the API never keeps (module doc).
_LEFT_TO_THE_ENGINE: Final = 3
# The key, in a kept connection's `info`, of the engine pool it was checked out of.
_POOL: Final = "ipt.kept_from"


class KeptConnections(LendingPool[AsyncConnection]):
    """Connections of `autocommit` (an engine in autocommit, `Database.reads`), kept and lent."""

    def __init__(self, autocommit: AsyncEngine, *, timeout_s: float | None = None) -> None:
        """Keep up to the engine's pool size less three; wait at most `timeout_s` for a free one
        (default: as long as the engine's pool waits)."""
        pool: Any = autocommit.sync_engine.pool
        size = max(1, pool.size() - _LEFT_TO_THE_ENGINE)
        super().__init__(size=size, timeout_s=pool.timeout() if timeout_s is None else timeout_s)
        self._autocommit = autocommit

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection in autocommit for the duration of the block."""
        conn = await self.acquire()
        try:
            yield conn
        finally:
            await self.release(conn)

    async def release(self, conn: AsyncConnection) -> None:
        """Take `conn` back: lent again or kept idle if it is as it went out, else closed."""
        if self._closed or not self._reusable(conn) or self._engine_awaited():
            self._drop()
            await self._end_quietly(conn)
            return
        if conn.in_transaction():
            try:
                await conn.rollback()  # SQLAlchemy's logical one: autocommit sends nothing
            except BaseException:
                self._drop()
                await self._end_quietly(conn)
                raise
        self._keep(conn)

    def _reusable(self, conn: AsyncConnection) -> bool:
        return self._alive(conn) and not _driver(conn).is_in_transaction()

    def _engine_awaited(self) -> bool:
        # Someone waits for a connection of the engine's pool. SQLAlchemy says how many are
        # out, not who waits: its asyncio queue does (tests/integration/test_kept_connections
        # fails if a SQLAlchemy upgrade moves it). Without it: whenever none is left.
        pool: Any = self._autocommit.sync_engine.pool
        getters = getattr(getattr(getattr(pool, "_pool", None), "_queue", None), "_getters", None)
        if getters is None:
            return bool(pool.checkedout() >= pool.size())
        return any(not getter.done() for getter in getters)

    def _alive(self, lent: AsyncConnection) -> bool:
        sync = lent.sync_connection
        if sync is None or sync.closed or sync.invalidated:
            return False
        # Of the engine's pool now: `engine.dispose()` (a new pool, every session new) ends
        # the kept connections too, as it ends the idle ones of the pool it replaces.
        return lent.info.get(_POOL) is self._autocommit.sync_engine.pool and not (
            _driver(lent).is_closed()
        )

    async def _make(self) -> AsyncConnection:
        conn = await self._autocommit.connect()
        conn.info[_POOL] = self._autocommit.sync_engine.pool
        return conn

    async def _end(self, lent: AsyncConnection) -> None:
        try:
            if not self._alive(lent):
                # Closed, broken, or of a pool the engine replaced: handed to no one again.
                await lent.invalidate()
            elif _driver(lent).is_in_transaction():
                _driver(lent).terminate()  # PostgreSQL rolls back what was not committed
        finally:
            await lent.close()


def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under a valid, checked-out `conn` (no I/O)."""
    sync: Any = conn.sync_connection
    return sync.connection.driver_connection
