"""Session advisory locks: connections that hold them, and which keys `pg_locks` shows held.

PostgreSQL has two forms of advisory lock key, kept apart in `pg_locks` by `objsubid`: one
bigint (1; its high and low 32 bits in `classid` and `objid`) and two int4s (2; in `classid`
and `objid`). The relay's leadership and workers' liveness use the first form, webhook
delivery queues the second, so their keys can never collide.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Final

from sqlalchemy import BigInteger, Integer, Select, Text, cast, column, func, select, table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["ONE_BIGINT", "TWO_INTS", "held_advisory_locks", "session_of_its_own"]

ONE_BIGINT: Final = 1
TWO_INTS: Final = 2

# The catalogs read here are PostgreSQL's own, not tables of ours (so not in db/schema.py).
_pg_locks = table(
    "pg_locks",
    column("locktype", Text),
    column("objsubid", Integer),
    column("granted"),
    column("database"),
    column("classid"),
    column("objid"),
)
_pg_database = table("pg_database", column("oid"), column("datname", Text))


def held_advisory_locks(form: int) -> Select[int, int]:
    """(`classid`, `objid`) as bigints of the granted advisory locks of `form` in this database."""
    this_database = select(_pg_database.c.oid).where(
        _pg_database.c.datname == func.current_database()
    )
    return select(
        cast(_pg_locks.c.classid, BigInteger).label("classid"),
        cast(_pg_locks.c.objid, BigInteger).label("objid"),
    ).where(
        _pg_locks.c.locktype == "advisory",
        _pg_locks.c.objsubid == form,
        _pg_locks.c.granted,
        _pg_locks.c.database == this_database.scalar_subquery(),
    )


@contextlib.asynccontextmanager
async def session_of_its_own(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection of `engine` whose session ends on exit: never put back in the pool, where
    the session's advisory locks would stay held for the pool's next user."""
    conn = await engine.connect()
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()
