"""A worker's liveness, visible in the database: a session advisory lock keyed by its id.

The lock is held by one dedicated connection for the worker's life. When the process dies
(SIGKILL, OOM, node loss) PostgreSQL ends its session and frees the lock, so every other
worker sees at once that the holder of a lease is gone and takes the lease over
(`claim_due`), instead of waiting for the lease to run out. A worker that merely lost its
connection re-takes the lock before it claims again; a lease taken over in between is safe,
because storing a course re-checks the claim under a row lock (docs/architecture.md,
"When the database or a process fails").
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from ipt_core.db.advisory import ONE_BIGINT, held_advisory_locks

__all__ = ["WorkerLiveness", "live_workers", "worker_key"]


def worker_key(worker: Any) -> ColumnElement[int]:
    """The advisory lock key of a worker id (a bind value or the `claimed_by` column)."""
    return func.hashtextextended(cast(worker, Text), 0)


def live_workers() -> Select[int, int]:
    """The bigint keys of the advisory locks held in this database: high and low 32 bits in
    `classid` and `objid` (as pg_locks shows them)."""
    return held_advisory_locks(ONE_BIGINT)


class WorkerLiveness:
    """Holds the worker's liveness lock; `ensure` re-takes it after a lost connection."""

    def __init__(self, engine: AsyncEngine, worker_id: str) -> None:
        """Prepare (not take) the lock of `worker_id` in `engine`'s database."""
        self.engine = engine
        self.worker_id = worker_id
        self._conn: AsyncConnection | None = None
        self._driver: Any = None

    @property
    def held(self) -> bool:
        """Whether the lock's connection is open (checked without a round trip)."""
        return self._driver is not None and not self._driver.is_closed()

    async def ensure(self) -> None:
        """Take the lock on a fresh connection unless it is held; raises if the database is down.

        Costs nothing while the connection is open: asyncpg notices a closed socket by itself.
        """
        if self.held:
            return
        await self.close()
        conn = await self.engine.connect()
        try:
            await conn.execute(select(func.pg_advisory_lock(worker_key(self.worker_id))))
            await conn.commit()  # the lock is the session's; no transaction stays open
            self._driver = (await conn.get_raw_connection()).driver_connection
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Release the lock by ending its session (the connection is not put back in the pool)."""
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()
