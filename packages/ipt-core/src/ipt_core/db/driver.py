"""Statements on the asyncpg connection under SQLAlchemy's: the API's reads and writes.

The store's primary-key reads, the searches and the write path's fixed statements run on the
driver when SQLAlchemy does not manage their connection's transaction: a connection in
autocommit (docs/architecture.md, "Read path"), or one whose transaction `driver_transaction`
began on the driver (the API's writes, "Write path"). SQLAlchemy's execution layer cost more
than PostgreSQL's answer. In a transaction SQLAlchemy manages, the driver must not be used
directly (SQLAlchemy opens the transaction at its own first statement), so callers fall back
to Core there.

A request that needs nothing but driver statements (a read by id or version, a GET search)
takes its connection from the read pool instead, without SQLAlchemy around it at all
(`db/read_pool.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["autocommit_driver", "driver_statement", "driver_transaction", "outside_transaction"]


# SQLSTATE classes of a server error that ends the session: the connection is gone
# (57P01 admin_shutdown, 57P02 crash_shutdown, 57P05 idle_session_timeout; class 08).
_SESSION_ENDED = ("57P", "08")


async def autocommit_driver(conn: AsyncConnection) -> Any | None:
    """The asyncpg connection under `conn` when `conn` is in autocommit, else None.

    Statements on it run in autocommit, or in the transaction `driver_transaction` began.
    """
    sync = conn.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        raw = sync.connection  # checked out and valid: no I/O, so no greenlet bridge
    else:
        raw = await conn.get_raw_connection()
    if raw.dbapi_connection is not None and raw.dbapi_connection.autocommit:
        return raw.driver_connection
    return None


async def outside_transaction(conn: AsyncConnection) -> bool:
    """Whether `conn` is in autocommit with no transaction open on it: each statement on it
    commits on its own."""
    driver = await autocommit_driver(conn)
    return driver is not None and not driver.is_in_transaction()


@asynccontextmanager
async def driver_transaction(conn: AsyncConnection) -> AsyncIterator[AsyncConnection]:
    """A transaction begun and ended on the driver; every statement on `conn` is in it.

    `conn` is in autocommit (a connection of `Database.reads`, kept by `db/kept.py` in the
    API): there SQLAlchemy begins nothing itself, so its statements (Core, savepoints) run
    inside the transaction this `BEGIN` opened, and so do the driver statements of
    `autocommit_driver`'s callers (the write path's fixed statements, `db/fixed.py`).
    SQLAlchemy's own `begin()` costs ~210 µs more CPU than the driver's for a transaction of
    one statement: its `BEGIN` and `COMMIT` through the greenlet bridge, and the
    transaction's bookkeeping (bench/PROFILE.md, "Tenth round").

    Committed when the block ends, rolled back when it raises. A failure to commit surfaces
    as the driver's error (`db/faults.py` classifies it); a failure to roll back does not
    hide the block's own. Nothing SQLAlchemy does on the connection's return can roll this
    transaction back (it knows of none), so the end is shielded from the caller's
    cancellation (a client that left), and a connection still in a transaction afterwards
    (cancelled mid-way) is closed, never handed to the next request.
    """
    driver = await autocommit_driver(conn)
    if driver is None:
        raise ValueError("driver_transaction needs a connection in autocommit")
    try:
        transaction = driver.transaction()
        async with driver_statement(driver):
            await transaction.start()
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(Exception):
                await _shielded(driver, transaction.rollback())
            raise
        await _shielded(driver, transaction.commit())
    finally:
        if not driver.is_closed() and driver.is_in_transaction():
            driver.terminate()  # PostgreSQL rolls back what was not committed


async def _shielded(driver: Any, ending: Coroutine[Any, Any, None]) -> None:
    # COMMIT or ROLLBACK runs to its end even when the caller is cancelled meanwhile: the
    # connection then goes back to the pool idle, and the caller's cancellation goes on.
    finishing = asyncio.ensure_future(ending)
    async with driver_statement(driver):
        try:
            await asyncio.shield(finishing)
        except asyncio.CancelledError:
            await asyncio.wait([finishing])
            if not finishing.cancelled():
                finishing.exception()  # seen: the cancellation is what the caller gets
            raise


@asynccontextmanager
async def driver_statement(driver: Any) -> AsyncIterator[None]:
    """Run statements on `driver`; after a failure of the connection it is closed, never reused.

    SQLAlchemy would have invalidated the connection, but a driver error bypasses it. After a
    failure (the server shut down mid-statement, a protocol error) the driver may be
    mid-protocol and the next request to check it out would fail; closed now, it is never lent
    again: the engine's pool replaces it at its next checkout (`db/engine.py`), the read pool
    drops it when it comes back (`db/read_pool.py`). An error the server reported (a
    unique violation, a statement timeout) leaves the connection ready for the next
    statement: it is kept, so a transaction can roll back to a savepoint and go on.
    """
    try:
        yield
    except asyncpg.PostgresError as error:
        if str(getattr(error, "sqlstate", "")).startswith(_SESSION_ENDED):
            driver.terminate()
        raise
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
