"""Statements on the asyncpg connection under SQLAlchemy's pool: the API's autocommit reads.

The store's primary-key reads and the searches run on the driver when their connection is in
autocommit (docs/architecture.md, "Read path"): SQLAlchemy's execution layer cost more than
PostgreSQL's answer. Inside a transaction the driver must not be used directly (SQLAlchemy
opens the transaction at its own first statement), so callers fall back to Core there.

`pooled_driver` goes one step further for a request that needs nothing but driver statements
(a read by id or version): it checks the driver connection out of the same pool without a
SQLAlchemy `Connection` around it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

__all__ = ["autocommit_driver", "driver_statement", "pooled_driver"]


async def autocommit_driver(conn: AsyncConnection) -> Any | None:
    """The asyncpg connection under `conn` when `conn` is in autocommit, else None."""
    raw = await conn.get_raw_connection()
    if raw.dbapi_connection is not None and raw.dbapi_connection.autocommit:
        return raw.driver_connection
    return None


@asynccontextmanager
async def pooled_driver(engine: AsyncEngine) -> AsyncIterator[Any]:
    """An asyncpg connection of `engine`'s pool, for statements in autocommit, then returned.

    The pool's own checkout and return, as `engine.connect()` does them (the same size,
    timeout, and `_discard_closed` check of db/engine.py), without the `Connection` that
    `engine.connect()` builds around them: its construction, isolation level set and reset,
    events and shielded close cost ~105 µs of CPU per checkout against ~45 µs for the pool's
    part alone (bench/PROFILE.md, "Third round"). Run statements under `driver_statement`.
    """
    dialect = engine.dialect
    try:
        fairy = await greenlet_spawn(engine.sync_engine.pool.connect)
    except dialect.loaded_dbapi.Error as error:
        # As `engine.connect()` does: the driver's failure to connect (a restarting server)
        # wrapped as SQLAlchemy's DBAPIError, which the API answers as a 503.
        raise sqlalchemy.exc.DBAPIError.instance(
            None,
            None,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=dialect.is_disconnect(error, None, None),
            dialect=dialect,
        ) from error
    try:
        yield fairy.driver_connection
    finally:
        # The return resets nothing here: no SQLAlchemy transaction was begun on it. A driver
        # `driver_statement` closed is dropped at its next checkout (`_discard_closed`).
        await greenlet_spawn(fairy.close)


@asynccontextmanager
async def driver_statement(driver: Any) -> AsyncIterator[None]:
    """Run statements on `driver`; after a failure the connection is closed, never reused.

    SQLAlchemy would have invalidated the connection, but a driver error bypasses it. After a
    failure (the server shut down mid-statement, a protocol error) the driver may be
    mid-protocol and the next request to check it out would fail; closed now, the pool
    replaces it at its next checkout (`db/engine.py`).
    """
    try:
        yield
    except asyncio.CancelledError:
        # Not a failure of the connection: asyncpg sends PostgreSQL a cancel request for the
        # running statement and makes the connection's next statement wait for it. Closing the
        # connection now would drop that request and leave the statement running on the server
        # after its client left (tests/integration/test_search_cost.py).
        raise
    except asyncpg.InternalClientError as error:
        # The server ended the session (a restart's admin_shutdown) while the connection sat
        # in the pool: asyncpg read the error but not yet the socket's close, so the checkout
        # took it as open and the statement found the protocol mid-error. The connection is
        # gone: say so (08003, a 503), not a 500 (tests/chaos/test_database_restart_reads.py).
        driver.terminate()
        raise asyncpg.ConnectionDoesNotExistError("connection closed by the server") from error
    except BaseException:
        driver.terminate()
        raise
