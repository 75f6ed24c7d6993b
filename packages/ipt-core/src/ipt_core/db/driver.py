"""Statements on the asyncpg connection under SQLAlchemy's pool: the API's reads and writes.

The store's primary-key reads, the searches and the write path's fixed statements run on the
driver when SQLAlchemy does not manage their connection's transaction: a connection in
autocommit (docs/architecture.md, "Read path"), or one whose transaction `driver_transaction`
began on the driver (the API's writes, "Write path"). SQLAlchemy's execution layer cost more
than PostgreSQL's answer. In a transaction SQLAlchemy manages, the driver must not be used
directly (SQLAlchemy opens the transaction at its own first statement), so callers fall back
to Core there.

`pooled_driver` goes one step further for a request that needs nothing but driver statements
(a read by id or version): it checks the driver connection out of the same pool without a
SQLAlchemy `Connection` around it, and, when an idle connection is there to take, without
SQLAlchemy's greenlet bridge either (`connect_in_bridge`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

__all__ = [
    "autocommit_driver",
    "connect_in_bridge",
    "driver_statement",
    "driver_transaction",
    "pooled_driver",
]


# SQLSTATE classes of a server error that ends the session: the connection is gone
# (57P01 admin_shutdown, 57P02 crash_shutdown, 57P05 idle_session_timeout; class 08).
_SESSION_ENDED = ("57P", "08")


class _OutsideBridge(Exception):
    """The pool had to open a connection outside SQLAlchemy's greenlet bridge."""


def connect_in_bridge(*args: Any, **kwargs: Any) -> Any:
    """`asyncpg.connect` for the engine's pool (db/engine.py), refusing outside the bridge.

    SQLAlchemy's pool is synchronous code: it waits for I/O through `await_`, which works only
    inside the greenlet bridge (`greenlet_spawn`). `pooled_driver` checks an idle connection
    out without the bridge, and the pool may still find it must connect first (the idle one
    was closed by the server, or the pool was invalidated). Refused here, before the driver's
    `connect()` coroutine exists, the pool puts its record back as it does after any failed
    connect, and `pooled_driver` checks out again through the bridge. (Had the coroutine been
    made, failing to await it would leave a "never awaited" warning behind.)
    """
    if not in_greenlet():
        raise _OutsideBridge
    return asyncpg.connect(*args, **kwargs)


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


@asynccontextmanager
async def driver_transaction(autocommit: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction begun and ended on the driver; every statement on the connection is in it.

    `autocommit` is an engine whose connections are in autocommit (`Database.reads`): there
    SQLAlchemy begins nothing itself, so its statements (Core, savepoints) run inside the
    transaction this `BEGIN` opened, and so do the driver statements of `autocommit_driver`'s
    callers (the write path's fixed statements, `db/fixed.py`). SQLAlchemy's own `begin()`
    costs ~210 µs more CPU than the driver's for a transaction of one statement: its
    `BEGIN` and `COMMIT` through the greenlet bridge, and the transaction's bookkeeping
    (bench/PROFILE.md, "Tenth round").

    Committed when the block ends, rolled back when it raises. A failure to commit surfaces
    as the driver's error (`db/faults.py` classifies it); a failure to roll back does not
    hide the block's own. SQLAlchemy's pool cannot roll this transaction back on return (it
    knows of none), so the end is shielded from the caller's cancellation (a client that
    left), and a connection still in a transaction afterwards (cancelled mid-way) is closed,
    never handed to the next request.
    """
    async with autocommit.connect() as conn:
        driver = await autocommit_driver(conn)
        if driver is None:
            raise ValueError("driver_transaction needs an engine in autocommit")
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
                driver.terminate()  # PostgreSQL rolls back what it did not commit


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
async def pooled_driver(engine: AsyncEngine) -> AsyncIterator[Any]:
    """An asyncpg connection of `engine`'s pool, for statements in autocommit, then returned.

    The pool's own checkout and return, as `engine.connect()` does them (the same size,
    timeout, and `_discard_closed` check of db/engine.py), without the `Connection` that
    `engine.connect()` builds around them: its construction, isolation level set and reset,
    events and shielded close cost ~105 µs of CPU per checkout against ~45 µs for the pool's
    part alone (bench/PROFILE.md, "Third round"). Run statements under `driver_statement`.
    `engine` must come from `ipt_core.db.engine.create_engine` (its pool connects through
    `connect_in_bridge`).
    """
    pool = cast(QueuePool, engine.sync_engine.pool)  # db/engine.py: no other kind
    dialect = engine.dialect
    try:
        fairy = _idle_connection(pool)
        if fairy is None:
            fairy = await greenlet_spawn(pool.connect)
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
        # `driver_statement` closed is dropped at its next checkout (`_discard_closed`). Only
        # a pool already holding all its connections would close one (I/O): not without the
        # bridge.
        if pool.checkedin() < pool.size():
            fairy.close()
        else:
            await greenlet_spawn(fairy.close)


def _idle_connection(pool: QueuePool) -> PoolProxiedConnection | None:
    # Without the bridge only when the pool has an idle connection: taking it needs no I/O
    # (a pool waiting for one, or opening one, would). Each greenlet the bridge spawns costs
    # ~25 µs of CPU, about a tenth of a read (bench/PROFILE.md, "Eighth round").
    if not pool.checkedin():
        return None
    try:
        return pool.connect()
    except _OutsideBridge:
        return None  # the idle connection was closed: connect again, through the bridge


@asynccontextmanager
async def driver_statement(driver: Any) -> AsyncIterator[None]:
    """Run statements on `driver`; after a failure of the connection it is closed, never reused.

    SQLAlchemy would have invalidated the connection, but a driver error bypasses it. After a
    failure (the server shut down mid-statement, a protocol error) the driver may be
    mid-protocol and the next request to check it out would fail; closed now, the pool
    replaces it at its next checkout (`db/engine.py`). An error the server reported (a
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
