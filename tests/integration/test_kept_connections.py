"""The requests' SQLAlchemy connections, kept checked out and lent again (ipt_core/db/kept.py).

Each test has an engine of its own (`create_engine`, as every process builds it), so the
engine's pool counts are the test's alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.driver import autocommit_driver, driver_transaction
from ipt_core.db.engine import create_engine
from ipt_core.db.faults import DatabaseFault, database_fault
from ipt_core.db.kept import KeptConnections
from ipt_core.db.lending import PoolExhausted
from tests.support.waiting import poll_until


@pytest.fixture
async def own(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5, pool_timeout_s=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def kept(own: AsyncEngine) -> AsyncIterator[KeptConnections]:
    kept = KeptConnections(own.execution_options(isolation_level="AUTOCOMMIT"))
    yield kept
    await kept.close()


def _checked_out(engine: AsyncEngine) -> int:
    pool: Any = engine.sync_engine.pool
    return int(pool.checkedout())


async def _backend(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_one_connection_serves_requests_in_turn_and_stays_checked_out(
    kept: KeptConnections, own: AsyncEngine
) -> None:
    backends = set()
    for _ in range(20):
        async with kept.connection() as conn:
            backends.add(await _backend(conn))
    assert len(backends) == 1
    assert (kept.open, kept.idle) == (1, 1)
    assert _checked_out(own) == 1  # kept out of the engine's pool between requests


async def test_it_keeps_the_engine_pool_size_less_three(kept: KeptConnections) -> None:
    assert kept.size == 2  # of 5: three are left to the engine's other users


async def test_connections_are_in_autocommit_and_a_driver_transaction_ends_clean(
    kept: KeptConnections, engine: AsyncEngine
) -> None:
    async with kept.connection() as conn:
        assert await autocommit_driver(conn) is not None
        async with driver_transaction(conn):
            await conn.execute(text("CREATE TEMPORARY TABLE kept_scratch (v int)"))
            await conn.execute(text("INSERT INTO kept_scratch VALUES (1)"))
        assert conn.in_transaction()  # SQLAlchemy's logical one, begun by the Core statement
    async with kept.connection() as again:
        assert again is conn
        assert not again.in_transaction()  # ended when it came back (autocommit: no SQL)
        count = await again.execute(text("SELECT count(*) FROM kept_scratch"))
        assert count.scalar_one() == 1  # committed, on the same session


async def test_no_more_than_size_and_the_next_request_waits(kept: KeptConnections) -> None:
    async def held() -> int:
        async with kept.connection() as conn:
            await conn.execute(text("SELECT pg_sleep(0.1)"))
            return await _backend(conn)

    backends = await asyncio.gather(*(held() for _ in range(5)))
    assert len(set(backends)) == 2
    assert (kept.open, kept.idle) == (2, 2)


async def test_a_wait_in_vain_is_pool_exhausted_an_overload(own: AsyncEngine) -> None:
    kept = KeptConnections(own.execution_options(isolation_level="AUTOCOMMIT"), timeout_s=0.2)
    try:
        async with kept.connection(), kept.connection():
            with pytest.raises(PoolExhausted) as raised:
                await kept.acquire()
        assert database_fault(raised.value) == DatabaseFault("overloaded")
        assert (kept.open, kept.idle) == (2, 2)
    finally:
        await kept.close()


async def test_a_connection_left_in_a_driver_transaction_is_closed_not_lent(
    kept: KeptConnections, own: AsyncEngine
) -> None:
    async with kept.connection() as conn:
        first = await _backend(conn)
        driver: Any = await autocommit_driver(conn)
        await driver.execute("BEGIN")
    assert driver.is_closed()
    assert (kept.open, kept.idle) == (0, 0)
    assert _checked_out(own) == 0  # its place is the engine's again
    async with kept.connection() as conn:
        assert await _backend(conn) != first


async def test_an_idle_connection_closed_by_the_server_is_replaced(
    kept: KeptConnections, own: AsyncEngine, engine: AsyncEngine
) -> None:
    async with kept.connection() as conn:
        first = await _backend(conn)
        driver: Any = await autocommit_driver(conn)
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    await poll_until(driver.is_closed, what="asyncpg to see the server close the connection")
    async with kept.connection() as conn:
        assert await _backend(conn) != first
    assert (kept.open, kept.idle) == (1, 1)
    assert _checked_out(own) == 1  # the dead one went back to the engine, not leaked


async def test_a_connection_invalidated_by_a_disconnect_is_not_lent_again(
    kept: KeptConnections, own: AsyncEngine, engine: AsyncEngine
) -> None:
    async def ended_mid_statement() -> int:
        async with kept.connection() as conn:
            pid = await _backend(conn)
            async with engine.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await conn.execute(text("SELECT 1"))
            return pid

    with pytest.raises(Exception) as raised:  # noqa: PT011 - whichever the server's end was
        await ended_mid_statement()
    assert database_fault(raised.value) is not None
    assert (kept.open, kept.idle) == (0, 0)
    assert _checked_out(own) == 0
    async with kept.connection() as conn:
        assert await _backend(conn) > 0


async def test_it_gives_a_connection_back_when_the_engine_has_none_left(
    kept: KeptConnections, own: AsyncEngine
) -> None:
    async def one_more() -> AsyncConnection:
        return await own.connect()

    others: list[AsyncConnection] = []
    try:
        async with kept.connection() as conn:
            await _backend(conn)
            # The engine's other users take every connection it has left; one more waits.
            others += [await own.connect() for _ in range(4)]
            waiting = asyncio.create_task(one_more())
            await asyncio.sleep(0.1)
            assert not waiting.done()
        others.append(await asyncio.wait_for(waiting, timeout=2))  # it came back to the engine
        assert (kept.open, kept.idle) == (0, 0)
    finally:
        for other in others:
            await other.close()


async def test_after_the_engine_is_disposed_requests_get_new_sessions(
    kept: KeptConnections, own: AsyncEngine
) -> None:
    # As `engine.dispose()` makes every session new (a changed database setting, a failover):
    # the kept ones too, not only those idle in the engine's pool.
    async with kept.connection() as conn:
        first = await _backend(conn)
    await own.dispose()
    async with kept.connection() as conn:
        assert await _backend(conn) != first
    assert (kept.open, kept.idle) == (1, 1)
    assert _checked_out(own) == 1  # of the engine's new pool


async def test_it_keeps_its_connection_when_the_engine_is_full_but_no_one_waits(
    kept: KeptConnections, own: AsyncEngine
) -> None:
    # `ipt run`'s worker loops hold some of the engine's connections for good: a full engine
    # pool alone must not make every request give its connection back.
    others = [await own.connect() for _ in range(3)]
    try:
        async with kept.connection(), kept.connection():
            assert _checked_out(own) == 5  # the engine's pool is full
        assert (kept.open, kept.idle) == (2, 2)
    finally:
        for other in others:
            await other.close()


async def test_close_returns_every_connection_to_the_engine(own: AsyncEngine) -> None:
    kept = KeptConnections(own.execution_options(isolation_level="AUTOCOMMIT"))
    async with kept.connection():
        lent = await kept.acquire()
    assert _checked_out(own) == 2
    await kept.close()
    await kept.release(lent)
    assert kept.open == 0
    assert _checked_out(own) == 0
