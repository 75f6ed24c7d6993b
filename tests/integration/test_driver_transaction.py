"""A transaction begun on the driver (`db/driver.py`, `driver_transaction`): the API's writes.

SQLAlchemy's statements, savepoints and the fixed statements that run on the driver itself
all land in the one transaction; it commits when the block ends and rolls back when it raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.driver import autocommit_driver, driver_transaction
from ipt_core.db.fixed import FixedStatement
from tests.support.database import query_scalar
from tests.support.waiting import poll_until

_NOW_AND_XID = FixedStatement(select(func.now().label("now"), func.txid_current().label("xid")))
_SCRATCH = "CREATE TABLE driver_tx_scratch (v text PRIMARY KEY)"


@asynccontextmanager
async def _transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn, driver_transaction(conn) as inside:
        yield inside


@pytest.fixture
async def autocommit(db: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    async with db.begin() as conn:
        await conn.execute(text(_SCRATCH))
    yield db.execution_options(isolation_level="AUTOCOMMIT")
    async with db.begin() as conn:  # not one of the schema's tables (test_migrations)
        await conn.execute(text("DROP TABLE driver_tx_scratch"))


async def test_core_driver_and_fixed_statements_share_the_transaction(
    autocommit: AsyncEngine,
) -> None:
    async with _transaction(autocommit) as conn:
        core_now, core_xid = (await conn.execute(select(func.now(), func.txid_current()))).one()
        driver = await autocommit_driver(conn)
        assert driver is not None
        assert driver.is_in_transaction()
        driver_xid = await driver.fetchval("SELECT txid_current()")
        (fixed,) = await _NOW_AND_XID.execute(conn, {})
    assert driver_xid == core_xid
    assert (fixed["now"], fixed["xid"]) == (core_now, core_xid)


async def test_the_block_commits_what_it_wrote(autocommit: AsyncEngine, db: AsyncEngine) -> None:
    async with _transaction(autocommit) as conn:
        await conn.execute(text("INSERT INTO driver_tx_scratch VALUES ('kept')"))
        # Not visible to another session before the commit: it is one transaction.
        assert await query_scalar(db, "SELECT count(*) FROM driver_tx_scratch") == 0
    assert await query_scalar(db, "SELECT count(*) FROM driver_tx_scratch") == 1


async def test_a_failure_rolls_back_everything_and_the_connection_stays_usable(
    autocommit: AsyncEngine, db: AsyncEngine
) -> None:
    drivers: list[Any] = []

    async def insert_twice() -> None:
        async with _transaction(autocommit) as conn:
            await conn.execute(text("INSERT INTO driver_tx_scratch VALUES ('a')"))
            driver = await autocommit_driver(conn)
            assert driver is not None
            drivers.append(driver)
            await driver.execute("INSERT INTO driver_tx_scratch VALUES ('a')")

    with pytest.raises(asyncpg.UniqueViolationError):
        await insert_twice()
    assert await query_scalar(db, "SELECT count(*) FROM driver_tx_scratch") == 0
    # A server-reported error keeps the connection: it is in the pool, idle, and answers.
    (driver,) = drivers
    assert not driver.is_closed()
    assert not driver.is_in_transaction()
    assert await query_scalar(db, "SELECT 1") == 1


async def test_a_savepoint_rolls_back_alone(autocommit: AsyncEngine, db: AsyncEngine) -> None:
    async def inner_then_duplicate(conn: AsyncConnection) -> None:
        async with conn.begin_nested():
            await conn.execute(text("INSERT INTO driver_tx_scratch VALUES ('inner')"))
            await conn.execute(text("INSERT INTO driver_tx_scratch VALUES ('outer')"))

    async with _transaction(autocommit) as conn:
        await conn.execute(text("INSERT INTO driver_tx_scratch VALUES ('outer')"))
        with pytest.raises(IntegrityError, match="duplicate key"):
            await inner_then_duplicate(conn)
    assert await query_scalar(db, "SELECT string_agg(v, ',') FROM driver_tx_scratch") == "outer"


async def test_a_cancelled_block_leaves_no_connection_in_a_transaction(
    autocommit: AsyncEngine, db: AsyncEngine
) -> None:
    started = asyncio.Event()

    async def write_then_wait() -> None:
        async with _transaction(autocommit) as conn:
            await conn.execute(text("INSERT INTO driver_tx_scratch VALUES ('lost')"))
            started.set()
            await conn.execute(text("SELECT pg_sleep(30)"))

    task = asyncio.create_task(write_then_wait())
    await started.wait()
    await asyncio.sleep(0.1)
    task.cancel()  # as the disconnect watch cancels a request whose client left
    with pytest.raises(asyncio.CancelledError):
        await task
    idle_in_transaction = "SELECT count(*) FROM pg_stat_activity WHERE state LIKE '%in transaction'"
    await poll_until(
        lambda: query_scalar(db, idle_in_transaction), until=lambda n: n == 0, what="rollback"
    )
    assert await query_scalar(db, "SELECT count(*) FROM driver_tx_scratch") == 0
    for _ in range(25):  # every pooled connection is usable: none was returned mid-transaction
        async with _transaction(autocommit) as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1


async def test_a_connection_not_in_autocommit_is_refused(db: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="autocommit"):
        async with _transaction(db):
            pass
